/**
 * The shared conformance suites (data plane, control plane) against the real NATS JetStream at
 * 127.0.0.1:4222. Each pair or fleet gets its own stream and subject prefix (streams may not
 * overlap), deleted afterwards with its records bucket.
 */
import { randomBytes } from 'node:crypto';
import { runBackboneConformance, runControlConformance } from '@gatehouse/conformance';
import { SERVICES, serviceSkipReason } from '@gatehouse/testkit';
import { JetStreamBackbone } from '../src/index.js';
import { deleteStream } from './support.js';

const url = `nats://${SERVICES.nats.host}:${SERVICES.nats.port}`;
const skip = await serviceSkipReason('nats', 'jetstream backbone conformance');

/** Options of a fleet of its own: stream, records bucket and subject prefix nobody else uses. */
function fleetOptions() {
  const id = randomBytes(4).toString('hex');
  return { servers: [url], stream: `GHTEST_${id}`, subjectPrefix: `ghtest${id}`, storage: 'memory' as const, maxAgeSeconds: 600 };
}

runBackboneConformance(
  'jetstream',
  async () => {
    const options = fleetOptions();
    return {
      a: new JetStreamBackbone(options),
      b: new JetStreamBackbone(options),
      cleanup: () => deleteStream(url, options.stream),
    };
  },
  { skip },
);

runControlConformance(
  'jetstream',
  async () => {
    const options = fleetOptions();
    return { node: () => new JetStreamBackbone(options), cleanup: () => deleteStream(url, options.stream) };
  },
  { skip },
);
