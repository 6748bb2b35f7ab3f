/**
 * The contract every Gatehouse publisher meets, whatever carries the publication: the gateway's
 * HTTP API (`HttpPublisher`) or, later, a backbone directly. Application code depends on this
 * interface so the transport can change without touching it.
 */
import type { ErrorCode, StreamPosition } from '@gatehouse/protocol';
import type { PublishOptions } from './api-types.js';

/** The outcome for one channel of a broadcast: where it landed, or why it did not. */
export type BroadcastResult =
  | { readonly channel: string; readonly epoch: string; readonly offset: number }
  | { readonly channel: string; readonly error: { readonly code: ErrorCode; readonly message: string } };

/** Publishes to channels from a trusted server-side service. */
export interface Publisher {
  /**
   * Publishes `data` (any JSON value) to one channel. Resolves with the publication's stream
   * position once the gateway accepted it; subscribers receive it through the one delivery path.
   * Rejects with a `PublishError` carrying a stable code. With `options.idempotencyKey`, a retry
   * inside the gateway's window publishes nothing and resolves with the first result.
   */
  publish(channel: string, data: unknown, options?: PublishOptions): Promise<StreamPosition>;
  /**
   * Publishes the same `data` to many channels in one call. Resolves with one result per
   * channel, in the order given; a channel that failed has an `error` instead of a position.
   * Rejects only when the call as a whole failed.
   */
  broadcast(channels: readonly string[], data: unknown, options?: PublishOptions): Promise<BroadcastResult[]>;
  /** Stops the publisher: work in flight rejects with code 'closed', and so does any later call. */
  close(): Promise<void>;
}
