/**
 * Every adapter option as a configuration setting: one table per adapter section, each key with
 * its kind, default and meaning. The table drives the checks of config files and
 * `--backbone-option`, and the tables in docs/backbones.md (a test keeps them equal). Each table
 * is typed against the adapter's own options, so an option added to an adapter does not compile
 * here until it is configurable.
 *
 * Ranges are not repeated here: the adapter checks them when it is created, and `createBackbone`
 * turns its message into one naming the setting (`backbone.jetstream.replicas`).
 */
import type { KafkaBackboneOptions } from '@gatehouse/backbone-kafka';
import type { JetStreamBackboneOptions, NatsConnectionOptions } from '@gatehouse/backbone-nats';
import type { RedisBackboneOptions } from '@gatehouse/backbone-redis';
import { OptionsError } from '@gatehouse/server';

/** What a setting holds. A string array lists the values allowed. */
export type SettingKind = 'int' | 'bool' | 'string' | readonly string[];

/** One adapter setting. */
export interface SettingSpec {
  readonly kind: SettingKind;
  /** The adapter's default, as documented. */
  readonly default: string;
  /** What it does, one line. */
  readonly meaning: string;
}

/** Options the registry fills in itself, never settings: the URLs and the malformed-message hook. */
type Wired = 'urls' | 'servers' | 'brokers' | 'onMalformed';

/** Redis settings (`backbone.redis`): for redis://, rediss:// and redis+cluster://. */
export type RedisSettings = Omit<RedisBackboneOptions, Wired>;
/** NATS connection settings (`backbone.nats`): for nats:// and jetstream:// alike. */
export type NatsSettings = Omit<NatsConnectionOptions, Wired>;
/** JetStream stream and records settings (`backbone.jetstream`): for jetstream:// only. */
export type JetStreamSettings = Omit<JetStreamBackboneOptions, keyof NatsConnectionOptions>;
/** Kafka settings (`backbone.kafka`): for kafka://. */
export type KafkaSettings = Omit<KafkaBackboneOptions, Wired>;

type Table<T> = { readonly [K in keyof Required<T>]: SettingSpec };

const REDIS: Table<RedisSettings> = {
  keyPrefix: { kind: 'string', default: 'gh', meaning: 'prefix of every key and pub/sub channel (set by the namespace otherwise)' },
  sharded: { kind: 'bool', default: 'false', meaning: 'sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7+); always on with redis+cluster://' },
  idleTtlSeconds: { kind: 'int', default: '86400', meaning: "seconds a channel's position is kept after its last publication" },
  connectTimeoutMs: { kind: 'int', default: '10000', meaning: 'deadline for the first connection and a lazy subscriber connection, ms' },
  commandTimeoutMs: { kind: 'int', default: '5000', meaning: 'a command without a reply within this rejects, ms' },
  reconnectMinDelayMs: { kind: 'int', default: '100', meaning: 'first reconnect delay, ms (doubles per attempt, with jitter)' },
  reconnectMaxDelayMs: { kind: 'int', default: '2000', meaning: 'longest reconnect delay, ms' },
};

const NATS: Table<NatsSettings> = {
  subjectPrefix: {
    kind: 'string',
    default: 'gatehouse',
    meaning: 'first subject token(s) of every subject (set by the namespace otherwise)',
  },
  name: { kind: 'string', default: 'gatehouse', meaning: "connection name shown by the server's monitoring" },
  timeoutMs: { kind: 'int', default: '5000', meaning: 'deadline for the first connection and each request, ms' },
  startTimeoutMs: {
    kind: 'int',
    default: '30000',
    meaning: 'how long start keeps trying to connect (JetStream: and reach the stream), ms',
  },
  reconnectTimeWaitMs: { kind: 'int', default: '250', meaning: 'wait between reconnect attempts to one server, ms (plus jitter)' },
  pingIntervalMs: {
    kind: 'int',
    default: '10000',
    meaning: 'how often the client pings the server, ms; two missed pongs mean the link is dead',
  },
};

