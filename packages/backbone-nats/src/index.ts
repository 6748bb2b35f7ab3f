/**
 * @gatehouse/backbone-nats: the NATS core backbone (lowest latency, no history: every outage is a
 * reported gap) and the JetStream backbone (durable, replayable from the stream), with the
 * channel <-> subject mapping and envelopes outside publishers use.
 */
export { NatsBackbone, createNatsBackbone } from './nats-backbone.js';
export { JetStreamBackbone, createJetStreamBackbone, streamEpoch, HISTORY_SIZE_HEADER, HISTORY_TTL_HEADER } from './jetstream-backbone.js';
export type { NatsBackboneStats } from './connection.js';
export {
  NATS_DEFAULTS,
  JETSTREAM_DEFAULTS,
  parseNatsUrl,
  resolveNatsOptions,
  resolveJetStreamOptions,
  type NatsConnectionOptions,
  type NatsBackboneOptions,
  type JetStreamBackboneOptions,
  type ResolvedNatsOptions,
  type ResolvedJetStreamOptions,
} from './options.js';
export { channelToSubject, subjectToChannel, encodeToken, decodeToken, isValidSubjectPrefix } from './subject.js';
export { encodeCoreEnvelope, encodeStoredEnvelope, decodeEnvelope, ENVELOPE_VERSION, type DecodedEnvelope } from './envelope.js';
