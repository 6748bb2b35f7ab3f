/**
 * Options of the Redis backbone: one plain object, defaults in one place, contradictions and bad
 * values rejected at construction with a message naming the field.
 */

/** What the Redis backbone can be told. Every field but `urls` has a default. */
export interface RedisBackboneOptions {
  /**
   * One or several `redis://[user:password@]host:port[/db]` (or `rediss://`) URLs. With several,
   * every channel lives on exactly one of them, chosen by rendezvous hashing of its name.
   *
   * Or, for a Redis Cluster, one or several `redis+cluster://[user:password@]host:port` seed
   * nodes of the one cluster (any reachable node will do; the rest is discovered; the first
   * URL's credentials are used for every node). Cluster mode
   * always uses sharded pub/sub. Cluster and plain URLs cannot be mixed.
   */
  urls: readonly string[];
  /** Prefix of every key and pub/sub channel the adapter uses. Default `"gh"`. */
  keyPrefix?: string;
  /**
   * Use sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7+). Default false (PUBLISH/SUBSCRIBE), and
   * true in cluster mode, where `false` is rejected.
   */
  sharded?: boolean;
  /**
   * How long a channel's position (epoch and offset) is kept after its last publication, seconds,
   * when that is longer than the namespace's history TTL. Default 86 400 (one day). Bounds how
   * much Redis memory channels nobody publishes to any more can hold.
   */
  idleTtlSeconds?: number;
  /** Deadline for the first connection in `start` and for a lazy subscriber connection, ms. Default 10 000. */
  connectTimeoutMs?: number;
  /** A command that gets no reply within this time rejects, ms. Default 5 000. */
  commandTimeoutMs?: number;
  /** First reconnect delay, ms (doubles per attempt, with jitter). Default 100. */
  reconnectMinDelayMs?: number;
  /** Longest reconnect delay, ms. Default 2 000. */
  reconnectMaxDelayMs?: number;
  /** Called for every incoming message that does not decode (it is dropped); a control message's reason starts with `control: `. */
  onMalformed?: (reason: string, raw: string) => void;
}

/** Options with every default filled in. */
export interface ResolvedRedisOptions {
  readonly urls: readonly string[];
  /** True for `redis+cluster://` seed URLs: one Redis Cluster instead of independent servers. */
  readonly cluster: boolean;
  readonly keyPrefix: string;
  readonly sharded: boolean;
  readonly idleTtlSeconds: number;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly reconnectMinDelayMs: number;
  readonly reconnectMaxDelayMs: number;
  readonly onMalformed: ((reason: string, raw: string) => void) | undefined;
}

/** The defaults, in one place. */
export const REDIS_DEFAULTS = {
  keyPrefix: 'gh',
  sharded: false,
  idleTtlSeconds: 86_400,
  connectTimeoutMs: 10_000,
  commandTimeoutMs: 5_000,
  reconnectMinDelayMs: 100,
  reconnectMaxDelayMs: 2_000,
} as const;

function positiveInt(name: string, v: unknown, max = 2 ** 31 - 1): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0 || v > max) {
    throw new TypeError(`RedisBackbone option "${name}" must be an integer from 1 to ${max}, got ${String(v)}`);
  }
  return v;
}

/** Merges defaults and validates. Throws `TypeError` naming the offending option. */
export function resolveRedisOptions(o: RedisBackboneOptions): ResolvedRedisOptions {
  if (!o || !Array.isArray(o.urls) || o.urls.length === 0) {
    throw new TypeError('RedisBackbone option "urls" must be a non-empty array of redis:// URLs');
  }
  const servers = o.urls.map((u) => parseRedisUrl(u));
  const cluster = servers.some((s) => s.cluster);
  if (cluster && !servers.every((s) => s.cluster)) {
    throw new TypeError('RedisBackbone option "urls" mixes redis+cluster:// seed nodes with plain redis:// servers; give one kind only');
  }
  if (cluster && o.sharded === false) {
    throw new TypeError(
      'RedisBackbone option "sharded" cannot be false with redis+cluster:// URLs: cluster mode always uses sharded pub/sub',
    );
  }
  const keyPrefix = o.keyPrefix ?? REDIS_DEFAULTS.keyPrefix;
  if (typeof keyPrefix !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(keyPrefix)) {
    throw new TypeError('RedisBackbone option "keyPrefix" must be 1-64 characters of A-Z a-z 0-9 _ . : -');
  }
  const min = positiveInt('reconnectMinDelayMs', o.reconnectMinDelayMs ?? REDIS_DEFAULTS.reconnectMinDelayMs);
  const max = positiveInt('reconnectMaxDelayMs', o.reconnectMaxDelayMs ?? REDIS_DEFAULTS.reconnectMaxDelayMs);
  if (min > max) throw new TypeError(`RedisBackbone option "reconnectMinDelayMs" (${min}) exceeds "reconnectMaxDelayMs" (${max})`);
  if (o.onMalformed !== undefined && typeof o.onMalformed !== 'function') {
    throw new TypeError('RedisBackbone option "onMalformed" must be a function');
  }
  const ids = servers.map((s) => s.id);
  if (new Set(ids).size !== ids.length) throw new TypeError(`RedisBackbone option "urls" names one server twice: ${ids.join(', ')}`);
  return {
    urls: [...o.urls],
    cluster,
    keyPrefix,
    sharded: cluster || (o.sharded ?? REDIS_DEFAULTS.sharded),
    idleTtlSeconds: positiveInt('idleTtlSeconds', o.idleTtlSeconds ?? REDIS_DEFAULTS.idleTtlSeconds),
    connectTimeoutMs: positiveInt('connectTimeoutMs', o.connectTimeoutMs ?? REDIS_DEFAULTS.connectTimeoutMs),
    commandTimeoutMs: positiveInt('commandTimeoutMs', o.commandTimeoutMs ?? REDIS_DEFAULTS.commandTimeoutMs),
    reconnectMinDelayMs: min,
    reconnectMaxDelayMs: max,
    onMalformed: o.onMalformed,
  };
}

/**
 * A parsed server URL: `id` (`host:port/db`, no credentials; `host:port` for a cluster seed)
 * names the shard in hashing and logs.
 */
export interface RedisServer {
  readonly url: string;
  readonly id: string;
  /** True for a `redis+cluster://` seed node. */
  readonly cluster: boolean;
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
}

/** Parses and checks one `redis://`, `rediss://` or `redis+cluster://` URL. Throws `TypeError` with the reason. */
export function parseRedisUrl(url: string): RedisServer {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(
      `not a URL: ${JSON.stringify(String(url).slice(0, 200))} (expected redis://host:port or redis+cluster://host:port)`,
    );
  }
  const cluster = u.protocol === 'redis+cluster:';
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:' && !cluster) {
    throw new TypeError(`unsupported scheme "${u.protocol}" in ${u.host}: expected redis://, rediss:// or redis+cluster://`);
  }
  if (!u.hostname) throw new TypeError('redis URL has no host');
  const db = u.pathname.replace(/^\//, '') || '0';
  if (!/^\d{1,2}$/.test(db)) throw new TypeError(`redis URL database must be a number, got "${db}"`);
  if (cluster && db !== '0')
    throw new TypeError(`redis+cluster:// URL ${u.host} names database ${db}: a Redis Cluster has database 0 only`);
  const port = u.port || '6379';
  const host = u.hostname.startsWith('[') ? u.hostname : u.hostname.toLowerCase();
  return {
    url,
    id: cluster ? `${host}:${port}` : `${host}:${port}/${db}`,
    cluster,
    host: host.replace(/^\[|\]$/g, ''),
    port: Number(port),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
  };
}
