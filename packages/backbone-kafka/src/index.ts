/** @gatehouse/backbone-kafka: Kafka as the Gatehouse backbone (durable, replayable, shared). */
export { KafkaBackbone, createKafkaBackbone, type KafkaBackboneStats } from './kafka-backbone.js';
export type { KafkaBackboneOptions, ResolvedKafkaOptions } from './options.js';
export { controlTopicName, recordsTopicName } from './options.js';
export { CONTROL_RETENTION_MS, RECORDS_RETENTION_MS, type KafkaControlStats } from './control.js';
export { encodeEnvelope, decodeEnvelope, partitionFor, murmur2, epochOf, ENVELOPE_VERSION, MalformedRecordError, type DecodedEnvelope } from './envelope.js';
