/**
 * Streams over plain HTTP responses: Server-Sent Events (`GET /sse`, kind `sse`) and HTTP streaming
 * (`POST /stream`, kind `http-stream`, newline-delimited protocol v1 frames). Both are transports
 * like the WebSocket one: the same protocol handler, hub, caps, heartbeats and closes drive them.
 * Inbound frames arrive by POST (stream-door.ts) and are handed in with `inject`.
 *
 * SSE event ids: every event that moves a channel's position carries an `id:` holding the position
 * of every channel the stream is subscribed to (`encodeEventId`), so the browser's automatic
 * reconnect (`Last-Event-ID`) resumes all of them on any node. The hub still builds each
 * publication's bytes once per framing; the per-stream id line is written beside those shared bytes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseRetryHint } from '@gatehouse/protocol';
import { FramingId } from './transport.js';
import type { Framing, Transport, TransportListener } from './transport.js';

/** What an SSE frame moves: the channel's position after it (looked up by the frame's bytes). */
interface Position {
  channel: string;
  epoch: string;
  offset: number;
  /** A `subscribed` reply: `true` when replayed publications follow (the position stays until they do). */
  recovered?: boolean;
}

/** Positions carried by SSE frames, keyed by the shared frame Buffer (built once per fan-out). */
const positions = new WeakMap<Buffer, Position>();

/** Most bytes an SSE event id may hold (Last-Event-ID comes back as a request header). */
export const MAX_EVENT_ID_BYTES = 4000;

/** Bytes one channel's entry may take in an event id, counted before subscribing (epoch and offset included). */
export function eventIdCost(channel: string): number {
  return channel.length + 64;
}

function opOf(json: string): string {
  // Every server frame is encoded with `op` first: {"op":"...
  return json.startsWith('{"op":"') ? json.slice(7, json.indexOf('"', 7)) : 'message';
}

/** JSON text on one line (publication data from the HTTP API may hold raw newlines as whitespace). */
function oneLine(json: string): string {
  return json.includes('\n') || json.includes('\r') ? JSON.stringify(JSON.parse(json)) : json;
}

/** Server-Sent Events: a `pub` is an unnamed event (`onmessage`), every other frame an event named by its op. */
export const SSE_FRAMING: Framing = {
  id: FramingId.Sse,
  message(json) {
    const op = opOf(json);
    if (op === 'pub') {
      const buf = Buffer.from(`data: ${oneLine(json)}\n\n`, 'utf8');
      const cut = json.indexOf(',"ts":');
      if (cut > 0) {
        const p = JSON.parse(json.slice(0, cut) + '}') as Position;
        if (p.offset > 0) positions.set(buf, { channel: p.channel, epoch: p.epoch, offset: p.offset });
      }
      return buf;
    }
    // `error` frames are `problem` events: an `error` event is EventSource's own (a lost
    // connection), and `onerror` would take a refused subscribe for one.
    const buf = Buffer.from(`event: ${op === 'error' ? 'problem' : op}\ndata: ${oneLine(json)}\n\n`, 'utf8');
    if (op === 'subscribed') {
      const f = JSON.parse(json) as Position;
      if (f.epoch !== '') positions.set(buf, { channel: f.channel, epoch: f.epoch, offset: f.offset, recovered: f.recovered });
    }
    return buf;
  },
};

/** HTTP streaming: one protocol v1 frame per line. */
export const NDJSON_FRAMING: Framing = {
  id: FramingId.HttpStream,
  message: (json) => Buffer.from(oneLine(json) + '\n', 'utf8'),
};

/**
 * Encodes channel positions as an SSE event id: `channel|epoch|offset` entries joined by `,`
 * (channel names cannot hold `|` or `,`; the epoch is percent-encoded).
 */
export function encodeEventId(pos: ReadonlyMap<string, { epoch: string; offset: number }>, channels: readonly string[]): string {
  let id = '';
  for (const c of channels) {
    const p = pos.get(c);
    if (!p) continue;
    id += (id === '' ? '' : ',') + c + '|' + encodeURIComponent(p.epoch) + '|' + p.offset;
  }
  return id;
}

/** Decodes an event id (`Last-Event-ID`); malformed entries are skipped, at most `max` kept. */
export function decodeEventId(id: string, max: number): Map<string, { epoch: string; offset: number }> {
  const out = new Map<string, { epoch: string; offset: number }>();
  if (id.length > MAX_EVENT_ID_BYTES) return out;
  for (const entry of id.split(',')) {
    if (out.size >= max) break;
    const [channel, epoch, offset] = entry.split('|');
    const n = Number(offset);
    if (!channel || epoch === undefined || !Number.isSafeInteger(n) || n < 0) continue;
    try {
      out.set(channel, { epoch: decodeURIComponent(epoch), offset: n });
    } catch {
      // a malformed escape: skip the entry
    }
  }
  return out;
}

/** A close as the stream says it: the last event (SSE) or line (http-stream) before the response ends. */
export function closeFrame(code: number, reason: string, retryMs: number | undefined): string {
  return JSON.stringify(retryMs === undefined ? { op: 'close', code, reason } : { op: 'close', code, reason, retry: retryMs });
}

const NO_CHANNELS: readonly string[] = [];

const SSE_PING = 'event: ping\ndata: {"op":"ping"}\n\n';

