/**
 * Questions and commands for the whole fleet over the control plane (the server API's channels,
 * info, disconnect, server-side subscribe). A request goes to every node, or to one; each node
 * answers with a reply addressed to the asker that carries the request's id. The asker waits until
 * every node it knows of answered or the deadline passed, answers with what arrived, and names the
 * nodes that did not answer. Requests in flight are bounded; a reply too large for a control
 * message is answered as an error instead.
 */
import type { Logger } from 'pino';
import { CONTROL_MAX_BYTES } from './backbone.js';
import type { ControlMessage } from './backbone.js';
import { parseObject } from './control.js';
import type { ControlPlane } from './control.js';
import { ApiError } from './http-api.js';

/** The control types of the server API (kept apart from control.ts's ControlType). */
export const ApiControlType = {
  /** A request to every node (or one): `{id, kind, data}`. */
  Request: 'api.request',
  /** A node's answer to the asker: `{id, node, result}` or `{id, node, error}`. */
  Reply: 'api.reply',
} as const;

/** Handles one kind of request on this node; throws an ApiError to answer with an error. */
export type FleetRequestHandler = (data: Record<string, unknown>) => unknown;

/** One node's answer. */
export interface NodeReply {
  node: string;
  result?: unknown;
  error?: { code: string; message: string };
}

/** What a fleet request gathered. */
export interface FleetAnswer {
  replies: NodeReply[];
  /** Nodes the asker expected that did not answer before the deadline. */
  missing: string[];
}

interface Pending {
  expected: Set<string>;
  replies: Map<string, NodeReply>;
  resolve(answer: FleetAnswer): void;
  timer: NodeJS.Timeout;
}

/** Requests in flight on one node; more are refused (503) rather than queued. */
export const MAX_PENDING_REQUESTS = 256;
/** Room kept in a control message for the reply's envelope. */
const REPLY_ROOM = CONTROL_MAX_BYTES - 1024;
/** Kinds are short names: `channels`, `info`, `disconnect`, ... */
const KIND_RE = /^[a-z][a-z0-9.]{0,31}$/;

/** Sends requests to the fleet and answers the fleet's requests. */
export class FleetRequests {
  private readonly handlers = new Map<string, FleetRequestHandler>();
  private readonly pending = new Map<string, Pending>();
  private seq = 0;

  constructor(
    private readonly control: ControlPlane,
    /** The nodes this node believes are alive (the fleet view), itself included. */
    private readonly liveNodes: () => string[],
    private readonly log: Logger,
  ) {
    control.on(ApiControlType.Request, (msg) => this.onRequest(msg));
    control.on(ApiControlType.Reply, (msg) => this.onReply(msg));
  }

  /** This node's id. */
  get node(): string {
    return this.control.node;
  }

  /** Registers what this node does for requests of `kind`. */
  handle(kind: string, handler: FleetRequestHandler): void {
    this.handlers.set(kind, handler);
  }

  /**
   * Asks every live node (or `to` only) and resolves once each answered or `timeoutMs` passed.
   * Rejects with 503 when the backbone cannot carry the request or too many are in flight.
   */
  async ask(kind: string, data: Record<string, unknown>, timeoutMs: number, to?: string): Promise<FleetAnswer> {
    if (this.pending.size >= MAX_PENDING_REQUESTS) {
      throw new ApiError('unavailable', `${MAX_PENDING_REQUESTS} fleet requests are in flight on this node; retry shortly`, 1);
    }
    const id = `${this.control.node}.${++this.seq}`;
    const expected = new Set(to === undefined ? this.liveNodes() : [to]);
    expected.add(to ?? this.control.node);
    const answer = new Promise<FleetAnswer>((resolve) => {
      // Not unref'd: whoever asked waits for the answer, and the deadline bounds the wait.
      const timer = setTimeout(() => this.finish(id), timeoutMs);
      this.pending.set(id, { expected, replies: new Map(), resolve, timer });
    });
    try {
      await this.control.send(ApiControlType.Request, { id, kind, data }, to);
    } catch (err) {
      const p = this.pending.get(id);
      if (p) clearTimeout(p.timer);
      this.pending.delete(id);
      throw new ApiError('unavailable', `the control plane cannot carry the request: ${(err as Error).message}`, 1);
    }
    return answer;
  }

  private finish(id: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    const replies = [...p.replies.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    p.resolve({ replies, missing: [...p.expected].filter((n) => !p.replies.has(n)).sort() });
  }

  private onRequest(msg: ControlMessage): void {
    const req = parseObject(msg.data);
    const id = req?.['id'];
    const kind = req?.['kind'];
    const d = req?.['data'];
    const data = typeof d === 'object' && d !== null && !Array.isArray(d) ? (d as Record<string, unknown>) : {};
    if (typeof id !== 'string' || id.length > 128 || typeof kind !== 'string' || !KIND_RE.test(kind)) return;
    const handler = this.handlers.get(kind);
    const reply = (body: { result?: unknown; error?: { code: string; message: string } }) => {
      let json = JSON.stringify({ id, node: this.control.node, ...body });
      if (Buffer.byteLength(json) > REPLY_ROOM) {
        json = JSON.stringify({ id, node: this.control.node, error: { code: 'limit_exceeded', message: 'reply too large' } });
      }
      this.control.send(ApiControlType.Reply, JSON.parse(json) as unknown, msg.from).catch((err: unknown) => {
        this.log.debug({ err, kind }, 'fleet reply not sent');
      });
    };
    if (!handler) {
      reply({ error: { code: 'not_supported', message: `node does not handle "${kind}"` } });
      return;
    }
    Promise.resolve()
      .then(() => handler(data))
      .then(
        (result) => reply({ result }),
        (err: unknown) => {
          if (err instanceof ApiError) reply({ error: { code: err.code, message: err.message } });
          else {
            this.log.warn({ err, kind }, 'fleet request failed');
            reply({ error: { code: 'internal', message: 'internal error' } });
          }
        },
      );
  }

  private onReply(msg: ControlMessage): void {
    const r = parseObject(msg.data);
    const id = r?.['id'];
    if (typeof id !== 'string') return;
    const p = this.pending.get(id);
    if (!p || p.replies.has(msg.from)) return;
    const e = r?.['error'];
    const error =
      typeof e === 'object' && e !== null
        ? { code: String((e as Record<string, unknown>)['code']), message: String((e as Record<string, unknown>)['message']) }
        : undefined;
    p.replies.set(msg.from, error ? { node: msg.from, error } : { node: msg.from, result: r?.['result'] });
    let all = true;
    for (const n of p.expected) if (!p.replies.has(n)) all = false;
    if (all) this.finish(id);
  }
}
