/**
 * Protocol v1 frames. Every frame is one JSON object in one WebSocket text message, with an `op`.
 * Requests from the client carry an `id` (a positive integer the client chooses); the server's
 * reply to a request carries the same `id`. docs/protocol.md shows each frame with an example.
 */

/** The protocol version this package speaks. */
export const PROTOCOL_VERSION = 1;

/** A position in a channel's stream. Offsets rise strictly within an epoch. */
export interface StreamPosition {
  /** Identifies one continuous history of the channel; a new epoch means history was lost. */
  epoch: string;
  /** The offset of the last publication seen (0 before the first). */
  offset: number;
}

// ---- client -> server ----

/** First frame on every connection: protocol version and credentials. */
export interface ConnectFrame {
  op: 'connect';
  id: number;
  v: number;
  /** A JWT. Absent for anonymous connections (only where a namespace allows them). */
  token?: string;
  /** True when the SDK is reconnecting after a lost connection (counted by the server). */
  reconnect?: boolean;
}

/** Subscribe to a channel; with `since`, recover the publications after that position. */
export interface SubscribeFrame {
  op: 'subscribe';
  id: number;
  channel: string;
  since?: StreamPosition;
}

/** Stop receiving a channel. */
export interface UnsubscribeFrame {
  op: 'unsubscribe';
  id: number;
  channel: string;
}

/** Publish to a channel (when the token allows it). `data` is any JSON value. */
export interface PublishFrame {
  op: 'publish';
  id: number;
  channel: string;
  data: unknown;
}

/** Replace the connection's token before it expires. */
export interface RefreshFrame {
  op: 'refresh';
  id: number;
  token: string;
}

/** Answer to the server's application heartbeat. */
export interface PongFrame {
  op: 'pong';
}

/** Ask for a channel's members (`presence`) or their counts (`presence_stats`); the connection must be subscribed. */
export interface PresenceQueryFrame {
  op: 'presence' | 'presence_stats';
  id: number;
  channel: string;
}

/** Any frame a client may send. */
export type ClientFrame = ConnectFrame | SubscribeFrame | UnsubscribeFrame | PublishFrame | RefreshFrame | PongFrame | PresenceQueryFrame;

// ---- server -> client ----

/** Reply to `connect`. */
export interface ConnectedFrame {
  op: 'connected';
  id: number;
  /** This connection's id (for logs and support). */
  client: string;
  /** The node the client is connected to. */
  node: string;
  /** Application heartbeat interval in ms: the SDK reconnects when nothing arrives for longer. */
  heartbeat: number;
  /** When the token expires (ms since epoch), if it does. */
  expires?: number;
}

/** Reply to `subscribe`. Replayed publications (if any) follow it, then live ones. */
export interface SubscribedFrame {
  op: 'subscribed';
  id: number;
  channel: string;
  /** The channel's current stream position at the moment of subscribing. */
  epoch: string;
  offset: number;
  /**
   * Present when the request carried `since`: true when every missed publication follows,
   * false when history could not cover the gap (too short, expired, or a new epoch).
   */
  recovered?: boolean;
}

/** Reply to `publish`: where the publication landed. */
export interface PublishedFrame {
  op: 'published';
  id: number;
  channel: string;
  epoch: string;
  offset: number;
}

/** Generic success reply (`unsubscribe`, `refresh`). */
export interface OkFrame {
  op: 'ok';
  id: number;
}

/** Error reply to a request, or (without `id`) an error about the connection. */
export interface ErrorFrame {
  op: 'error';
  id?: number;
  code: ErrorCode;
  message: string;
}

/** A publication delivered on a subscribed channel. */
export interface PubFrame {
  op: 'pub';
  channel: string;
  epoch: string;
  /**
   * Position in the channel's stream. 0 (with epoch '') means unsequenced: the backbone (NATS
   * core) cannot order the channel, so there is nothing to deduplicate or recover by.
   */
  offset: number;
  /** When the publication was accepted (ms since epoch), for latency measurement. */
  ts: number;
  data: unknown;
}

/** Application heartbeat; the client answers with `pong`. */
export interface PingFrame {
  op: 'ping';
}

/** The token expires soon: send `refresh` with a new one within `in` ms. */
export interface RefreshNeededFrame {
  op: 'refresh';
  in: number;
}

/**
 * The channel's stream may have lost publications (for example the backbone connection dropped
 * on a backbone without history). The application should reload its state for the channel.
 */
export interface GapFrame {
  op: 'gap';
  channel: string;
  reason: GapReason;
}

/**
 * The server subscribed this connection to a channel (the server API's `POST /api/subscribe`).
 * Publications on the channel follow, exactly as after a `subscribed` reply.
 */
export interface ServerSubscribedFrame {
  op: 'server_subscribed';
  channel: string;
  /** The channel's stream position at the moment of subscribing. */
  epoch: string;
  offset: number;
}

/** The server ended this connection's subscription to a channel (`POST /api/unsubscribe`). */
export interface ServerUnsubscribedFrame {
  op: 'server_unsubscribed';
  channel: string;
}

/** One connection present in a channel: its id, its user ('' when anonymous) and the token's `info` claim. */
export interface PresenceInfo {
  client: string;
  user: string;
  info?: Record<string, unknown>;
}

/** Reply to `presence`: every member of the channel across the fleet. */
export interface PresenceFrame {
  op: 'presence';
  id: number;
  channel: string;
  members: PresenceInfo[];
}

/** Reply to `presence_stats`: connections and distinct users in the channel across the fleet. */
export interface PresenceStatsFrame {
  op: 'presence_stats';
  id: number;
  channel: string;
  clients: number;
  users: number;
}

/** A member joined or left a channel the connection subscribes to (namespaces with `joinLeave`). */
export interface JoinLeaveFrame {
  op: 'join' | 'leave';
  channel: string;
  info: PresenceInfo;
}

/** Why a channel's continuity broke. */
export type GapReason = 'history' | 'epoch' | 'backbone';

/** Any frame the server may send. */
export type ServerFrame =
  | ConnectedFrame
  | SubscribedFrame
  | PublishedFrame
  | OkFrame
  | ErrorFrame
  | PubFrame
  | PingFrame
  | RefreshNeededFrame
  | GapFrame
  | ServerSubscribedFrame
  | ServerUnsubscribedFrame
  | PresenceFrame
  | PresenceStatsFrame
  | JoinLeaveFrame;

/** Stable error codes, shared by the WebSocket protocol and the HTTP API. */
export type ErrorCode =
  | 'bad_request'
  | 'unknown_op'
  | 'invalid_channel'
  | 'unknown_namespace'
  | 'unauthorized'
  | 'forbidden'
  | 'already_subscribed'
  | 'not_subscribed'
  | 'limit_exceeded'
  | 'rate_limited'
  | 'payload_too_large'
  | 'not_found'
  | 'unavailable'
  | 'not_supported'
  | 'internal';

/** HTTP status for each error code when the HTTP API returns it. */
export const ERROR_HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  bad_request: 400,
  unknown_op: 400,
  invalid_channel: 400,
  unknown_namespace: 400,
  unauthorized: 401,
  forbidden: 403,
  already_subscribed: 409,
  not_subscribed: 409,
  limit_exceeded: 429,
  rate_limited: 429,
  payload_too_large: 413,
  not_found: 404,
  unavailable: 503,
  not_supported: 501,
  internal: 500,
};
