/**
 * How a Gatehouse publication is a Kafka record. This is the Kafka half of the contract for
 * services that publish straight into Kafka (the envelope itself is the kit's, version 1: see
 * docs/backbones.md, "The envelope"):
 *
 * - topic: the backbone's topic (default `gatehouse`), one for every channel;
 * - key: the channel name in UTF-8, so a channel always lands in one partition and keeps order;
 * - partition: `(murmur2(key) & 0x7fffffff) % partitions`, the Java client's default for keyed
 *   records (set it explicitly, or use a client whose default partitioner matches);
 * - value: the envelope with `"historySize"` and `"historyTtlSeconds"` (the channel's retention
 *   for recovery); `"ts"` may be left out, the record's timestamp stands in.
 *
 * Offsets and epochs are not in the value: Kafka only knows them after the write. A reader takes
 * them from the record: offset = partition offset + 1 (0 keeps meaning "nothing yet"), epoch =
 * topic id and partition.
 */
import { decodeEnvelope, type DecodedEnvelope } from '@gatehouse/backbone-kit';

/**
 * Decodes the value of a record keyed `channel`, with `recordTs` (the record's timestamp) when
 * the envelope has no `ts`. Answers the envelope or why the record must be dropped; never throws.
 */
export function decodePublication(channel: string, value: Buffer | null, recordTs: number): DecodedEnvelope | string {
  if (value === null || value.length === 0) return 'record has no value';
  return decodeEnvelope(value, channel, { defaultTs: recordTs });
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
