/**
 * What a Gatehouse publication looks like as a Kafka record, and where it goes. This is the
 * contract for services that publish straight into Kafka (docs/backbones.md, "Kafka"):
 *
 * - topic: the backbone's topic (default `gatehouse`), one for every channel;
 * - key: the channel name in UTF-8, so a channel always lands in one partition and keeps order;
 * - partition: `(murmur2(key) & 0x7fffffff) % partitions`, the Java client's default for keyed
 *   records (set it explicitly, or use a client whose default partitioner matches);
 * - value: `{"v":1,"channel":<the key>,"ts":<ms since epoch>,"data":<any JSON value>}` in UTF-8,
 *   plus optional `"historySize"` and `"historyTtlSeconds"` (the channel's retention for recovery).
 *
 * Offsets and epochs are not in the value: Kafka only knows them after the write. A reader takes
 * them from the record: offset = partition offset + 1 (0 keeps meaning "nothing yet"), epoch =
 * topic id and partition.
 */
import { isValidChannel } from '@gatehouse/protocol';

/** Envelope format version written in `v`. */
export const ENVELOPE_VERSION = 1;

/** A record value decoded and checked. */
export interface DecodedEnvelope {
  readonly channel: string;
  /** ms since the Unix epoch; the record's own timestamp when the envelope has none. */
  readonly ts: number;
  /** The payload as JSON text. */
  readonly data: string;
  /** Retention the publisher asked for; undefined when it did not say (outside publishers). */
  readonly historySize: number | undefined;
  readonly historyTtlSeconds: number | undefined;
}

/**
 * Builds a record value around `data`, which must already be JSON text: the payload is spliced
 * in, not serialized again.
 */
export function encodeEnvelope(channel: string, ts: number, data: string, historySize: number, historyTtlSeconds: number): string {
  return (
    '{"v":1,"channel":' + JSON.stringify(channel) +
    ',"ts":' + ts +
    ',"historySize":' + historySize +
    ',"historyTtlSeconds":' + historyTtlSeconds +
    ',"data":' + data + '}'
  );
}

/** Why a record was dropped instead of delivered. */
export class MalformedRecordError extends Error {
  override readonly name = 'MalformedRecordError';
}

function optionalCount(o: Record<string, unknown>, field: string): number | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new MalformedRecordError(`"${field}" must be an integer >= 0`);
  }
  return v;
}

/**
 * Decodes a record value. `key` is the record key as text (it must equal the envelope's channel),
 * `recordTs` the record's timestamp. Throws `MalformedRecordError` naming what is wrong.
 */
export function decodeEnvelope(key: string, value: Buffer | null, recordTs: number): DecodedEnvelope {
  if (value === null || value.length === 0) throw new MalformedRecordError('record has no value');
  let o: unknown;
  try {
    o = JSON.parse(value.toString('utf8'));
  } catch {
    throw new MalformedRecordError('value is not JSON');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new MalformedRecordError('value is not a JSON object');
  const env = o as Record<string, unknown>;
  if (env['v'] !== ENVELOPE_VERSION) throw new MalformedRecordError(`"v" must be ${ENVELOPE_VERSION}`);
  if (env['channel'] !== key) throw new MalformedRecordError('"channel" must equal the record key');
  if (!isValidChannel(key)) throw new MalformedRecordError('"channel" is not a valid channel name');
  if (!('data' in env) || env['data'] === undefined) throw new MalformedRecordError('"data" is missing');
  const ts = env['ts'];
  if (ts !== undefined && (typeof ts !== 'number' || !Number.isFinite(ts) || ts < 0)) {
    throw new MalformedRecordError('"ts" must be a number of ms since the Unix epoch');
  }
  return {
    channel: key,
    ts: ts === undefined ? recordTs : ts,
    data: JSON.stringify(env['data']),
    historySize: optionalCount(env, 'historySize'),
    historyTtlSeconds: optionalCount(env, 'historyTtlSeconds'),
  };
}

/**
 * The partition of a channel: Kafka's default for keyed records in the Java client
 * (murmur2 of the key bytes, sign bit cleared, modulo the partition count).
 */
export function partitionFor(channel: string, partitions: number): number {
  return (murmur2(Buffer.from(channel, 'utf8')) & 0x7fffffff) % partitions;
}

/**
 * Kafka's 32-bit murmur2 (seed 0x9747b28c), as the Java client computes it, on 32-bit integer
 * arithmetic (the client library's own version goes through BigInt, which costs on every publish).
 */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const len = data.length;
  let h = (0x9747b28c ^ len) | 0;
  const whole = len & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = len & 3;
  if (rest === 3) h ^= (data[whole + 2] as number) << 16;
  if (rest >= 2) h ^= (data[whole + 1] as number) << 8;
  if (rest >= 1) {
    h ^= data[whole] as number;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * The epoch of a partition's history: a recreated topic has a new id, so a new epoch. `reset` is
 * the partition leader epoch (as the broker reports it) at which this node found the log cut
 * below what it had already seen (see `planPartition`): the offsets after the cut are reused by
 * new records, so they need a new epoch, and a value the broker reports is one every node
 * re-planning after the same restart computes alike.
 */
export function epochOf(topicId: string, partition: number, reset?: number): string {
  return reset === undefined ? `${topicId}:${partition}` : `${topicId}:${partition}@${reset}`;
}
