/** @gatehouse/backbone-kafka: Kafka as the Gatehouse backbone (durable, replayable, shared). */
export { KafkaBackbone, createKafkaBackbone, type KafkaBackboneStats } from './kafka-backbone.js';
export type { KafkaBackboneOptions, ResolvedKafkaOptions } from './options.js';
export { controlTopicName, recordsTopicName } from './options.js';
export { CONTROL_RETENTION_MS, RECORDS_RETENTION_MS, type KafkaControlStats } from './control.js';
export { partitionFor, murmur2, epochOf } from './wire.js';
