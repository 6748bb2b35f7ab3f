/**
 * The shared conformance suites (data plane, control plane) against the real NATS server at
 * 127.0.0.1:4222 (core subjects). Each fleet gets a subject prefix of its own.
 */
import { randomBytes } from 'node:crypto';
import { runBackboneConformance, runControlConformance } from '@gatehouse/conformance';
import { SERVICES, serviceSkipReason } from '@gatehouse/testkit';
import { NatsBackbone } from '../src/index.js';

const url = `nats://${SERVICES.nats.host}:${SERVICES.nats.port}`;
const skip = await serviceSkipReason('nats', 'nats core backbone conformance');

runBackboneConformance(
  'nats',
  async () => {
    const subjectPrefix = `ghtest${randomBytes(4).toString('hex')}`;
    return {
      a: new NatsBackbone({ servers: [url], subjectPrefix }),
      b: new NatsBackbone({ servers: [url], subjectPrefix }),
      cleanup: async () => {},
    };
  },
  { skip },
);

runControlConformance(
  'nats',
  async () => {
    const subjectPrefix = `ghtest${randomBytes(4).toString('hex')}`;
    return { node: () => new NatsBackbone({ servers: [url], subjectPrefix }), cleanup: async () => {} };
  },
  { skip },
);
