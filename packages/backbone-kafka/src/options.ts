/**
 * Options of the Kafka backbone: one plain object, defaults in one place, contradictions and
 * nonsense rejected at construction with a `TypeError` that names the field.
 */

/** Everything a `KafkaBackbone` can be told. Only `brokers` is required. */
export interface KafkaBackboneOptions {
  /** Bootstrap brokers, `host:port` each (at least one). */
  brokers: readonly string[];
  /**
   * The one topic every channel lives in, 1-241 characters. Default `"gatehouse"`. Control
   * messages and records live in `<topic>.control` and `<topic>.records`.
   */
  topic?: string;
  /**
   * Partitions of the topic when this backbone creates it. Default 8. An existing topic keeps
   * its own count (channels are mapped with the count the broker reports).
   */
  partitions?: number;
  /** Replication factor when creating the topics; -1 takes the broker's default. Default -1. */
  replicationFactor?: number;
  /** Create the topics on start (and after one vanished) when missing. Default true. */
  createTopic?: boolean;
  /** Client id prefix seen in broker logs and quotas. Default `"gatehouse"`. */
  clientId?: string;
  /** Per-request timeout against the broker, ms. Default 10 000. */
  requestTimeoutMs?: number;
  /** How long `start` keeps trying to reach the broker before it rejects, ms. Default 30 000. */
  startTimeoutMs?: number;
  /** Longest a live fetch waits on the broker for new records, ms (idle poll rate). Default 500. */
  fetchMaxWaitMs?: number;
  /** Largest fetch response, bytes: bounds the memory one fetch can take. Default 4 MiB. */
  fetchMaxBytes?: number;
  /**
   * Largest envelope (JSON text) one publish may produce, bytes. Keep it at or below the topic's
   * `max.message.bytes` (1 MiB by default). Default 1 000 000.
   */
  maxMessageBytes?: number;
  /** Publishes waiting for the broker at most; more reject at once. Default 10 000. */
  maxPendingPublishes?: number;
  /**
   * Records a history read examines at most (other channels share the partition). A read that
   * runs out reports `complete: false` rather than scan on. Default 100 000.
   */
  historyScanRecords?: number;
  /** Time budget of one history read, ms; out of time means `complete: false`. Default 5 000. */
  historyTimeoutMs?: number;
  /** History reads running at once against the broker; more wait in line. Default 4. */
  historyConcurrency?: number;
  /** Channels whose last position is remembered, so repeated lookups scan only new records. Default 10 000. */
  positionCacheSize?: number;
  /** Reconnect backoff floor and cap, ms (full jitter in between). Defaults 100 and 5 000. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Told about each dropped record that is not a valid envelope: why, and its key. Default: nothing. */
  onMalformed?: ((reason: string, key: string) => void) | undefined;
}

/** The options with every default filled in. */
export type ResolvedKafkaOptions = Required<Omit<KafkaBackboneOptions, 'onMalformed'>> & Pick<KafkaBackboneOptions, 'onMalformed'>;

const DEFAULTS: Omit<ResolvedKafkaOptions, 'brokers' | 'onMalformed'> = {
  topic: 'gatehouse',
  partitions: 8,
  replicationFactor: -1,
  createTopic: true,
  clientId: 'gatehouse',
  requestTimeoutMs: 10_000,
  startTimeoutMs: 30_000,
  fetchMaxWaitMs: 500,
  fetchMaxBytes: 4 * 1024 * 1024,
  maxMessageBytes: 1_000_000,
  maxPendingPublishes: 10_000,
  historyScanRecords: 100_000,
  historyTimeoutMs: 5_000,
  historyConcurrency: 4,
  positionCacheSize: 10_000,
  reconnectMinMs: 100,
  reconnectMaxMs: 5_000,
};

/**
 * Kafka's own rule for topic names, 8 characters short of its 249 so the control-plane topics
 * (`<topic>.control`, `<topic>.records`) fit too.
 */
const TOPIC_RE = /^[A-Za-z0-9._-]{1,241}$/;

/**
 * The topic of a fleet's control messages. The suffix starts with a dot, which a fleet namespace
 * (`gatehouse-<ns>`, no dots) never has, so no fleet's data topic is another fleet's control topic.
 */
