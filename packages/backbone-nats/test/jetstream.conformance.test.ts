/**
 * The shared conformance suite against the real NATS JetStream at 127.0.0.1:4222. Each pair gets
 * its own stream and subject prefix (streams may not overlap), deleted afterwards.
 */
import { randomBytes } from 'node:crypto';
import { runBackboneConformance } from '@gatehouse/conformance';
import { SERVICES, serviceSkipReason } from '@gatehouse/testkit';
import { JetStreamBackbone } from '../src/index.js';
import { deleteStream } from './support.js';

const url = `nats://${SERVICES.nats.host}:${SERVICES.nats.port}`;
const skip = await serviceSkipReason('nats', 'jetstream backbone conformance');

runBackboneConformance(
  'jetstream',
  async () => {
    const id = randomBytes(4).toString('hex');
    const options = { servers: [url], stream: `GHTEST_${id}`, subjectPrefix: `ghtest${id}`, storage: 'memory' as const, maxAgeSeconds: 600 };
    return {
      a: new JetStreamBackbone(options),
      b: new JetStreamBackbone(options),
      cleanup: () => deleteStream(url, options.stream),
    };
  },
  { skip },
);
