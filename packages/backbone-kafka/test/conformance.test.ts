/**
 * The shared backbone conformance suite against Kafka: two backbones ("nodes") on one fresh topic
 * of the real broker per pair, deleted afterwards.
 */
import { runBackboneConformance } from '@gatehouse/conformance';
import { serviceSkipReason } from '@gatehouse/testkit';
import { createKafkaBackbone } from '../src/index.js';
import { BROKERS, deleteTopics, uniqueTopic } from './support.js';

const skip = await serviceSkipReason('kafka', 'backbone-kafka: conformance');

runBackboneConformance(
  'kafka',
  async () => {
    const topic = uniqueTopic('conformance');
    const opts = { topic, partitions: 4, fetchMaxWaitMs: 200 };
    return {
      a: createKafkaBackbone(BROKERS, opts),
      b: createKafkaBackbone(BROKERS, opts),
      cleanup: () => deleteTopics(BROKERS, [topic]),
    };
  },
  { skip, timeoutMs: 20_000 },
);
