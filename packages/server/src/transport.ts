/**
 * The transport boundary. A transport moves bytes for one client connection and knows nothing of
 * channels, tokens or frames of the protocol; the session, the protocol handler and the hub see
 * only this interface. The WebSocket transport (ws-transport.ts) is the one file that knows `ws`;
 * an HTTP streaming or SSE response, or a native WebSocket server, fits the same shape.
 */

import type { GapReason } from '@gatehouse/protocol';
import type { Publication } from './backbone.js';
import type { SubscribeResult } from './hub.js';
import type { Session } from './session.js';

/**
 * How a transport turns one protocol message (JSON text) into the bytes it writes. The hub builds
 * each publication's bytes once per framing during a fan-out and hands the same Buffer to every
 * subscriber that shares the framing, so a framing must be a shared, stateless object.
 */
export interface Framing {
  /** Small integer, unique per framing in the process: the hub's cache slot for this framing. */
  readonly id: number;
  /** The bytes that carry `json` as one message on this transport. */
  message(json: string): Buffer;
  /**
   * For a protocol whose frames are not v1's (Pusher, pusher-framing.ts): one publication's bytes,
   * built once per fan-out like `message`. Absent: v1's `pub` frame.
   */
  publication?(pub: Publication): Buffer;
  /** True when `s` must not get `pub` (Pusher's `socket_id` exclusion). Absent: never. */
  excludes?(pub: Publication, s: Session): boolean;
  /** The reply to a subscription the hub completed; undefined sends none. Absent: v1's `subscribed`. */
  subscribed?(channel: string, result: SubscribeResult): string | undefined;
  /** The frame that reports a gap on `channel`; undefined sends none. Absent: v1's `gap`. */
  gap?(channel: string, reason: GapReason): string | undefined;
  /** The close code this protocol's clients understand for a Gatehouse close code. Absent: the same. */
  closeCode?(code: number): number;
}

/**
 * Every framing's id, in one table: the hub caches a publication's bytes by framing id during a
 * fan-out, so two framings that shared an id would hand one of them the other's bytes.
 */
export const FramingId = {
  /** WebSocket, protocol v1: whole frames (fast path), payloads for `send()` (fallback). */
  WsFrames: 0,
  WsPayloads: 1,
  /** Server-Sent Events and HTTP streaming, protocol v1. */
  Sse: 2,
  HttpStream: 3,
  /** Pusher over WebSocket: frames and payloads, plain and with the recovery extension. */
  PusherFrames: 4,
  PusherPayloads: 5,
  PusherRecoveryFrames: 6,
  PusherRecoveryPayloads: 7,
} as const;

/** What a transport reports about its connection. Implemented by the per-connection protocol. */
export interface TransportListener {
  /** One complete inbound message. */
  onMessage(data: Buffer, isBinary: boolean): void;
  /** The peer showed it is alive below the protocol (a WebSocket pong or ping). */
  onAlive(): void;
  /** The peer sent a transport-level ping; answer with `pong` unless the protocol refuses. */
  onPing(data: Buffer): void;
  /** The connection is gone; `code` is the close code seen (1006 when it just dropped). */
  onClose(code: number): void;
  /** A transport error (already handled: the connection closes); for logs and metrics. */
  onError(err: Error & { code?: string }): void;
}

/** One client connection's byte pipe. */
export interface Transport {
  /** How messages are framed on this transport. */
  readonly framing: Framing;
  /** Short name for metrics labels: `websocket`, later `sse`, `http-stream`. */
  readonly kind: string;
  /** The client's address (from the socket, or X-Forwarded-For behind a trusted proxy). */
  readonly remoteAddress: string;
  /** True while bytes may still be written: not closing and the peer has not begun a close. */
  readonly writable: boolean;
  /** Bytes accepted by `write` and not yet handed to the kernel. */
  readonly bufferedBytes: number;
  /** Registers the one listener; events before this call are not lost (none are emitted yet). */
  listen(listener: TransportListener): void;
  /**
   * Calls `fn` once when the bytes waiting have been handed to the kernel. Returns false (and
   * never calls `fn`) where the transport cannot tell; the caller then writes without waiting.
   */
  whenDrained(fn: () => void): boolean;
  /**
   * The descriptor of the transport's own socket when pre-framed bytes may be sent straight to it
   * now (the batched send, native-send.ts): a plain TCP socket, open and `writable`, with nothing
   * waiting in its write queue, so a direct send stays in order with everything written before.
   * -1 when not (the caller then writes through `write` if the transport is `writable`).
   * Absent where the bytes need the transport's own handling (TLS, HTTP responses). Read right
   * before the send: a descriptor is only good while its socket is open.
   */
  sendFd?(): number;
  /** Writes pre-framed bytes (built by `framing`). */
  write(bytes: Buffer): void;
  /** Writes several pre-framed chunks, `totalBytes` long together, as one write where possible. */
  writeMany(chunks: readonly Buffer[], totalBytes: number): void;
  /**
   * Writes one heartbeat: what this transport's peers answer or watch (a WebSocket ping plus the
   * application ping the SDK watches; a comment line on a stream).
   */
  heartbeat(): void;
  /** Answers a transport-level ping (no-op where the transport has none). */
  pong(data: Buffer): void;
  /** Starts an orderly close with `code` and `reason` (at most 123 bytes of ASCII). */
  close(code: number, reason: string): void;
  /** Drops the connection now. */
  terminate(): void;
}
