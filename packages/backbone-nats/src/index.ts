/**
 * @gatehouse/backbone-nats: the NATS core backbone (lowest latency, no history: every outage is a
 * reported gap) and the JetStream backbone (durable, replayable from the stream), with the
 * channel <-> subject mapping outside publishers use (the envelope is the kit's `encodeEnvelope`).
 * Both carry the control plane on a NATS core subject; JetStream keeps fleet records in a KV bucket.
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
export { controlSubject } from './control.js';
export { recordsBucket, recordKvKey } from './records.js';
