/**
 * The shared conformance suite against the real Redis at 127.0.0.1:6379: two nodes on one
 * server, with plain and with sharded pub/sub. Each run uses its own key prefix and deletes its
 * keys afterwards, so runs never see each other and leave nothing behind.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { runBackboneConformance } from '@gatehouse/conformance';
import { SERVICES, serviceSkipReason } from '@gatehouse/testkit';
import { RedisBackbone } from '../src/index.js';

const url = `redis://${SERVICES.redis.host}:${SERVICES.redis.port}`;
const skip = await serviceSkipReason('redis', 'redis backbone conformance');

/** Deletes every key under `prefix` (SCAN, never KEYS, on a shared server). */
export async function deleteKeys(redisUrl: string, prefix: string): Promise<void> {
  const r = new Redis(redisUrl, { lazyConnect: true });
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

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
