/**
 * The shared conformance suite against the real Redis at 127.0.0.1:6379: two nodes on one
 * server, with plain and with sharded pub/sub. Each run uses its own key prefix and deletes its
 * keys afterwards, so runs never see each other and leave nothing behind.
 */
import { randomBytes } from 'node:crypto';
import { runBackboneConformance } from '@gatehouse/conformance';
import { SERVICES, serviceSkipReason } from '@gatehouse/testkit';
import { RedisBackbone } from '../src/index.js';
import { deleteKeys } from './support.js';

const url = `redis://${SERVICES.redis.host}:${SERVICES.redis.port}`;
const skip = await serviceSkipReason('redis', 'redis backbone conformance');

for (const sharded of [false, true]) {
  runBackboneConformance(
    sharded ? 'redis (sharded pub/sub)' : 'redis',
    async () => {
      const keyPrefix = `ghtest-${randomBytes(4).toString('hex')}`;
      return {
        a: new RedisBackbone({ urls: [url], sharded, keyPrefix }),
        b: new RedisBackbone({ urls: [url], sharded, keyPrefix }),
        cleanup: () => deleteKeys(url, keyPrefix),
      };
    },
    { skip },
  );
}
