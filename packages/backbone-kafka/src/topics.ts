/**
 * Topic plumbing the data plane and the control plane share: creating a topic when it is missing
 * (explicitly, with the settings it needs: the clients never let a broker auto-create one with its
 * defaults), describing it, and taking the records out of a fetch answer.
 */
import { NetworkError, TimeoutError, UserError, type Admin, type Consumer } from '@platformatic/kafka';
import { BackboneUnavailableError } from '@gatehouse/backbone-kit';
import type { LogRecord } from './history.js';

/** Kafka's batch attribute bit for control batches (transaction markers): never user data. */
export const IS_CONTROL = 1 << 5;
/** ListOffsets timestamps with a special meaning. */
export const EARLIEST = -2n;
/** Fetch isolation: only committed records (outside transactional producers may abort). */
export const READ_COMMITTED = 1;

/** A fetch answer, as the client library types it. */
export type FetchResult = Awaited<ReturnType<Consumer['fetch']>>;
type FetchedPartition = FetchResult['responses'][number]['partitions'][number];

/** A topic as the broker last described it. */
export interface TopicInfo {
  readonly id: string;
  readonly partitions: number;
  /** Leader broker id per partition. */
  readonly leaders: readonly number[];
  /** Partition leader epoch per partition. */
  readonly leaderEpochs: readonly number[];
}

/** A topic this backbone uses, and how to create it when it is missing. */
export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  /** -1: the broker's default. */
  readonly replicationFactor: number;
  /** Topic settings given at creation (an existing topic keeps its own). */
  readonly configs: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  /** Create it when missing; otherwise a missing topic is an error. */
  readonly create: boolean;
}

/** True for errors that mean the broker could not be reached or did not answer in time. */
export function isNetworkError(err: unknown): boolean {
  const e = err as { findBy?: (k: string, v: unknown) => unknown } | undefined;
  if (err instanceof NetworkError || err instanceof TimeoutError) return true;
  return Boolean(e?.findBy?.('code', NetworkError.code) || e?.findBy?.('code', TimeoutError.code));
}

/** True for the client library's "this topic does not exist". */
export function isUnknownTopic(err: unknown): boolean {
  return err instanceof UserError && err.message.startsWith('Unknown topic');
}

/** Describes `spec`'s topic, creating it first when it is missing and `spec.create` allows. */
export async function describeTopic(admin: Admin, spec: TopicSpec): Promise<TopicInfo> {
  let created = false;
  for (;;) {
    try {
      const md = await admin.metadata({ topics: [spec.name], forceUpdate: true });
      const t = md.topics.get(spec.name);
      if (!t) throw new UserError(`Unknown topic ${spec.name}.`);
      const leaders = t.partitions.map((p) => p.leader);
      // Right after creation the controller may not have elected every leader yet.
      if (leaders.some((l) => l < 0)) throw new BackboneUnavailableError(`topic ${spec.name} has partitions without a leader`);
      return { id: t.id, partitions: t.partitionsCount, leaders, leaderEpochs: t.partitions.map((p) => p.leaderEpoch) };
    } catch (err) {
      if (!isUnknownTopic(err) || created) throw err;
      if (!spec.create) throw new BackboneUnavailableError(`topic ${spec.name} does not exist and createTopic is false`, { cause: err });
      try {
        await admin.createTopics({
          topics: [spec.name],
          partitions: spec.partitions,
          replicas: spec.replicationFactor,
          configs: spec.configs.map((c) => ({ ...c })),
        });
      } catch (e) {
        // Another node created it first: fine.
        const exists = (e as { findBy?: (k: string, v: unknown) => unknown }).findBy?.('apiId', 'TOPIC_ALREADY_EXISTS');
        if (!exists) throw e;
      }
      created = true;
    }
  }
}

/** Log start and end (last stable offset) of one partition. */
export async function partitionBounds(client: Consumer, topic: string, partition: number): Promise<{ start: bigint; end: bigint }> {
  const scope = { topics: [topic], partitions: { [topic]: [partition] }, isolationLevel: READ_COMMITTED };
  const [starts, ends] = await Promise.all([client.listOffsets({ ...scope, timestamp: EARLIEST }), client.listOffsets(scope)]);
  const start = starts.get(topic)?.[partition];
  const end = ends.get(topic)?.[partition];
  if (start === undefined || end === undefined) throw new BackboneUnavailableError(`no offsets for ${topic}/${partition}`);
  return { start, end };
}

/**
 * The user records of one partition of a fetch answer, oldest first, and the offset right after
 * the last batch (control batches included, so a reader always advances). Records may begin
 * before `from` (a batch is returned whole); callers skip those.
 */
export function partitionRecords(part: FetchedPartition, from: bigint): { records: LogRecord[]; next: bigint } {
  const records: LogRecord[] = [];
  let next = from;
  for (const batch of part.records ?? []) {
    const end = batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n;
    if (end > next) next = end;
    if (batch.attributes & IS_CONTROL) continue;
    for (const rec of batch.records) {
      records.push({
        offset: batch.firstOffset + BigInt(rec.offsetDelta),
        key: rec.key,
        value: rec.value,
        timestamp: Number(batch.firstTimestamp + rec.timestampDelta),
      });
    }
  }
  return { records, next };
}

/**
 * One fetch of `partition` from `from` that does not wait for new records: a chunk of at most
 * `maxBytes` (at least one batch), for reads that walk a log to its current end.
 */
export async function readChunk(
  client: Consumer,
  topic: TopicInfo,
  partition: number,
  from: bigint,
  maxBytes: number,
): Promise<{ records: LogRecord[]; next: bigint }> {
  const res = await client.fetch({
    node: topic.leaders[partition] as number,
    maxWaitTime: 0,
    minBytes: 1,
    maxBytes,
    isolationLevel: READ_COMMITTED,
    topics: [
      {
        topicId: topic.id,
        partitions: [{ partition, fetchOffset: from, currentLeaderEpoch: -1, lastFetchedEpoch: -1, partitionMaxBytes: maxBytes }],
      },
    ],
  });
  const part = fetchedPartition(res, topic.id, partition);
  return part ? partitionRecords(part, from) : { records: [], next: from };
}

/** Partition `partition` of topic `topicId` in a fetch answer, when the broker returned it. */
export function fetchedPartition(res: FetchResult, topicId: string, partition: number): FetchedPartition | undefined {
  return res.responses.find((t) => t.topicId === topicId)?.partitions.find((p) => p.partitionIndex === partition);
}