export function controlTopicName(topic: string): string {
  return `${topic}.control`;
}

/** The compacted topic of a fleet's durable records (see `controlTopicName` for the suffix). */
export function recordsTopicName(topic: string): string {
  return `${topic}.records`;
}
const BROKER_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const CLIENT_ID_RE = /^[A-Za-z0-9._-]{1,100}$/;

function int(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new TypeError(`KafkaBackbone option "${name}" must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Merges defaults and validates. Throws `TypeError` naming the first bad field. */
export function resolveOptions(opts: KafkaBackboneOptions): ResolvedKafkaOptions {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('KafkaBackbone options must be an object');
  const o = { ...DEFAULTS, ...stripUndefined(opts) } as ResolvedKafkaOptions;
  if (!Array.isArray(o.brokers) || o.brokers.length === 0) {
    throw new TypeError('KafkaBackbone option "brokers" must be a non-empty array of "host:port" strings');
  }
  for (const b of o.brokers) {
    const m = typeof b === 'string' ? BROKER_RE.exec(b) : null;
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535) {
      throw new TypeError(`KafkaBackbone option "brokers": ${JSON.stringify(b)} is not "host:port"`);
    }
  }
  if (typeof o.topic !== 'string' || !TOPIC_RE.test(o.topic) || o.topic === '.' || o.topic === '..') {
    throw new TypeError(
      `KafkaBackbone option "topic" must be 1-241 characters of [A-Za-z0-9._-] (the control-plane topics add 8), got ${JSON.stringify(o.topic)}`,
    );
  }
  if (typeof o.clientId !== 'string' || !CLIENT_ID_RE.test(o.clientId)) {
    throw new TypeError(`KafkaBackbone option "clientId" must be 1-100 characters of [A-Za-z0-9._-], got ${JSON.stringify(o.clientId)}`);
  }
  if (typeof o.createTopic !== 'boolean') throw new TypeError('KafkaBackbone option "createTopic" must be a boolean');
  if (o.onMalformed !== undefined && typeof o.onMalformed !== 'function')
    throw new TypeError('KafkaBackbone option "onMalformed" must be a function');
  int('partitions', o.partitions, 1, 10_000);
  if (o.replicationFactor !== -1) int('replicationFactor', o.replicationFactor, 1, 32);
  int('requestTimeoutMs', o.requestTimeoutMs, 100, 600_000);
  int('startTimeoutMs', o.startTimeoutMs, 100, 3_600_000);
  int('fetchMaxWaitMs', o.fetchMaxWaitMs, 1, 60_000);
  int('fetchMaxBytes', o.fetchMaxBytes, 1024, 256 * 1024 * 1024);
  int('maxMessageBytes', o.maxMessageBytes, 256, 256 * 1024 * 1024);
  int('maxPendingPublishes', o.maxPendingPublishes, 1, 10_000_000);
  int('historyScanRecords', o.historyScanRecords, 1, 1_000_000_000);
  int('historyTimeoutMs', o.historyTimeoutMs, 10, 600_000);
  int('historyConcurrency', o.historyConcurrency, 1, 1000);
  int('positionCacheSize', o.positionCacheSize, 0, 10_000_000);
  int('reconnectMinMs', o.reconnectMinMs, 1, 600_000);
  int('reconnectMaxMs', o.reconnectMaxMs, 1, 600_000);
  if (o.reconnectMaxMs < o.reconnectMinMs) {
    throw new TypeError(`KafkaBackbone option "reconnectMaxMs" (${o.reconnectMaxMs}) is below "reconnectMinMs" (${o.reconnectMinMs})`);
  }
  if (o.fetchMaxWaitMs >= o.requestTimeoutMs) {
    throw new TypeError(
      `KafkaBackbone option "fetchMaxWaitMs" (${o.fetchMaxWaitMs}) must be below "requestTimeoutMs" (${o.requestTimeoutMs}): a long poll would time out`,
    );
  }
  if (o.maxMessageBytes > o.fetchMaxBytes) {
    throw new TypeError(
      `KafkaBackbone option "maxMessageBytes" (${o.maxMessageBytes}) exceeds "fetchMaxBytes" (${o.fetchMaxBytes}): one record would break the bound on fetch memory`,
    );
  }
  return { ...o, brokers: [...o.brokers] };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
