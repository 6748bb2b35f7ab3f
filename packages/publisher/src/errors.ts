/** The one error type publishers reject with: a stable code, the HTTP status when there was one. */
import type { ErrorCode } from '@gatehouse/protocol';

/** Failures the publisher detects itself, next to the server's own error codes. */
export type PublisherErrorCode =
  /** The request never got an HTTP response (connection refused, reset, DNS). */
  | 'network'
  /** No complete response within `timeoutMs`. */
  | 'timeout'
  /** The response was not the JSON the API promises (or was too large). */
  | 'bad_response'
  /** The publisher was closed. */
  | 'closed';

/** A failed publish or broadcast. */
export class PublishError extends Error {
  override readonly name = 'PublishError';
  constructor(
    /** The server's error code from `{"error":{"code"}}`, or one of `PublisherErrorCode`. */
    readonly code: ErrorCode | PublisherErrorCode,
    message: string,
    readonly details: {
      /** HTTP status of the last attempt, if it got a response. */
      readonly status?: number;
      /** The server's Retry-After in ms, when it sent one. */
      readonly retryAfterMs?: number;
      /** How many attempts were made. */
      readonly attempts?: number;
      readonly cause?: unknown;
    } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
  }

  /** HTTP status of the last attempt, if it got a response. */
  get status(): number | undefined {
    return this.details.status;
  }

  /** The server's Retry-After in ms, when it sent one. */
  get retryAfterMs(): number | undefined {
    return this.details.retryAfterMs;
  }
}
