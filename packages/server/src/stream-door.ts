/**
 * The stream doors, on the same port as `/ws` (docs/protocol.md, "Transports"):
 *
 * - `GET /sse` opens a Server-Sent Events stream (`?channel=` repeatable, `?ticket=` for an
 *   authenticated stream, `Last-Event-ID` or `?lastEventId=` to resume);
 * - `POST /stream` opens an HTTP stream of protocol v1 frames, one per line; the body holds the first
 *   frames (`connect`, subscribes), so the token travels in a body, never in a URL;
 * - `POST /stream/<id>` carries commands (protocol v1 frames, one per line) for a stream, with the
 *   stream's secret in `Gatehouse-Secret`; on another node it is forwarded (stream-routing.ts);
 * - `POST /sse/ticket` trades a token (`Authorization: Bearer`) for a single-use ticket.
 *
 * Admission is the WebSocket door's: the same origin list, per-address rate and node refusals.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { CloseCode, PROTOCOL_VERSION, formatCloseReason } from '@gatehouse/protocol';
import { AddressLimiter } from './admission.js';
import type { ControlPlane } from './control.js';
import { parseObject } from './control.js';
import { ApiError, readBody, sendError, sendJson } from './http-api.js';
import type { GatewayOptions } from './options.js';
import type { Session } from './session.js';
import type { FleetRequests } from './fleet-requests.js';
import { StreamRouter, StreamControlType } from './stream-routing.js';
import type { CommandResult } from './stream-routing.js';
import { StreamTickets } from './stream-ticket.js';
import { MAX_EVENT_ID_BYTES, StreamTransport, decodeEventId, eventIdCost } from './stream-transport.js';
import type { Transport } from './transport.js';
import type { WebSocketDoor } from './upgrade.js';

/** Frames one POST may carry. */
export const MAX_POST_FRAMES = 64;
/** Command POSTs per second per address (twice this in a burst). */
export const POSTS_PER_SECOND = 50;

/** What the stream doors work with. */
export interface StreamDoorDeps {
  options: GatewayOptions;
  log: Logger;
  /** Admission: origin, per-address rate, node refusals. */
  door: WebSocketDoor;
  control: ControlPlane;
  /** Fleet requests: a command for a stream held by another node is forwarded as one. */
  requests: FleetRequests;
  /** Takes each new stream, as it takes each WebSocket. */
  protocol: { accept(transport: Transport): Session };
  /** Which nodes are live (a forward to one not heard of gives up sooner). */
  fleet: { list(): readonly { node: string }[] };
  /** Verifies a token for a ticket; throws when it is not valid. */
  verifier: { verify(token: string): Promise<unknown> };
}

