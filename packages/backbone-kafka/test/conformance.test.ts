/**
 * The shared backbone conformance suites against Kafka: two backbones ("nodes") on one fresh topic
 * of the real broker per pair, and fleets of nodes on one fresh topic each for the control plane;
 * every topic is deleted afterwards.
 */
import { runBackboneConformance, runControlConformance } from '@gatehouse/conformance';
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

runControlConformance(
  'kafka',
  async () => {
    // A fleet's namespace is its data topic: the control-plane topics are named after it.
    const topic = uniqueTopic('control');
    return {
      node: () => createKafkaBackbone(BROKERS, { topic, partitions: 2, fetchMaxWaitMs: 200 }),
      cleanup: () => deleteTopics(BROKERS, [topic]),
    };
  },
  { skip, timeoutMs: 20_000 },
);