// One pair of listener functions for every stream (Node calls them with `this` = the response), so
// a connection costs no closures here.
const kStream = Symbol('gatehouse.stream');
type Tagged = ServerResponse & { [kStream]: StreamTransport };
function onResponseClose(this: ServerResponse): void {
  (this as Tagged)[kStream].responseClosed();
}
function onResponseError(this: ServerResponse, err: Error): void {
  (this as Tagged)[kStream].listener?.onError(err);
}

/** One client's stream: an HTTP response kept open. */
export class StreamTransport implements Transport {
  readonly framing: Framing;
  listener: TransportListener | undefined;
  /** SSE only: each subscribed channel's position as of the last event written (allocated with the first). */
  private positions: Map<string, { epoch: string; offset: number }> | undefined;
  /**
   * SSE only: the session whose channels the event ids list (set by the door once the session
   * exists). Held by reference: the hub replaces a session's channel array on subscribe.
   */
  owner: { readonly channels: readonly string[] } | undefined;
  private closed = false;
  private closeCode = 0;

  constructor(
    readonly kind: 'sse' | 'http-stream',
    readonly id: string,
    readonly secret: string,
    readonly remoteAddress: string,
    req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly drainCode: number,
  ) {
    this.framing = kind === 'sse' ? SSE_FRAMING : NDJSON_FRAMING;
    (res as Tagged)[kStream] = this;
    res.on('close', onResponseClose);
    res.on('error', onResponseError);
    req.socket.setKeepAlive(true, 30_000);
    req.socket.setNoDelay(true);
  }

  /** @internal The response closed (the client left, or the close this side began finished). */
  responseClosed(): void {
    this.closed = true;
    this.listener?.onClose(this.closeCode || 1006);
  }

  /** SSE only: `channel` resumes at `pos` (a reconnect's Last-Event-ID); the next event id carries it. */
  resumeAt(channel: string, pos: { epoch: string; offset: number }): void {
    (this.positions ??= new Map()).set(channel, pos);
  }

  /** The channels the session subscribes to now. */
  get channels(): readonly string[] {
    return this.owner?.channels ?? NO_CHANNELS;
  }

  listen(listener: TransportListener): void {
    this.listener = listener;
  }

  /** Hands one inbound frame (from a POST) to the protocol. */
  inject(data: Buffer): void {
    if (!this.closed) this.listener?.onMessage(data, false);
  }

  get writable(): boolean {
    return !this.closed && !this.res.writableEnded && !this.res.destroyed;
  }

  get bufferedBytes(): number {
    return this.res.writableLength;
  }

  whenDrained(fn: () => void): boolean {
    this.res.once('drain', fn);
    return true;
  }

  write(bytes: Buffer): void {
    if (!this.writable) return;
    this.res.write(this.kind === 'sse' ? this.withIds([bytes]) : bytes);
  }

  writeMany(chunks: readonly Buffer[], totalBytes: number): void {
    if (!this.writable) return;
    if (this.kind === 'sse') this.res.write(this.withIds(chunks));
    else this.res.write(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks as Buffer[], totalBytes));
  }

  /** The SSE bytes for `chunks` with an `id:` line before each event that moves a position. */
  private withIds(chunks: readonly Buffer[]): Buffer {
    const out: Buffer[] = [];
    for (const c of chunks) {
      const p = positions.get(c);
      if (p !== undefined && p.recovered !== true) {
        const positions = (this.positions ??= new Map());
        positions.set(p.channel, { epoch: p.epoch, offset: p.offset });
        if (positions.size > this.channels.length * 2 + 8) this.prune(positions);
        out.push(Buffer.from(`id: ${encodeEventId(positions, this.channels)}\n`, 'utf8'), c);
        // A resume history could not cover: say so as a gap event too, for EventSource users (the
        // SDK, which reads `recovered` itself, skips gaps marked `resume`).
        if (p.recovered === false) {
          out.push(
            Buffer.from(`event: gap\ndata: {"op":"gap","channel":${JSON.stringify(p.channel)},"reason":"history","resume":true}\n\n`),
          );
        }
        continue;
      }
      out.push(c);
    }
    return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  }

  /** Forgets positions of channels the session left. */
  private prune(positions: Map<string, unknown>): void {
    for (const c of positions.keys()) if (!this.channels.includes(c)) positions.delete(c);
  }

  heartbeat(): void {
    // A stream has no pong: bytes leaving the process are its sign of life (the heartbeat loop
    // calls this only while the backlog is small, so a reader that stops reading is cut after
    // two beats once its backlog passes that mark, or as a slow consumer before).
    // A named event on SSE: invisible to `onmessage`, and the SDK's watchdog sees it.
    this.res.write(this.kind === 'sse' ? SSE_PING : '{"op":"ping"}\n');
    this.listener?.onAlive();
  }

  pong(): void {
    // no transport-level ping on a stream
  }

  close(code: number, reason: string): void {
    if (this.closeCode !== 0 || !this.writable) return;
    this.closeCode = code;
    const retryMs = parseRetryHint(reason);
    const json = closeFrame(code, reason, retryMs);
    if (this.kind === 'sse') {
      const name = code === this.drainCode ? 'drain' : 'close';
      this.res.end(`${retryMs !== undefined ? `retry: ${Math.max(1, retryMs)}\n` : ''}event: ${name}\ndata: ${json}\n\n`);
    } else {
      this.res.end(json + '\n');
    }
  }

  terminate(): void {
    this.closed = true;
    this.res.destroy();
  }
}
