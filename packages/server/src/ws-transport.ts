/**
 * The WebSocket transport: the one file that knows `ws` internals.
 *
 * Fast path: a publication's frame is built once with ws's public `Sender.frame` and the same bytes
 * are written straight to every subscriber's `net.Socket` (one write per socket per flush), which
 * skips ws's per-send framing and copying. That needs the raw socket under the WebSocket, a private
 * field; `probeFastPath` checks at start that both are what this code expects, and where they are
 * not (a future ws), every connection falls back to the public `send()`, one message per call.
 */
import type { Duplex } from 'node:stream';
import * as wsModule from 'ws';
import type { RawData, WebSocket } from 'ws';
import { joinFrames } from './outbound.js';
import { FramingId } from './transport.js';
import type { Framing, Transport, TransportListener } from './transport.js';

const OP_TEXT = 0x1;
const OP_PING = 0x9;

type RawSocket = Duplex & { writableLength: number; encrypted?: boolean; _handle?: { fd?: unknown } | null };

/** ws's frame builder (public, but not in @types/ws). */
interface FrameBuilder {
  frame(data: Buffer, options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean }): Buffer[];
}
// The ESM entry exports Sender by name (the default export is the WebSocket class alone).
const Sender = (wsModule as unknown as { Sender?: Partial<FrameBuilder> }).Sender;

/** One unmasked, final WebSocket frame of `opcode` carrying `payload`, in one buffer. */
function buildFrame(opcode: number, payload: Buffer): Buffer {
  const parts = (Sender as FrameBuilder).frame(payload, { fin: true, opcode, mask: false, readOnly: true, rsv1: false });
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

/** Whole WebSocket text frames: what the fast path writes to the socket. */
export const WS_FRAMES: Framing = {
  id: FramingId.WsFrames,
  message: wsTextFrame,
};

/** The UTF-8 payload alone: what the fallback hands to `send()`, which frames it. */
export const WS_PAYLOADS: Framing = {
  id: FramingId.WsPayloads,
  message: (json) => Buffer.from(json, 'utf8'),
};

const APP_PING = '{"op":"ping"}';

/**
 * What a protocol spoken over WebSocket frames differently: its framings (whole frames for the fast
 * path, payloads for the fallback) and its application ping. Built once per protocol.
 */
export interface WsVariant {
  readonly frames: Framing;
  readonly payloads: Framing;
  /** The application ping the protocol's clients answer or watch. */
  readonly appPing: string;
  /**
   * The fast path's heartbeat: a WebSocket ping (answered by every client, browsers included, which
   * proves the path is alive) and `appPing` (browsers cannot see protocol pings), in one buffer so
   * a beat costs one write per socket.
   */
  readonly beat: Buffer;
}

/** A variant for a protocol other than v1 (Pusher): `frames` must build whole text frames (`wsTextFrame`). */
export function wsVariant(frames: Framing, payloads: Framing, appPing: string): WsVariant {
  const beat =
    typeof Sender?.frame === 'function' ? Buffer.concat([buildFrame(OP_PING, Buffer.alloc(0)), frames.message(appPing)]) : Buffer.alloc(0);
  return { frames, payloads, appPing, beat };
}

/** One whole WebSocket text frame carrying `text` (what a fast-path framing's `message` returns). */
export function wsTextFrame(text: string): Buffer {
  return buildFrame(OP_TEXT, Buffer.from(text, 'utf8'));
}

const NATIVE: WsVariant = wsVariant(WS_FRAMES, WS_PAYLOADS, APP_PING);

let fastPath: boolean | undefined;

/**
 * Checks once that `Sender.frame` builds the frames this code expects and that a WebSocket keeps
 * its socket where the fast path reads it. Returns whether the fast path is used.
 */
export function probeFastPath(sample?: WebSocket): boolean {
  if (fastPath !== undefined && sample === undefined) return fastPath;
  let ok: boolean;
  try {
    const f = WS_FRAMES.message('x');
    ok = typeof Sender?.frame === 'function' && f.length === 3 && f[0] === 0x81 && f[1] === 0x01 && f[2] === 0x78;
  } catch {
    ok = false;
  }
  if (ok && sample !== undefined) ok = rawSocketOf(sample) !== undefined;
  fastPath = ok;
  return ok;
}

function rawSocketOf(ws: WebSocket): RawSocket | undefined {
  const socket = (ws as unknown as { _socket?: RawSocket })._socket;
  return socket && typeof socket.write === 'function' && typeof socket.writableLength === 'number' ? socket : undefined;
}

/**
 * ws closes a connection it cannot read (a message over the payload limit, invalid UTF-8) with a
 * bare code; this gives those closes a reason a developer can act on. Installed on each server-side
 * WebSocket as its `close`, one shared function (no closure per connection).
 */
function closeWithReason(this: WebSocket, code?: number, reason?: string | Buffer): void {
  if (reason === undefined && code !== undefined) {
    if (code === 1009) {
      const limit = (this as unknown as { _receiver?: { _maxPayload?: number } })._receiver?._maxPayload;
      reason = limit ? `message too big: the limit is ${limit} bytes` : 'message too big';
    } else if (code === 1007) {
      reason = 'text message is not valid UTF-8';
    }
  }
  plainClose.call(this, code, reason);
}
const plainClose = (
  wsModule.WebSocket as unknown as { prototype: { close(this: WebSocket, code?: number, reason?: string | Buffer): void } }
).prototype.close;

// One set of listener functions for every connection (ws calls them with `this` = the WebSocket),
// so a connection costs no closures here.
const kTransport = Symbol('gatehouse.transport');
type Tagged = WebSocket & { [kTransport]: WebSocketTransport };
function onWsMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  shrinkReceiver(this);
  (this as Tagged)[kTransport].listener?.onMessage(data as Buffer, isBinary);
}

