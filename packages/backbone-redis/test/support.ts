/**
 * Test support for the Redis suites: private redis-server processes on free ports (for tests
 * that kill or restart a server; the shared one is never touched) and key cleanup.
 */
import { Redis } from 'ioredis';
import { PrivateServer, REDIS_RECIPE, binaryInstalled } from '@gatehouse/testkit';

/** True when the redis-server binary is installed (private servers need it). */
export const redisServerInstalled = (): Promise<boolean> => binaryInstalled('redis-server');

/** A private redis-server (see testkit's PrivateServer). */
export type PrivateRedis = PrivateServer;

/** Starts a private redis-server on a free port. */
export const startPrivateRedis = (): Promise<PrivateServer> => PrivateServer.start(REDIS_RECIPE);

/** A plain client for inspecting a server's keys. */
export function redisClient(url: string): Redis {
  return new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
}

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
