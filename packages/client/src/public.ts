/**
 * The public surface shared by the browser and Node entries (everything except the
 * `GatehouseClient` class, which each entry binds to its default WebSocket).
 */
export type { ClientState, StateEvent, ConnectedEvent, DisconnectedEvent, ClientEvents } from './client.js';
export { Subscription } from './subscription.js';
export type { Publication, SubscribedEvent, GapEvent, UnsubscribedEvent, SubscriptionEvents, SubscriptionState } from './subscription.js';
export type { PresenceEvent, PresenceStats } from './subscription.js';
export type { PresenceInfo } from '@gatehouse/protocol';
export { GatehouseError } from './errors.js';
export type { ClientErrorCode, GatehouseErrorCode } from './errors.js';
export { DEFAULTS } from './options.js';
export type { ClientOptions, BackoffOptions } from './options.js';
export type { WebSocketLike, WebSocketConstructor } from './transport.js';
export type { Listener } from './emitter.js';
export { CloseCode, closeClass, type CloseClass, type StreamPosition, type GapReason } from '@gatehouse/protocol';
