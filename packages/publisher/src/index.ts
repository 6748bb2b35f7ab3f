/**
 * @gatehouse/publisher: publish to Gatehouse channels from server-side services.
 */
export type { Publisher, BroadcastResult } from './publisher.js';
export { HttpPublisher, HTTP_PUBLISHER_DEFAULTS, parseRetryAfter } from './http-publisher.js';
export type { HttpPublisherOptions } from './http-publisher.js';
export { PublishError } from './errors.js';
export type { PublisherErrorCode } from './errors.js';
export type {
  ChannelsResult,
  DisconnectResult,
  DrainResult,
  SubscribeResult,
  UnsubscribeResult,
  FleetMeta,
  HistoryOptions,
  HistoryPublication,
  HistoryResult,
  InfoResult,
  NodeInfo,
  PublishOptions,
  Target,
} from './api-types.js';
export type { PresenceInfo } from '@gatehouse/protocol';