/** Serves `/sse`, `/stream`, `/stream/<id>` and `/sse/ticket`. */
export class StreamDoor {
  private readonly streams = new Map<string, StreamTransport>();
  private readonly router: StreamRouter;
  private readonly tickets: StreamTickets;
  private readonly posts = new AddressLimiter(POSTS_PER_SECOND);
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly d: StreamDoorDeps) {
    const isMember = (node: string) => d.fleet.list().some((m) => m.node === node);
    this.router = new StreamRouter(d.requests, (id, secret, frames) => this.local(id, secret, frames), isMember);
    this.tickets = new StreamTickets(d.options.tokenSecret);
    d.control.on(StreamControlType.TicketUsed, (msg) => {
      const nonce = parseObject(msg.data)?.['nonce'];
      if (typeof nonce === 'string') this.tickets.markUsed(nonce);
    });
  }

  /** Streams open on this node. */
  get size(): number {
    return this.streams.size;
  }

  start(): void {
    this.sweepTimer = setInterval(() => this.posts.sweep(), 10_000);
    this.sweepTimer.unref();
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
  }

  /** Answers the request when `path` is one of the stream routes; false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (path !== '/sse' && path !== '/stream' && path !== '/sse/ticket' && !path.startsWith('/stream/')) return false;
    const cors = this.cors(req);
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        ...cors,
        'access-control-allow-methods': 'GET, POST',
        'access-control-allow-headers': 'authorization, content-type, gatehouse-secret, last-event-id',
        'access-control-max-age': '600',
      });
      res.end();
      return true;
    }
    const method = path === '/sse' ? 'GET' : 'POST';
    if (req.method !== method) {
      sendJson(res, 405, { error: { code: 'bad_request', message: `${path} takes ${method}` } }, { allow: method, ...cors });
      return true;
    }
    const task =
      path === '/sse'
        ? this.openSse(req, res, cors)
        : path === '/stream'
          ? this.openHttpStream(req, res, cors)
          : path === '/sse/ticket'
            ? this.issueTicket(req, res, cors)
            : this.command(req, res, path.slice('/stream/'.length), cors);
    task.catch((err: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (err instanceof ApiError) {
        sendError(res, err);
        if (err.code === 'payload_too_large') res.once('finish', () => req.destroy());
      } else {
        this.d.log.error({ err }, 'stream route failed');
        sendError(res, new ApiError('internal', 'internal error'));
      }
    });
    return true;
  }

  /** CORS headers for an allowed cross-origin caller (none for same-origin requests). */
  private cors(req: IncomingMessage): Record<string, string> {
    const origin = req.headers.origin;
    const list = this.d.options.allowedOrigins;
    if (origin === undefined || (list.length > 0 && !list.includes(origin))) return {};
    return { 'access-control-allow-origin': origin, vary: 'origin' };
  }

  private async openSse(req: IncomingMessage, res: ServerResponse, cors: Record<string, string>): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const max = this.d.options.maxSubscriptions;
    const header = req.headers['last-event-id'];
    const lastId = (typeof header === 'string' ? header : undefined) ?? url.searchParams.get('lastEventId') ?? '';
    const resume = decodeEventId(lastId, max);
    const channels = [...new Set([...url.searchParams.getAll('channel'), ...resume.keys()])];
    let cost = 0;
    for (const c of channels) cost += eventIdCost(c);
    if (channels.length > max || cost > MAX_EVENT_ID_BYTES) {
      throw new ApiError(
        'limit_exceeded',
        `an SSE stream holds at most ${max} channels whose names fit its ${MAX_EVENT_ID_BYTES}-byte event id`,
      );
    }
    let token: string | undefined;
    const ticket = url.searchParams.get('ticket');
    if (ticket !== null) {
      const opened = this.tickets.open(ticket);
      if ('error' in opened) throw new ApiError('unauthorized', opened.error);
      token = opened.token;
      this.d.control.send(StreamControlType.TicketUsed, { nonce: opened.nonce }).catch(() => {});
    }
    const frames: string[] = [
      JSON.stringify({ op: 'connect', id: 1, v: PROTOCOL_VERSION, token, reconnect: resume.size > 0 || undefined }),
    ];
    channels.forEach((channel, i) => frames.push(JSON.stringify({ op: 'subscribe', id: i + 2, channel, since: resume.get(channel) })));
    const t = this.open('sse', req, res, cors);
    if (!t) return;
    for (const [c, p] of resume) if (channels.includes(c)) t.resumeAt(c, p);
    for (const f of frames) t.inject(Buffer.from(f, 'utf8'));
  }

  private async openHttpStream(req: IncomingMessage, res: ServerResponse, cors: Record<string, string>): Promise<void> {
    const frames = splitFrames(await readBody(req, this.bodyLimit()), this.d.options.maxPayloadBytes);
    const t = this.open('http-stream', req, res, cors);
    if (t) for (const f of frames) t.inject(Buffer.from(f, 'utf8'));
  }

  /** Opens a stream response and hands it to the protocol; undefined when it was refused. */
  private open(
    kind: 'sse' | 'http-stream',
    req: IncomingMessage,
    res: ServerResponse,
    cors: Record<string, string>,
  ): StreamTransport | undefined {
    const { door, options } = this.d;
    const address = door.clientAddress(req);
    const verdict = door.check(req, address);
    if (verdict && 'status' in verdict) {
      sendJson(
        res,
        verdict.status,
        { error: { code: verdict.status === 403 ? 'forbidden' : 'rate_limited', message: verdict.reason } },
        cors,
      );
      return undefined;
    }
    res.writeHead(200, {
      ...cors,
      'content-type': kind === 'sse' ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-store, no-transform',
      // nginx buffers proxied responses unless told not to.
      'x-accel-buffering': 'no',
    });
    const id = `${options.nodeId}~${randomBytes(18).toString('base64url')}`;
    const secret = randomBytes(18).toString('base64url');
    const t = new StreamTransport(kind, id, secret, address, req, res, CloseCode.Drain);
    const hello = JSON.stringify({ op: 'stream', stream: id, secret, heartbeat: options.heartbeatMs });
    res.write(kind === 'sse' ? `retry: 2000\nevent: stream\ndata: ${hello}\n\n` : hello + '\n');
    if (verdict) {
      const code = verdict.refusal === 'draining' ? CloseCode.Drain : CloseCode.Overloaded;
      t.close(code, formatCloseReason(`overloaded (${verdict.refusal})`, verdict.retryMs));
      return undefined;
    }
    const s = this.d.protocol.accept(t);
    t.owner = s;
    this.streams.set(id, t);
    res.once('close', () => this.streams.delete(id));
    return t;
  }

  private async issueTicket(req: IncomingMessage, res: ServerResponse, cors: Record<string, string>): Promise<void> {
    const auth = req.headers.authorization;
    const token = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : '';
    if (token === '') throw new ApiError('unauthorized', 'send the token as "Authorization: Bearer <token>"');
    try {
      await this.d.verifier.verify(token);
    } catch (err) {
      throw new ApiError('unauthorized', err instanceof Error ? err.message : 'token could not be verified');
    }
    sendJson(res, 200, this.tickets.issue(token), cors);
  }

  private async command(req: IncomingMessage, res: ServerResponse, id: string, cors: Record<string, string>): Promise<void> {
    const address = this.d.door.clientAddress(req);
    if (!this.posts.take(address))
      throw new ApiError('rate_limited', `more than ${POSTS_PER_SECOND} command POSTs per second from this address`, 1);
    const secret = req.headers['gatehouse-secret'];
    if (typeof secret !== 'string' || secret === '')
      throw new ApiError('unauthorized', 'the stream secret goes in the Gatehouse-Secret header');
    const frames = splitFrames(await readBody(req, this.bodyLimit()), this.d.options.maxPayloadBytes);
    const result = await this.router.route(id, secret, frames);
    if (result.status === 202) sendJson(res, 202, { accepted: frames.length }, cors);
    else sendJson(res, result.status, { error: { code: errorCode(result.status), message: result.message } }, cors);
  }

  /** Hands frames to a stream this node holds. */
  private local(id: string, secret: string, frames: string[]): CommandResult {
    const t = this.streams.get(id);
    if (!t || !t.writable) return { status: 404, message: 'no such stream (it closed, or never was): open a new one' };
    const a = Buffer.from(secret, 'utf8');
    const b = Buffer.from(t.secret, 'utf8');
    if (a.length !== b.length || !timingSafeEqual(a, b)) return { status: 403, message: 'wrong secret for this stream' };
    if (frames.length > MAX_POST_FRAMES) return { status: 413, message: `at most ${MAX_POST_FRAMES} frames per POST` };
    if (t.kind === 'sse') {
      let cost = 0;
      for (const c of t.channels) cost += eventIdCost(c);
      for (const f of frames) {
        const channel = f.includes('"subscribe"') ? parseObject(f)?.['channel'] : undefined;
        if (typeof channel === 'string' && (cost += eventIdCost(channel)) > MAX_EVENT_ID_BYTES) {
          return { status: 400, message: `subscriptions of an SSE stream must fit its ${MAX_EVENT_ID_BYTES}-byte event id` };
        }
      }
    }
    for (const f of frames) t.inject(Buffer.from(f, 'utf8'));
    return { status: 202, message: '' };
  }

  private bodyLimit(): number {
    return this.d.options.maxPayloadBytes + 16 * 1024;
  }
}

/** The non-empty lines of a POST body, each one frame; a frame over `max` bytes refuses the body. */
function splitFrames(body: Buffer, max: number): string[] {
  const frames: string[] = [];
  for (const line of body.toString('utf8').split('\n')) {
    const f = line.trim();
    if (f === '') continue;
    if (Buffer.byteLength(f) > max) throw new ApiError('payload_too_large', `a frame is larger than the limit of ${max} bytes`);
    if (frames.length >= MAX_POST_FRAMES) throw new ApiError('payload_too_large', `at most ${MAX_POST_FRAMES} frames per POST`);
    frames.push(f);
  }
  return frames;
}

function errorCode(status: number): string {
  return status === 404
    ? 'not_found'
    : status === 403
      ? 'forbidden'
      : status === 413
        ? 'payload_too_large'
        : status === 400
          ? 'limit_exceeded'
          : 'unavailable';
}