const JETSTREAM: Table<JetStreamSettings> = {
  stream: {
    kind: 'string',
    default: 'GATEHOUSE',
    meaning: 'the stream holding every channel, created if missing (set by the namespace otherwise)',
  },
  maxAgeSeconds: { kind: 'int', default: '86400', meaning: 'publications older than this leave the stream, seconds (0: no age limit)' },
  maxMsgsPerSubject: { kind: 'int', default: '1000', meaning: 'publications kept per channel (0: no per-channel limit)' },
  maxBytes: { kind: 'int', default: '1073741824', meaning: 'largest the stream grows, bytes, oldest removed first (0: unlimited)' },
  storage: { kind: ['file', 'memory'], default: 'file', meaning: '`file` survives a server restart; `memory` does not' },
  replicas: { kind: 'int', default: '1', meaning: 'stream replicas in a JetStream cluster' },
  recordsMaxAgeSeconds: {
    kind: 'int',
    default: '2592000',
    meaning: 'fleet records are dropped this long after their last write, seconds (0: never by age)',
  },
  recordsMaxBytes: { kind: 'int', default: '67108864', meaning: 'largest the records bucket grows, bytes; putRecord rejects once full' },
};

const KAFKA: Table<KafkaSettings> = {
  topic: { kind: 'string', default: 'gatehouse', meaning: 'the topic every channel lives in (set by the namespace otherwise)' },
  partitions: { kind: 'int', default: '8', meaning: 'partitions when this backbone creates the topic (an existing topic keeps its own)' },
  replicationFactor: { kind: 'int', default: '-1', meaning: "replication factor when creating the topic (-1: the broker's default)" },
  createTopic: { kind: 'bool', default: 'true', meaning: 'create the topic on start (and after it vanished) when missing' },
  clientId: { kind: 'string', default: 'gatehouse', meaning: 'client id prefix seen in broker logs and quotas' },
  requestTimeoutMs: { kind: 'int', default: '10000', meaning: 'per-request timeout against the broker, ms' },
  startTimeoutMs: { kind: 'int', default: '30000', meaning: 'how long start keeps trying to reach the broker, ms' },
  fetchMaxWaitMs: { kind: 'int', default: '500', meaning: 'longest a live fetch waits for new records, ms (below requestTimeoutMs)' },
  fetchMaxBytes: { kind: 'int', default: '4194304', meaning: 'largest fetch response, bytes (bounds fetch memory)' },
  maxMessageBytes: {
    kind: 'int',
    default: '1000000',
    meaning: "largest envelope one publish may produce, bytes (at most the topic's max.message.bytes)",
  },
  maxPendingPublishes: { kind: 'int', default: '10000', meaning: 'publishes waiting for the broker at most; more reject at once' },
  historyScanRecords: { kind: 'int', default: '100000', meaning: 'records one history read examines at most (then complete: false)' },
  historyTimeoutMs: { kind: 'int', default: '5000', meaning: 'time budget of one history read, ms' },
  historyConcurrency: { kind: 'int', default: '4', meaning: 'history reads running at once; more wait in line' },
  positionCacheSize: { kind: 'int', default: '10000', meaning: 'channels whose last position is remembered' },
  reconnectMinMs: { kind: 'int', default: '100', meaning: 'reconnect backoff floor, ms' },
  reconnectMaxMs: { kind: 'int', default: '5000', meaning: 'reconnect backoff cap, ms' },
};

/** The adapter sections of the backbone configuration, each with its table. */
export const BACKBONE_SETTINGS = { redis: REDIS, nats: NATS, jetstream: JETSTREAM, kafka: KAFKA } as const;

/** An adapter section of the backbone configuration. */
export type SectionName = keyof typeof BACKBONE_SETTINGS;