/** The parts of ws's per-connection objects that `leanEvents` and `shrinkReceiver` touch. */
interface WsInternals {
  _events?: unknown;
  _eventsCount?: number;
  _receiver?: { _buffers?: unknown; _bufferedBytes?: number };
}

/**
 * An EventEmitter starts with a null-prototype events object, which V8 keeps in dictionary mode
 * (about 250 bytes per connection once the five listeners are on). A fresh WebSocket that has no
 * listeners yet gets an object of the same keys in fast mode instead (about 60 bytes), as Node's
 * own streams do for theirs. EventEmitter reads it as before.
 */
function leanEvents(ws: WebSocket): void {
  const w = ws as unknown as WsInternals;
  if (w._eventsCount !== 0 || typeof w._events !== 'object' || w._events === null) return;
  if (Object.keys(w._events).length !== 0) return;
  w._events = { message: undefined, pong: undefined, ping: undefined, error: undefined, close: undefined };
}

/**
 * ws's receiver keeps its chunk list, once grown by the first message, at its grown size (about 150
 * bytes) for the rest of the connection. When nothing is buffered it is swapped for an empty one,
 * so an idle connection does not hold it.
 */
function shrinkReceiver(ws: WebSocket): void {
  const r = (ws as unknown as WsInternals)._receiver;
  if (r !== undefined && r._bufferedBytes === 0 && Array.isArray(r._buffers) && r._buffers.length === 0) r._buffers = [];
}
function onWsPong(this: WebSocket): void {
  (this as Tagged)[kTransport].listener?.onAlive();
}
function onWsPing(this: WebSocket, data: Buffer): void {
  (this as Tagged)[kTransport].listener?.onPing(data);
}
function onWsError(this: WebSocket, err: Error & { code?: string }): void {
  (this as Tagged)[kTransport].listener?.onError(err);
}
function onWsClose(this: WebSocket, code: number): void {
  (this as Tagged)[kTransport].listener?.onClose(code);
}

/** A client connection over WebSocket (`ws`). */
export class WebSocketTransport implements Transport {
  readonly kind = 'websocket';
  readonly framing: Framing;
  /** @internal Set by `listen`. */
  listener: TransportListener | undefined;
  private readonly socket: RawSocket | undefined;
  /** The socket's descriptor for the batched send; -1 where there is none (TLS, fallback). */
  private readonly fd: number;

  constructor(
    private readonly ws: WebSocket,
    readonly remoteAddress: string,
    private readonly variant: WsVariant = NATIVE,
  ) {
    const socket = probeFastPath() ? rawSocketOf(ws) : undefined;
    this.socket = socket;
    this.framing = socket ? variant.frames : variant.payloads;
    // A TLS socket encrypts in Node: only a plain socket's descriptor takes frames as they are.
    const fd = socket !== undefined && socket.encrypted !== true ? socket._handle?.fd : undefined;
    this.fd = typeof fd === 'number' && fd >= 0 ? fd : -1;
    (ws as Tagged)[kTransport] = this;
    ws.close = closeWithReason;
    leanEvents(ws);
  }

  listen(listener: TransportListener): void {
    this.listener = listener;
    const ws = this.ws;
    ws.on('message', onWsMessage);
    ws.on('pong', onWsPong);
    ws.on('ping', onWsPing);
    ws.on('error', onWsError);
    ws.on('close', onWsClose);
  }

  get writable(): boolean {
    // readyState leaves OPEN when the peer's close frame arrives and ws echoes it: nothing may
    // follow a close frame (RFC 6455 5.5.1), even while the echo waits behind a backlog.
    return this.ws.readyState === 1 && (this.socket === undefined || this.socket.writable);
  }

  get bufferedBytes(): number {
    return this.socket ? this.socket.writableLength : this.ws.bufferedAmount;
  }

  whenDrained(fn: () => void): boolean {
    if (!this.socket) return false;
    this.socket.once('drain', fn);
    return true;
  }

  sendFd(): number {
    const socket = this.socket;
    // Node closes the descriptor and drops the handle in the same call (destroy): while the handle
    // is there, the descriptor is this socket's. Anything waiting in its write queue goes first,
    // and nothing follows a close frame (readyState leaves OPEN with the peer's, as in `writable`).
    if (this.fd < 0 || socket === undefined || socket._handle == null || socket.writableLength !== 0 || this.ws.readyState !== 1) return -1;
    return this.fd;
  }

  write(bytes: Buffer): void {
    if (this.socket) this.socket.write(bytes);
    else this.ws.send(bytes, { binary: false });
  }

  writeMany(chunks: readonly Buffer[], totalBytes: number): void {
    if (chunks.length === 1) this.write(chunks[0] as Buffer);
    else if (this.socket) this.socket.write(joinFrames(chunks, totalBytes));
    else for (const c of chunks) this.ws.send(c, { binary: false });
  }

  heartbeat(): void {
    if (this.socket) {
      this.socket.write(this.variant.beat);
      return;
    }
    this.ws.ping();
    this.ws.send(this.variant.appPing);
  }

  pong(data: Buffer): void {
    this.ws.pong(data);
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }

  terminate(): void {
    this.ws.terminate();
  }
}
