/**
 * Options of the NATS core and JetStream backbones: plain objects, defaults in one place, bad
 * values rejected at construction with a message naming the field.
 */
import { isValidSubjectPrefix } from './subject.js';

/** What both NATS backbones share: the connection and the subject naming. */
export interface NatsConnectionOptions {
  /**
   * `nats://host:port` URLs (several: seeds of one NATS cluster; the client fails over between
   * them). `jetstream://` and `tls://` are accepted as synonyms of `nats://` / TLS.
   */
  servers: readonly string[];
  /** First subject token(s) of every channel subject. Default `"gatehouse"`. */
  subjectPrefix?: string;
  /** Connection name shown by the server's monitoring. Default `"gatehouse"`. */
  name?: string;
  /** Deadline for the first connection and for each request (flush, JetStream API), ms. Default 5 000. */
  timeoutMs?: number;
  /**
   * How long `start` keeps trying to connect (JetStream: and to reach the stream) before it gives
   * up, ms: a gateway started beside a server that is still starting waits for it. Default 30 000.
   */
  startTimeoutMs?: number;
  /** Wait between reconnect attempts to one server, ms (plus jitter). Default 250. */
  reconnectTimeWaitMs?: number;
  /** How often the client pings the server, ms; two missed pongs mean the link is dead. Default 10 000. */
  pingIntervalMs?: number;
  /** Called for every incoming message that is not a valid envelope (it is dropped). */
  onMalformed?: (reason: string, subject: string) => void;
}

/** Options of the NATS core backbone. */
export type NatsBackboneOptions = NatsConnectionOptions;

/** Options of the JetStream backbone. Retention is per stream, not per channel (see docs). */
export interface JetStreamBackboneOptions extends NatsConnectionOptions {
  /** The stream that holds every channel. Created on first start if missing. Default `"GATEHOUSE"`. */
  stream?: string;
  /** Publications older than this are removed from the stream, seconds (0: no age limit). Default 86 400. */
  maxAgeSeconds?: number;
  /** At most this many publications are kept per channel (0: no per-channel limit). Default 1 000. */
  maxMsgsPerSubject?: number;
  /** The stream never holds more than this many bytes, oldest removed first (0: unlimited). Default 1 GiB. */
  maxBytes?: number;
  /** `file` (survives a server restart) or `memory`. Default `file`. */
  storage?: 'file' | 'memory';
  /** Stream replicas in a JetStream cluster. Default 1. */
  replicas?: number;
  /**
   * Fleet records (`putRecord`) are dropped by the records bucket this long after they were last
   * written, seconds (0: never by age). A record that expires later than this is refused, since
   * the bucket would drop it while it still counts. Default 2 592 000 (30 days).
   */
  recordsMaxAgeSeconds?: number;
  /**
   * The records bucket never holds more than this many bytes; `putRecord` rejects once it is
   * full (expired records are purged as `records` reads them, and by age). Default 64 MiB.
   */
  recordsMaxBytes?: number;
}

/** Connection options with every default filled in. */
export interface ResolvedNatsOptions {
  readonly servers: readonly string[];
  readonly tls: boolean;
  readonly subjectPrefix: string;
  readonly name: string;
  readonly timeoutMs: number;
  readonly startTimeoutMs: number;
  readonly reconnectTimeWaitMs: number;
  readonly pingIntervalMs: number;
  readonly onMalformed: ((reason: string, subject: string) => void) | undefined;
}

/** JetStream options with every default filled in. */
export interface ResolvedJetStreamOptions extends ResolvedNatsOptions {
  readonly stream: string;
  readonly maxAgeSeconds: number;
  readonly maxMsgsPerSubject: number;
  readonly maxBytes: number;
  readonly storage: 'file' | 'memory';
  readonly replicas: number;
  readonly recordsMaxAgeSeconds: number;
  readonly recordsMaxBytes: number;
}

/** The defaults, in one place. */
export const NATS_DEFAULTS = {
  subjectPrefix: 'gatehouse',
  name: 'gatehouse',
  timeoutMs: 5_000,
  startTimeoutMs: 30_000,
  reconnectTimeWaitMs: 250,
  pingIntervalMs: 10_000,
} as const;

/** The JetStream defaults, in one place. */
export const JETSTREAM_DEFAULTS = {
  stream: 'GATEHOUSE',
  maxAgeSeconds: 86_400,
  maxMsgsPerSubject: 1_000,
  maxBytes: 1024 ** 3,
  storage: 'file',
  replicas: 1,
  recordsMaxAgeSeconds: 30 * 86_400,
  recordsMaxBytes: 64 * 1024 ** 2,
} as const;

function int(owner: string, name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new TypeError(`${owner} option "${name}" must be an integer from ${min} to ${max}, got ${String(v)}`);
  }
  return v;
}

