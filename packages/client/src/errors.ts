/**
 * Errors the SDK hands to the application. Each carries a stable `code`: either the protocol's
 * error code from the server's `error` frame, or one of the SDK's own codes below.
 */
import type { ErrorCode } from '@gatehouse/protocol';

/** Codes for failures the SDK detects itself (no server reply involved). */
export type ClientErrorCode =
  /** The client was closed (by `close()` or a terminal close code) before the request finished. */
  | 'closed'
  /** The connection dropped after the request was sent; it may or may not have taken effect. */
  | 'disconnected'
  /** Not connected and `maxQueuedRequests` is 0, so the request cannot wait. */
  | 'not_connected'
  /** Not connected and the queue of waiting requests is full. */
  | 'queue_full'
  /** No reply within `requestTimeoutMs` (time spent queued counts). */
  | 'timeout'
  /** `getToken` threw or returned something that is not a string. */
  | 'token_failed'
  /** The server sent a frame the SDK could not read. */
  | 'protocol'
  /** An application listener threw; `cause` holds what it threw. */
  | 'listener_failed';

/** Every code a `GatehouseError` may carry. */
export type GatehouseErrorCode = ErrorCode | ClientErrorCode;

/** An error with a stable machine-readable code. */
export class GatehouseError extends Error {
  override readonly name = 'GatehouseError';
  constructor(
    readonly code: GatehouseErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
