/**
 * Request options and answers of the server API calls beyond publish (docs/api.md), as
 * `HttpPublisher` sends and returns them.
 */
import type { StreamPosition } from '@gatehouse/protocol';

/** Options of `publish` and `broadcast`. */
export interface PublishOptions {
  /**
   * A retry with the same key on the same channel inside the gateway's window (default five
   * minutes) publishes nothing and answers the first result: retries become safe.
   */
  readonly idempotencyKey?: string;
}

/** One publication from `history`. */
export interface HistoryPublication {
  readonly epoch: string;
  readonly offset: number;
  /** When the gateway accepted it, ms since the epoch. */
  readonly ts: number;
  readonly data: unknown;
}

/** Options of `history`. */
export interface HistoryOptions {
  /** Only publications after this position (oldest first); without it, the newest `limit`. */
  readonly since?: StreamPosition;
  /** At most this many (1-1000, default 100; never more than the namespace keeps). */
  readonly limit?: number;
  /** Newest first. */
  readonly reverse?: boolean;
}

/** The answer of `history`. */
export interface HistoryResult {
  readonly channel: string;
  /** The channel's current position. */
  readonly epoch: string;
  readonly offset: number;
  readonly publications: readonly HistoryPublication[];
  /** With `since`: false when history no longer covers everything after it. */
  readonly complete?: boolean;
}

/** Whom a disconnect or server-side subscription is for: a user's every connection, or one. */
export type Target = { readonly user: string; readonly client?: string } | { readonly user?: string; readonly client: string };

/** Which nodes answered a fleet-wide call. */
export interface FleetMeta {
  readonly answered: readonly string[];
  readonly failed: readonly { readonly node: string; readonly error: { readonly code: string; readonly message: string } }[];
  /** Nodes believed alive that did not answer before the deadline. */
  readonly missing: readonly string[];
}

/** The answer of `channels`. */
export interface ChannelsResult extends FleetMeta {
  readonly channels: readonly { readonly channel: string; readonly subscribers: number }[];
  /** More channels matched than were listed. */
  readonly truncated: boolean;
}

/** One node in `info`. */
export interface NodeInfo {
  readonly node: string;
  readonly connections: number;
  readonly users: number;
  readonly channels: number;
  readonly connectsPerSecond: number | null;
  readonly deliveriesPerSecond: number | null;
  readonly publishDeliveryP99Ms: number | null;
  readonly outboundQueueMaxBytes: number;
  readonly lagMs: number;
  readonly ready: boolean;
  readonly draining: boolean;
  readonly backbone: { readonly kind: string; readonly state: string };
  readonly uptimeSeconds: number;
  readonly slowest?: readonly { client: string; user: string; address: string; pendingBytes: number; channels: number }[];
}

/** The answer of `info`. */
export interface InfoResult extends FleetMeta {
  readonly nodes: readonly NodeInfo[];
  readonly connections: number;
  readonly channels: number;
}

/** The answer of `disconnect`: connections closed, and the close code they got. */
export interface DisconnectResult extends FleetMeta {
  readonly disconnected: number;
  readonly code: number;
}

/** The answer of `subscribe`. */
export interface SubscribeResult extends FleetMeta {
  readonly subscribed: number;
  readonly alreadySubscribed: number;
  /** Connections at their subscription limit (or whose subscribe failed). */
  readonly refused: number;
}

/** The answer of `unsubscribe`. */
export interface UnsubscribeResult extends FleetMeta {
  readonly unsubscribed: number;
}

/** The answer of `drain`. */
export interface DrainResult {
  readonly node: string;
  readonly draining: boolean;
  readonly alreadyDraining: boolean;
}