/** Every adapter's settings, by section. */
export interface BackboneSettings {
  readonly redis?: RedisSettings;
  readonly nats?: NatsSettings;
  readonly jetstream?: JetStreamSettings;
  readonly kafka?: KafkaSettings;
}

/** Whether `name` is an adapter section. */
export function isSectionName(name: string): name is SectionName {
  return Object.hasOwn(BACKBONE_SETTINGS, name);
}

function sectionList(): string {
  return Object.keys(BACKBONE_SETTINGS).join(', ');
}

/** A short rendering of a bad value. */
function show(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Converts one setting's value. Config files give numbers and booleans as such; flags and the
 * environment give text, and a file may quote a number too, so text is converted by kind.
 */
function convert(spec: SettingSpec, raw: unknown, key: string): unknown {
  const kind = spec.kind;
  if (kind === 'int') {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n)) throw new OptionsError(`${key} must be a whole number, got ${show(raw)}`);
    return n;
  }
  if (kind === 'bool') {
    if (typeof raw === 'boolean') return raw;
    if (raw === 'true' || raw === '1') return true;
    if (raw === 'false' || raw === '0') return false;
    throw new OptionsError(`${key} must be true or false, got ${show(raw)}`);
  }
  if (typeof raw !== 'string' || raw === '') throw new OptionsError(`${key} must be a non-empty string, got ${show(raw)}`);
  if (kind !== 'string' && !kind.includes(raw)) throw new OptionsError(`${key} must be one of ${kind.join(', ')}, got ${show(raw)}`);
  return raw;
}

/**
 * Checks one adapter section (a mapping of setting to value) and returns it converted. `where`
 * prefixes every message (`config file gatehouse.yaml: `); keys are named in full,
 * `backbone.<section>.<key>`.
 */
export function checkSection(section: SectionName, raw: unknown, where = ''): Record<string, unknown> {
  const table: Readonly<Record<string, SettingSpec>> = BACKBONE_SETTINGS[section];
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new OptionsError(`${where}backbone.${section} must be a mapping of settings, got ${show(raw)}`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const spec = Object.hasOwn(table, key) ? table[key] : undefined;
    if (!spec) {
      throw new OptionsError(`${where}unknown setting backbone.${section}.${key} (known: ${Object.keys(table).join(', ')})`);
    }
    if (value !== undefined) out[key] = convert(spec, value, `${where}backbone.${section}.${key}`);
  }
  return out;
}

/** Checks every section of `raw` (a mapping of section to settings). */
export function checkSettings(raw: unknown, where = ''): BackboneSettings {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new OptionsError(`${where}backbone settings must be a mapping, got ${show(raw)}`);
  const out: Record<string, Record<string, unknown>> = {};
  for (const [section, value] of Object.entries(raw)) {
    if (!isSectionName(section)) throw new OptionsError(`${where}unknown backbone section "${section}" (known: ${sectionList()})`);
    out[section] = checkSection(section, value, where);
  }
  return out as BackboneSettings;
}

/**
 * Parses one `--backbone-option` value, `<section>.<key>=<value>` (for example
 * `jetstream.replicas=3`), and sets it in `into`, converted and checked.
 */
export function applyBackboneOption(into: Record<string, Record<string, unknown>>, text: string, where = ''): void {
  const m = /^([a-z]+)\.([A-Za-z]+)=(.*)$/s.exec(text);
  if (!m)
    throw new OptionsError(`${where}backbone-option ${show(text)} must look like <section>.<setting>=<value>, e.g. jetstream.replicas=3`);
  const [, section, key, value] = m as unknown as [string, string, string, string];
  if (!isSectionName(section))
    throw new OptionsError(`${where}backbone-option ${show(text)}: unknown section "${section}" (known: ${sectionList()})`);
  const checked = checkSection(section, { [key]: value }, where);
  into[section] = { ...into[section], ...checked };
}
