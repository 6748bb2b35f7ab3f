/**
 * Test support for the Redis suites: private redis-server processes on free ports (for tests
 * that kill or restart a server; the shared one is never touched) and key cleanup.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { PrivateServer, REDIS_RECIPE, binaryInstalled, waitFor, withDeadline, type ServerRecipe } from '@gatehouse/testkit';

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

/** True when redis-server and redis-cli are both installed (a private cluster needs both). */
export const redisClusterInstalled = async (): Promise<boolean> => (await redisServerInstalled()) && (await binaryInstalled('redis-cli'));

/**
 * A cluster-enabled redis-server: nothing saved, `nodes.conf` in its own directory so a restart
 * on the same port and directory rejoins with the same id and slots (but no data).
 */
const CLUSTER_NODE_RECIPE: ServerRecipe = {
  ...REDIS_RECIPE,
  name: 'redis-cluster',
  args: (port, dir) => [
    ...REDIS_RECIPE.args(port, dir),
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    join(dir, 'nodes.conf'),
    '--cluster-node-timeout',
    '5000',
  ],
};

/** A private Redis Cluster: three masters, no replicas, on loopback. */
export interface PrivateCluster {
  readonly nodes: readonly PrivateServer[];
  /** `redis+cluster://` seed URLs, one per node. */
  readonly urls: string[];
  /** Resolves once every node reports `cluster_state:ok`, or rejects after `timeoutMs`. */
  waitOk(timeoutMs?: number): Promise<void>;
  /** Kills every node and removes their directories. */
  stop(): Promise<void>;
}

/** Starts three cluster-enabled servers, joins them with `redis-cli --cluster create`, waits for `cluster_state:ok`. */
export async function startPrivateCluster(): Promise<PrivateCluster> {
  const started = await Promise.allSettled([0, 1, 2].map(() => PrivateServer.start(CLUSTER_NODE_RECIPE)));
  const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  const waitOk = (timeoutMs = 20_000) =>
    waitFor(
      'every cluster node to report cluster_state:ok',
      async () => (await Promise.all(nodes.map((n) => clusterState(n.port)))).every((s) => s === 'ok'),
      timeoutMs,
      50,
    ).then(() => undefined);
  try {
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const addrs = nodes.map((n) => `127.0.0.1:${n.port}`);
    await withDeadline(
      'redis-cli --cluster create',
      promisify(execFile)('redis-cli', ['--cluster', 'create', ...addrs, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 }),
      35_000,
    );
    await waitOk();
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, urls: nodes.map((n) => `redis+cluster://127.0.0.1:${n.port}`), waitOk, stop };
}

/** `cluster_state` from CLUSTER INFO on one node, or undefined when it does not answer. */
async function clusterState(port: number): Promise<string | undefined> {
  const r = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 500,
  });
  r.on('error', () => {});
  try {
    await r.connect();
    const info = (await r.cluster('INFO')) as string;
    return /^cluster_state:(\w+)/m.exec(info)?.[1];
  } catch {
    return undefined;
  } finally {
    r.disconnect();
  }
}

/** The port of the master serving `key`'s slot (asked of any node: CLUSTER KEYSLOT, then CLUSTER SLOTS). */
export async function masterPortOf(cluster: PrivateCluster, key: string): Promise<number> {
  const r = new Redis({ host: '127.0.0.1', port: (cluster.nodes[0] as PrivateServer).port, lazyConnect: false, maxRetriesPerRequest: 1 });
  try {
    const slot = (await r.cluster('KEYSLOT', key)) as number;
    const ranges = await r.cluster('SLOTS');
    const owner = ranges.find(([from, to]) => slot >= from && slot <= to);
    if (!owner) throw new Error(`no master serves slot ${slot}`);
    const [, , master] = owner;
    if (!master) throw new Error(`slot ${slot} has no master`);
    return master[1];
  } finally {
    r.disconnect();
  }
}