/** Parses one server URL into the `host:port` the client wants; throws `TypeError` with the reason. */
export function parseNatsUrl(url: string): { hostport: string; tls: boolean } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`not a URL: ${JSON.stringify(String(url).slice(0, 200))} (expected nats://host:port)`);
  }
  if (!['nats:', 'jetstream:', 'tls:'].includes(u.protocol)) {
    throw new TypeError(`unsupported scheme "${u.protocol}" in ${u.host}: expected nats://, jetstream:// or tls://`);
  }
  if (!u.hostname) throw new TypeError('NATS URL has no host');
  if (u.username || u.password) throw new TypeError('credentials in NATS URLs are not supported; configure them on the server side');
  return { hostport: `${u.hostname}:${u.port || '4222'}`, tls: u.protocol === 'tls:' };
}

/** Merges defaults into connection options and validates them. */
export function resolveNatsOptions(o: NatsConnectionOptions, owner = 'NatsBackbone'): ResolvedNatsOptions {
  if (!o || !Array.isArray(o.servers) || o.servers.length === 0) {
    throw new TypeError(`${owner} option "servers" must be a non-empty array of nats:// URLs`);
  }
  const parsed = o.servers.map(parseNatsUrl);
  if (new Set(parsed.map((p) => p.tls)).size > 1) throw new TypeError(`${owner} option "servers" mixes tls:// with plain URLs`);
  const subjectPrefix = o.subjectPrefix ?? NATS_DEFAULTS.subjectPrefix;
  if (!isValidSubjectPrefix(subjectPrefix)) {
    throw new TypeError(
      `${owner} option "subjectPrefix" must be dot-separated tokens of A-Z a-z 0-9 _ - (got ${JSON.stringify(subjectPrefix)})`,
    );
  }
  const name = o.name ?? NATS_DEFAULTS.name;
  if (typeof name !== 'string' || name.length === 0 || name.length > 128)
    throw new TypeError(`${owner} option "name" must be 1-128 characters`);
  if (o.onMalformed !== undefined && typeof o.onMalformed !== 'function')
    throw new TypeError(`${owner} option "onMalformed" must be a function`);
  return {
    servers: parsed.map((p) => p.hostport),
    tls: parsed[0]?.tls ?? false,
    subjectPrefix,
    name,
    timeoutMs: int(owner, 'timeoutMs', o.timeoutMs ?? NATS_DEFAULTS.timeoutMs, 1, 600_000),
    startTimeoutMs: int(owner, 'startTimeoutMs', o.startTimeoutMs ?? NATS_DEFAULTS.startTimeoutMs, 1, 3_600_000),
    reconnectTimeWaitMs: int(owner, 'reconnectTimeWaitMs', o.reconnectTimeWaitMs ?? NATS_DEFAULTS.reconnectTimeWaitMs, 1, 600_000),
    pingIntervalMs: int(owner, 'pingIntervalMs', o.pingIntervalMs ?? NATS_DEFAULTS.pingIntervalMs, 100, 3_600_000),
    onMalformed: o.onMalformed,
  };
}

/** Merges defaults into JetStream options and validates them. */
export function resolveJetStreamOptions(o: JetStreamBackboneOptions): ResolvedJetStreamOptions {
  const base = resolveNatsOptions(o, 'JetStreamBackbone');
  const stream = o.stream ?? JETSTREAM_DEFAULTS.stream;
  if (typeof stream !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(stream)) {
    throw new TypeError('JetStreamBackbone option "stream" must be 1-64 characters of A-Z a-z 0-9 _ -');
  }
  const storage = o.storage ?? JETSTREAM_DEFAULTS.storage;
  if (storage !== 'file' && storage !== 'memory') throw new TypeError('JetStreamBackbone option "storage" must be "file" or "memory"');
  return {
    ...base,
    stream,
    maxAgeSeconds: int('JetStreamBackbone', 'maxAgeSeconds', o.maxAgeSeconds ?? JETSTREAM_DEFAULTS.maxAgeSeconds, 0, 10 * 365 * 86_400),
    maxMsgsPerSubject: int(
      'JetStreamBackbone',
      'maxMsgsPerSubject',
      o.maxMsgsPerSubject ?? JETSTREAM_DEFAULTS.maxMsgsPerSubject,
      0,
      2 ** 31 - 1,
    ),
    maxBytes: int('JetStreamBackbone', 'maxBytes', o.maxBytes ?? JETSTREAM_DEFAULTS.maxBytes, 0, Number.MAX_SAFE_INTEGER),
    storage,
    replicas: int('JetStreamBackbone', 'replicas', o.replicas ?? JETSTREAM_DEFAULTS.replicas, 1, 5),
    recordsMaxAgeSeconds: int(
      'JetStreamBackbone',
      'recordsMaxAgeSeconds',
      o.recordsMaxAgeSeconds ?? JETSTREAM_DEFAULTS.recordsMaxAgeSeconds,
      0,
      10 * 365 * 86_400,
    ),
    // At least one largest record (a 64 KiB value with its key and envelope) must fit.
    recordsMaxBytes: int(
      'JetStreamBackbone',
      'recordsMaxBytes',
      o.recordsMaxBytes ?? JETSTREAM_DEFAULTS.recordsMaxBytes,
      1024 ** 2,
      Number.MAX_SAFE_INTEGER,
    ),
  };
}
