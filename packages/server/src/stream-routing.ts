/**
 * Commands for a stream held by another node. A stream's id names the node that holds it
 * (`<node>~<random>`), so a POST that lands elsewhere (no sticky sessions) is forwarded over the
 * control plane to that node, and its answer comes back to the POST: request and reply matched by
 * a correlation id, with a deadline, and at most MAX_PENDING forwards waiting per node.
 */
import type { Logger } from 'pino';
import type { ControlPlane } from './control.js';
import { parseObject } from './control.js';

/** Control message types of stream routing (beside the core's ControlType). */
export const StreamControlType = {
  /** A stream's commands, for the node that holds it: { cid, stream, secret, frames: string[] }. */
  Command: 'stream.command',
  /** That node's answer: { cid, status, message }. */
  Reply: 'stream.reply',
  /** A node opened an SSE ticket: { nonce } (single use, fleet-wide). */
  TicketUsed: 'stream.ticket.used',
} as const;

/** Forwards waiting for their answer, per node. */
export const MAX_PENDING = 1000;
/** How long a forward waits for its answer. */
export const FORWARD_DEADLINE_MS = 2000;
/** The same for a node this one has not heard of (yet). */
export const UNKNOWN_NODE_DEADLINE_MS = 1000;

/** The outcome of handing commands to a stream: an HTTP status and a message for errors. */
export interface CommandResult {
  status: number;
  message: string;
}

/** Hands frames to a local stream. */
export type LocalCommands = (stream: string, secret: string, frames: string[]) => CommandResult;

/** The node a stream id names, or undefined when the id is malformed. */
export function nodeOfStream(stream: string): string | undefined {
  const m = /^([A-Za-z0-9_.-]{1,64})~[A-Za-z0-9_-]{16,64}$/.exec(stream);
  return m ? m[1] : undefined;
}

/** Routes stream commands to the node holding the stream. */
export class StreamRouter {
  private readonly pending = new Map<number, { resolve: (r: CommandResult) => void; timer: NodeJS.Timeout }>();
  private seq = 0;

  constructor(
    private readonly control: ControlPlane,
    private readonly local: LocalCommands,
    /** True when `node` is a live member of the fleet (announced recently). */
    private readonly isMember: (node: string) => boolean,
    private readonly log: Logger,
  ) {
    control.on(StreamControlType.Command, (msg) => {
      const d = parseObject(msg.data);
      if (!d || typeof d['cid'] !== 'number') return;
      const frames = Array.isArray(d['frames']) ? (d['frames'] as unknown[]).filter((f): f is string => typeof f === 'string') : [];
      const result =
        typeof d['stream'] === 'string' && typeof d['secret'] === 'string'
          ? this.local(d['stream'], d['secret'], frames)
          : { status: 400, message: 'malformed forward' };
      this.control.send(StreamControlType.Reply, { cid: d['cid'], ...result }, msg.from).catch((err: unknown) => {
        this.log.debug({ err, to: msg.from }, 'stream command reply not sent');
      });
    });
    control.on(StreamControlType.Reply, (msg) => {
      const d = parseObject(msg.data);
      const waiting = d && typeof d['cid'] === 'number' ? this.pending.get(d['cid']) : undefined;
      if (!d || !waiting) return;
      this.pending.delete(d['cid'] as number);
      clearTimeout(waiting.timer);
      waiting.resolve({
        status: typeof d['status'] === 'number' ? d['status'] : 502,
        message: typeof d['message'] === 'string' ? d['message'] : '',
      });
    });
  }

  /** Hands `frames` to `stream` wherever it is held. */
  route(stream: string, secret: string, frames: string[]): Promise<CommandResult> {
    const node = nodeOfStream(stream);
    if (node === undefined) return Promise.resolve({ status: 404, message: 'no such stream' });
    if (node === this.control.node) return Promise.resolve(this.local(stream, secret, frames));
    if (this.pending.size >= MAX_PENDING) return Promise.resolve({ status: 503, message: 'too many forwarded commands waiting; retry' });
    // A node this one has not heard announce itself may be new (announcements are periodic) or may
    // not exist: forward anyway, but give up sooner and call the stream unknown.
    const member = this.isMember(node);
    const deadline = member ? FORWARD_DEADLINE_MS : UNKNOWN_NODE_DEADLINE_MS;
    const cid = ++this.seq;
    return new Promise<CommandResult>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(cid);
        resolve(
          member
            ? { status: 504, message: `the node holding the stream did not answer within ${deadline} ms` }
            : { status: 404, message: 'no such stream (its node did not answer and is not in the fleet)' },
        );
      }, deadline);
      timer.unref();
      this.pending.set(cid, { resolve, timer });
      this.control.send(StreamControlType.Command, { cid, stream, secret, frames }, node).catch(() => {
        if (!this.pending.delete(cid)) return;
        clearTimeout(timer);
        resolve({ status: 503, message: 'control plane unavailable; retry' });
      });
    });
  }

  /** Settles every forward still waiting (shutdown). */
  stop(): void {
    for (const [cid, w] of this.pending) {
      clearTimeout(w.timer);
      w.resolve({ status: 503, message: 'node shutting down' });
      this.pending.delete(cid);
    }
  }
}
