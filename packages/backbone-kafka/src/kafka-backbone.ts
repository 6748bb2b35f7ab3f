/**
 * The Kafka backbone. One topic holds every channel; the record key is the channel, so a channel
 * lives in one partition and keeps its order there.
 *
 * Fan-out: every node reads every partition of the topic itself, from the end it saw at start,
 * with plain fetch requests and no consumer group, so no rebalance can ever hand a partition to
 * another node, and a node that loses the broker continues from where it stopped (nothing is
 * lost while the log still holds it). Records of channels this node did not subscribe are
 * skipped. Offsets: Gatehouse offset = partition offset + 1; epoch = topic id and partition, plus
 * the leader epoch at which this node found the partition's log cut below what it had seen (an
 * unclean broker restart lost acknowledged records; their offsets are then reused: see plan()).
 *
 * Live reads, history reads and publishes each have their own client (so their own connection per
 * broker): a long-polling live fetch would otherwise hold up whatever is queued behind it. The
 * control plane (control messages and fleet records, on topics of their own) adds a live reader
 * and a producer of its own: see control.ts.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Admin, Consumer, Producer } from '@platformatic/kafka';
import {
  BackboneStateMachine,
  BackboneUnavailableError,
  backoffDelay,
  checkChannel,
  checkPublishData,
  checkPublishOptions,
  encodeEnvelope,
  type Backbone,
  type BackboneCapabilities,
  type BackboneHandler,
  type BackboneState,
  type ControlMessage,
  type ControlRecord,
  type HistoryResult,
  type Publication,
  type PublishOptions,
  nowMs,
} from '@gatehouse/backbone-kit';
import { LiveBarriers } from './barrier.js';
import { KafkaControlPlane, type KafkaControlStats } from './control.js';
import { HistoryReader, type PartitionLog } from './history.js';
import { planPartition } from './plan.js';
import {
  describeTopic,
  EARLIEST,
  IS_CONTROL,
  isNetworkError,
  isUnknownTopic,
  partitionBounds,
  READ_COMMITTED,
  readChunk,
  type FetchResult,
  type TopicInfo,
} from './topics.js';
import { decodePublication, epochOf, partitionFor } from './wire.js';
import { resolveOptions, type KafkaBackboneOptions, type ResolvedKafkaOptions } from './options.js';

/** Records per produce request at most; the byte bound usually comes first. */
const MAX_BATCH_RECORDS = 500;
/** History reads waiting for a free slot at most, and for the live reader at most; more reject. */
const MAX_HISTORY_WAITERS = 10_000;

const CAPABILITIES: BackboneCapabilities = {
  sequenced: true,
  history: true,
  contiguousOffsets: false,
  durable: true,
  shared: true,
  durableRecords: true,
};

/** Counters for metrics and tests; they only grow, except `lag`. */
export interface KafkaBackboneStats extends KafkaControlStats {
  /** Publishes the broker acknowledged. */
  published: number;
  /** Publishes that rejected (unreachable, closed, too many waiting, refused, or bad arguments). */
  publishErrors: number;
  /** Publications handed to the handler. */
  delivered: number;
  /** Records of subscribed channels (or history reads) dropped because the value was not a valid envelope. */
  malformed: number;
  /** Times the handler threw from onPublication or onControl (a bug in the caller; reading goes on). */
  handlerErrors: number;
  /** Records whose key belongs to another partition (an outside producer used another partitioner); dropped. */
  misrouted: number;
  /** Times the live reader came back after losing the broker or the topic. */
  reconnects: number;
  /** Records the live reader never saw because retention removed them first (a long outage). */
  skipped: number;
  /** Records behind the end of the log, summed over partitions, at the last fetch. */
  lag: number;
  /** Times a partition's log was found cut below what this node had seen: a new epoch (see plan()). */
  resets: number;
}

interface PendingPublish {
  readonly channel: string;
  readonly data: string;
  readonly ts: number;
  readonly key: Buffer;
  readonly value: Buffer;
  readonly resolve: (p: Publication) => void;
  readonly reject: (e: Error) => void;
}

/** One in-flight produce request per partition: call order is offset order, even under retries. */
interface PartitionQueue {
  items: PendingPublish[];
  busy: boolean;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Kafka as the Gatehouse backbone: durable, replayable, shared by any number of nodes. */
export class KafkaBackbone implements Backbone {
  readonly kind = 'kafka';
  readonly capabilities = CAPABILITIES;
  /** The options in force, defaults filled in. */
  readonly options: ResolvedKafkaOptions;

  private readonly machine = new BackboneStateMachine({
    // The handler must not throw; a broken one must not stop the reconnect logic.
    onListenerError: () => this.counters.handlerErrors++,
  });
  private handler: BackboneHandler | undefined;
  private readonly channels = new Set<string>();
  private readonly stopping = new AbortController();
  private admin: Admin | undefined;
  private producer: Producer | undefined;
  private newProducer: (() => Producer) | undefined;
  /** Produce requests in flight per producer, so a retired producer closes once its last one settled. */
  private readonly producing = new Map<Producer, number>();
  private live: Consumer | undefined;
  private reader: Consumer | undefined;
  private topic: TopicInfo | undefined;
  /** Next Kafka offset the live reader fetches, per partition. */
  private positions: bigint[] = [];
  /** Highest log end (last stable offset) any fetch answer reported, per partition. */
  private seenEnds: bigint[] = [];
  /** Leader epoch of the last history reset per partition (undefined: none seen); see plan(). */
  private resets: (number | undefined)[] = [];
  /** Records behind the log end per partition, from each partition's last fetch answer. */
  private lagByPartition: number[] = [];
  private liveLoop: Promise<void> | undefined;
  private readonly queues = new Map<number, PartitionQueue>();
  private pending = 0;
  private readonly historyReader: HistoryReader;
  private historyRunning = 0;
  private readonly historyWaiters: (() => void)[] = [];
  /** History reads of subscribed channels waiting for the live reader to pass their position. */
  private readonly barriers: LiveBarriers;
  private control: KafkaControlPlane | undefined;
  /** The control plane's own clients (see KafkaControlPlane), closed with the others. */
  private controlClients: (Consumer | Producer)[] = [];
  private readonly counters: Omit<KafkaBackboneStats, keyof KafkaControlStats> = {
    published: 0,
    publishErrors: 0,
    delivered: 0,
    malformed: 0,
    handlerErrors: 0,
    misrouted: 0,
    reconnects: 0,
    skipped: 0,
    lag: 0,
    resets: 0,
  };

  /** Validates the options (throws `TypeError` naming the bad field); connects only in `start`. */
  constructor(options: KafkaBackboneOptions) {
    this.options = resolveOptions(options);
    this.historyReader = new HistoryReader(
      this.partitionLog(),
      { scanRecords: this.options.historyScanRecords, timeoutMs: this.options.historyTimeoutMs, cacheSize: this.options.positionCacheSize },
      (reason, channel) => this.malformed(reason, channel),
    );
    this.barriers = new LiveBarriers((partition, epoch, through) => this.livePassed(partition, epoch, through), {
      timeoutMs: this.options.requestTimeoutMs,
      maxWaiting: MAX_HISTORY_WAITERS,
    });
  }

  get state(): BackboneState {
    return this.machine.state;
  }

  /** A snapshot of the counters, for metrics and `/readyz`. */
  stats(): KafkaBackboneStats {
    let lag = 0;
    for (let p = 0; p < (this.topic?.partitions ?? 0); p++) lag += this.lagByPartition[p] ?? 0;
    const control = this.control?.counters ?? KafkaControlPlane.noCounters();
    return { ...this.counters, ...control, lag };
  }

  /** Creates the topic when missing and starts reading every partition from its current end. */
  async start(handler: BackboneHandler): Promise<void> {
    if (this.closed()) throw new BackboneUnavailableError('kafka backbone is closed');
    if (this.handler) throw new Error('KafkaBackbone.start called twice');
    this.handler = handler;
    this.machine.listen((state, error) => handler.onStateChange(state, error));
    const o = this.options;
    const id = `${o.clientId}-${randomBytes(4).toString('hex')}`;
    const base = {
      bootstrapBrokers: [...o.brokers],
      timeout: o.requestTimeoutMs,
      connectTimeout: Math.min(o.requestTimeoutMs, 5_000),
    };
    // The live reader and admin retry nothing themselves: the live loop owns reconnection.
    this.admin = new Admin({ ...base, clientId: `${id}-admin`, retries: 0 });
    this.live = new Consumer({ ...base, clientId: `${id}-live`, groupId: `${id}-unused`, retries: 0 });
    this.reader = new Consumer({ ...base, clientId: `${id}-history`, groupId: `${id}-unused`, retries: 1, retryDelay: 100 });
    // Idempotent: a retried produce request can never write a publication twice.
    this.newProducer = () => new Producer({ ...base, clientId: `${id}-producer`, idempotent: true, acks: -1, retries: 2, retryDelay: 250 });
    this.producer = this.newProducer();
    const controlLive = new Consumer({ ...base, clientId: `${id}-control`, groupId: `${id}-unused`, retries: 0 });
    // Not idempotent and no retries: a control message is written at most once.
    const controlProducer = new Producer({ ...base, clientId: `${id}-control-producer`, acks: -1, retries: 0 });
    this.controlClients = [controlLive, controlProducer];
    const control = new KafkaControlPlane({
      options: o,
      admin: this.admin,
      live: controlLive,
      reader: this.reader,
      producer: controlProducer,
      state: () => this.machine.state,
      deliver: (msg) => this.deliverControl(msg),
      pause: (ms) => this.pause(ms),
    });
    this.control = control;

    const deadline = Date.now() + o.startTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.plan();
        await control.prepare();
        break;
      } catch (err) {
        if (this.closed()) throw new BackboneUnavailableError('kafka backbone closed while starting', { cause: err });
        const wait = this.backoff(attempt);
        if (Date.now() + wait > deadline) {
          await this.close();
          throw new BackboneUnavailableError(
            `kafka at ${o.brokers.join(',')} not usable within ${o.startTimeoutMs} ms: ${errorText(err)}`,
            { cause: err },
          );
        }
        await this.pause(wait);
      }
    }
    if (this.closed()) throw new BackboneUnavailableError('kafka backbone closed while starting');
    this.machine.set('up');
    this.liveLoop = this.runLive();
    control.run(this.stopping.signal);
  }

  async publish(channel: string, data: string, options: PublishOptions): Promise<Publication> {
    try {
      return await this.enqueue(channel, data, options);
    } catch (err) {
      this.counters.publishErrors++;
      throw err;
    }
  }

  /** Validates a publish and queues it on its partition; resolves when the broker acknowledged it. */
  private async enqueue(channel: string, data: string, options: PublishOptions): Promise<Publication> {
    checkChannel(channel);
    checkPublishData(data);
    checkPublishOptions(options);
    const { historySize, historyTtlSeconds } = options;
    if (this.state !== 'up' || !this.topic) throw new BackboneUnavailableError(`kafka backbone is ${this.state}`);
    if (this.pending >= this.options.maxPendingPublishes) {
      throw new BackboneUnavailableError(`kafka backbone has ${this.pending} publishes waiting for the broker (maxPendingPublishes)`);
    }
    const ts = nowMs();
    const value = Buffer.from(encodeEnvelope({ channel, ts, data, historySize, historyTtlSeconds }), 'utf8');
    if (value.length > this.options.maxMessageBytes) {
      throw new RangeError(`publication of ${value.length} bytes exceeds maxMessageBytes (${this.options.maxMessageBytes})`);
    }
    const partition = partitionFor(channel, this.topic.partitions);
    return new Promise<Publication>((resolve, reject) => {
      let q = this.queues.get(partition);
      if (!q) this.queues.set(partition, (q = { items: [], busy: false }));
      q.items.push({ channel, data, ts, key: Buffer.from(channel, 'utf8'), value, resolve, reject });
      this.pending++;
      this.flush(partition);
    });
  }

  async subscribe(channel: string): Promise<void> {
    checkChannel(channel);
    if (this.closed() || !this.handler) throw new BackboneUnavailableError(`kafka backbone is ${this.closed() ? 'closed' : 'not started'}`);
    // The live reader already reads every partition: a subscription is a filter, nothing to ask
    // the broker, and it survives reconnects by itself.
    this.channels.add(channel);
  }

  async unsubscribe(channel: string): Promise<void> {
    this.channels.delete(channel);
  }

  async history(channel: string, after: { epoch: string; offset: number } | undefined, limit: number): Promise<HistoryResult> {
    checkChannel(channel);
    if (!Number.isSafeInteger(limit) || limit < 0) throw new TypeError('history limit must be an integer >= 0');
    if (after !== undefined && (typeof after?.epoch !== 'string' || !Number.isSafeInteger(after.offset) || after.offset < 0)) {
      throw new TypeError('history "after" must be {epoch: string, offset: integer >= 0}');
    }
    let partition: number;
    let answer: HistoryResult;
    await this.historySlot();
    try {
      const topic = this.topic;
      if (this.closed() || !topic) throw new BackboneUnavailableError(`kafka backbone is ${this.state}`);
      partition = partitionFor(channel, topic.partitions);
      // A position in an epoch this node left (a reset) answers complete: false: a gap.
      answer = await this.historyReader.read({ channel, partition, epoch: this.epochFor(topic, partition) }, after, limit);
    } catch (err) {
      if (err instanceof BackboneUnavailableError) throw err;
      throw new BackboneUnavailableError(`kafka history read for ${channel} failed: ${errorText(err)}`, { cause: err });
    } finally {
      this.releaseHistorySlot();
    }
    // The barrier: the history reader may have seen the log further than the live reader has
    // fetched; what lies between would be delivered after this answer, inside the position it
    // gives (see barrier.ts). Waited for outside the slot: it needs no request of its own.
    if (answer.offset > 0 && this.channels.has(channel)) {
      await this.barriers.wait(partition, answer.epoch, BigInt(answer.offset), `the history position of ${channel}`);
    }
    return answer;
  }

  async sendControl(msg: ControlMessage): Promise<void> {
    return this.controlPlane().send(msg);
  }

  async putRecord(kind: string, record: ControlRecord): Promise<void> {
    return this.controlPlane().put(kind, record);
  }

  async records(kind: string): Promise<ControlRecord[]> {
    return this.controlPlane().list(kind);
  }

  private controlPlane(): KafkaControlPlane {
    if (!this.control) throw new BackboneUnavailableError(`kafka backbone is ${this.closed() ? 'closed' : 'not started'}`);
    return this.control;
  }

  private deliverControl(msg: ControlMessage): void {
    try {
      this.handler?.onControl(msg);
    } catch {
      // The handler must not throw; if it does, the fault is its own and reading goes on.
      this.counters.handlerErrors++;
    }
  }

  async close(): Promise<void> {
    if (this.closed()) return;
    // Reported at once: from here on every operation rejects and every loop stops.
    this.machine.set('closed');
    this.stopping.abort();
    const closed = new BackboneUnavailableError('kafka backbone closed');
    for (const q of this.queues.values()) {
      // In-flight batches reject when the producer closes; the rest never left.
      for (const item of q.items) item.reject(closed);
      this.pending -= q.items.length;
      q.items = [];
    }
    // Waiters wake to find the backbone closed; each holds a slot it will release.
    const waiters = this.historyWaiters.splice(0);
    this.historyRunning += waiters.length;
    for (const wake of waiters) wake();
    this.barriers.rejectAll(closed);
    await Promise.allSettled([
      this.live?.close(true),
      this.reader?.close(true),
      this.producer?.close(true),
      // Retired producers still waiting for their last answers.
      ...[...this.producing.keys()].filter((p) => p !== this.producer).map((p) => p.close(true)),
      this.admin?.close(),
      ...this.controlClients.map((c) => c.close(true)),
    ]);
    await Promise.all([this.liveLoop, this.control?.stopped()]);
    this.handler = undefined;
    this.channels.clear();
  }

  // ---------------------------------------------------------------- topic and live reading

  /**
   * Makes sure the topic exists and the live positions belong to it and lie inside the log. A
   * position below the log start means retention removed records this node never read: they are
   * counted in `skipped`, and reading resumes at the oldest record left.
   *
   * A log end below what this node had seen means the broker lost acknowledged records (a SIGKILL
   * or power loss before they reached disk, then log recovery): new records will reuse their
   * offsets. The partition then gets a new epoch, named by the leader epoch the broker reports, so
   * the core reports a gap instead of dropping the reused offsets as duplicates, and every node
   * that re-plans after the same restart derives the same epoch without talking to the others.
   */
  private async plan(): Promise<void> {
    const o = this.options;
    const info = await describeTopic(this.admin as Admin, {
      name: o.topic,
      partitions: o.partitions,
      replicationFactor: o.replicationFactor,
      configs: [],
      create: o.createTopic,
    });
    const previous = this.topic;
    const { starts, ends } = await this.logBounds(info);
    const sameTopic = previous?.id === info.id;
    // A new topic is a new history (new epochs): start at its end and forget what was learnt
    // about the old one. The same topic (perhaps with more partitions) continues where it was.
    if (!sameTopic) {
      this.historyReader.reset();
      this.lagByPartition = [];
      this.seenEnds = [];
      this.resets = [];
    }
    let reset = false;
    this.positions = ends.map((end, p) => {
      const plan = planPartition({
        at: sameTopic ? this.positions[p] : undefined,
        seen: this.seenEnds[p] ?? -1n,
        start: starts[p] as bigint,
        end,
      });
      this.counters.skipped += plan.skipped;
      if (plan.reset) {
        this.resets[p] = info.leaderEpochs[p] as number;
        this.counters.resets++;
        reset = true;
      }
      this.seenEnds[p] = end;
      return plan.position;
    });
    this.topic = info;
    // Positions jumped (retention skipped records) or epochs changed: reads waiting on them are done.
    this.barriers.settleAll();
    // The broker rebuilt its idempotence state from the cut log: the sequence numbers this
    // producer id continues with now look out of order, and every publish would fail.
    if (reset) this.retireProducer();
  }

  /** Log start and end (last stable offset) of every partition. */
  private async logBounds(info: TopicInfo): Promise<{ starts: bigint[]; ends: bigint[] }> {
    const name = this.options.topic;
    const live = this.live as Consumer;
    const [first, last] = await Promise.all([
      live.listOffsets({ topics: [name], isolationLevel: READ_COMMITTED, timestamp: EARLIEST }),
      live.listOffsets({ topics: [name], isolationLevel: READ_COMMITTED }),
    ]);
    const pick = (m: Map<string, bigint[]>, what: string): bigint[] => {
      const list = m.get(name) ?? [];
      return Array.from({ length: info.partitions }, (_, p) => {
        const o = list[p];
        if (o === undefined) throw new BackboneUnavailableError(`no ${what} offset for ${name}/${p}`);
        return o;
      });
    };
    return { starts: pick(first, 'start'), ends: pick(last, 'end') };
  }

  /**
   * Reads until closed. On failure: backs off, re-plans and continues. The state goes `down` when
   * the broker or the topic is gone, and also when rounds keep failing before any answer while the
   * broker itself answers (a record batch this client cannot decode, say): stuck must not look
   * healthy. It goes back `up` with the first fetch answer, not merely with the first metadata.
   */
  private async runLive(): Promise<void> {
    let failedRounds = 0;
    while (!this.closed()) {
      const { error, answered } = await this.fetchRound();
      if (this.closed()) return;
      failedRounds = answered ? 1 : failedRounds + 1;
      if (isNetworkError(error) || isUnknownTopic(error) || failedRounds >= 3) this.machine.set('down', error);
      for (let attempt = failedRounds; ; attempt++) {
        await this.pause(this.backoff(attempt));
        if (this.closed()) return;
        try {
          await this.plan();
          break;
        } catch (planError) {
          if (this.closed()) return;
          this.machine.set('down', planError instanceof Error ? planError : new Error(String(planError)));
        }
      }
    }
  }

  /** The live reader got an answer from the broker: the backbone works (again). */
  private fetched(): void {
    if (this.state !== 'down') return;
    this.counters.reconnects++;
    this.machine.set('up');
  }

  /**
   * One fetch loop per partition leader, all on the current plan, until one fails. The other
   * loops stop after their current fetch and drop its answer, so the next round refetches from
   * unchanged positions: nothing is delivered twice. `answered`: some fetch succeeded.
   */
  private async fetchRound(): Promise<{ error: Error; answered: boolean }> {
    const topic = this.topic as TopicInfo;
    const byLeader = new Map<number, number[]>();
    topic.leaders.forEach((leader, p) => {
      const list = byLeader.get(leader);
      if (list) list.push(p);
      else byLeader.set(leader, [p]);
    });
    let failure: Error | undefined;
    let answered = false;
    const loops = [...byLeader].map(async ([node, partitions]) => {
      try {
        while (!failure && !this.closed()) {
          const res = await this.fetchLive(topic, node, partitions);
          if (failure || this.closed()) return;
          answered = true;
          this.fetched();
          this.consume(topic, res);
        }
      } catch (err) {
        failure ??= err instanceof Error ? err : new Error(String(err));
      }
    });
    await Promise.all(loops);
    return { error: failure ?? new Error('kafka backbone closed'), answered };
  }

  private fetchLive(topic: TopicInfo, node: number, partitions: readonly number[]): Promise<FetchResult> {
    const o = this.options;
    const perPartition = Math.min(1024 * 1024, o.fetchMaxBytes);
    return (this.live as Consumer).fetch({
      node,
      maxWaitTime: o.fetchMaxWaitMs,
      minBytes: 1,
      maxBytes: o.fetchMaxBytes,
      isolationLevel: READ_COMMITTED,
      topics: [
        {
          topicId: topic.id,
          partitions: partitions.map((partition) => ({
            partition,
            fetchOffset: this.positions[partition] as bigint,
            currentLeaderEpoch: -1,
            lastFetchedEpoch: -1,
            partitionMaxBytes: perPartition,
          })),
        },
      ],
    });
  }

  /** Delivers the records of subscribed channels in a fetch answer, in offset order per partition. */
  private consume(topic: TopicInfo, res: FetchResult): void {
    for (const t of res.responses) {
      if (t.topicId !== topic.id) continue;
      for (const part of t.partitions) {
        const p = part.partitionIndex;
        let next = this.positions[p];
        if (next === undefined) continue;
        const epoch = this.epochFor(topic, p);
        for (const batch of part.records ?? []) {
          const batchEnd = batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n;
          if (!(batch.attributes & IS_CONTROL)) {
            for (const rec of batch.records) {
              const offset = batch.firstOffset + BigInt(rec.offsetDelta);
              if (offset < next) continue;
              next = offset + 1n;
              // Channel names are ASCII, so latin1 decodes a matching key exactly (and cheaply).
              const channel = rec.key?.toString('latin1');
              if (channel === undefined || !this.channels.has(channel)) continue;
              this.deliver(topic, p, epoch, channel, offset, rec.value, Number(batch.firstTimestamp + rec.timestampDelta));
            }
          }
          if (batchEnd > next) next = batchEnd;
        }
        this.positions[p] = next;
        this.lagByPartition[p] = Math.max(0, Number(part.highWatermark - next));
        // What a read-committed fetch may reach: records below it were acknowledged (acks=all).
        const end = part.lastStableOffset >= 0n ? part.lastStableOffset : part.highWatermark;
        const seen = this.seenEnds[p] ?? -1n;
        this.seenEnds[p] = end > seen ? end : seen;
        // After the deliveries above: a history read waiting on them resolves behind them.
        this.barriers.settle(p);
      }
    }
  }

  private deliver(
    topic: TopicInfo,
    p: number,
    epoch: string,
    channel: string,
    offset: bigint,
    value: Buffer | null,
    recordTs: number,
  ): void {
    if (partitionFor(channel, topic.partitions) !== p) {
      this.counters.misrouted++;
      return;
    }
    const env = decodePublication(channel, value, recordTs);
    if (typeof env === 'string') {
      this.malformed(env, channel);
      return;
    }
    this.counters.delivered++;
    try {
      this.handler?.onPublication({ channel, epoch, offset: Number(offset) + 1, ts: env.ts, data: env.data });
    } catch {
      // The handler must not throw; if it does, the fault is its own and reading goes on.
      this.counters.handlerErrors++;
    }
  }

  private malformed(reason: string, key: string): void {
    this.counters.malformed++;
    try {
      this.options.onMalformed?.(reason, key);
    } catch {
      // A reporting hook must not stop delivery.
    }
  }

  // ---------------------------------------------------------------- publishing

  private flush(partition: number): void {
    const q = this.queues.get(partition);
    const topic = this.topic;
    if (!q || q.busy || q.items.length === 0 || !topic) return;
    const batch: PendingPublish[] = [];
    let bytes = 0;
    for (const item of q.items) {
      const size = item.value.length + item.key.length + 64;
      if (batch.length > 0 && (batch.length >= MAX_BATCH_RECORDS || bytes + size > this.options.maxMessageBytes)) break;
      batch.push(item);
      bytes += size;
    }
    q.items.splice(0, batch.length);
    q.busy = true;
    const name = this.options.topic;
    const producer = this.producer as Producer;
    this.producing.set(producer, (this.producing.get(producer) ?? 0) + 1);
    producer
      .send({
        messages: batch.map((i) => ({ topic: name, partition, key: i.key, value: i.value, timestamp: BigInt(Math.floor(i.ts)) })),
      })
      .then((res) => {
        const base = res.offsets?.find((o) => o.topic === name && o.partition === partition)?.offset;
        if (base === undefined) throw new Error(`the broker did not report an offset for ${name}/${partition}`);
        // Taken on the answer, not on the send: a reset found meanwhile applies to these offsets.
        const epoch = this.epochFor(topic, partition);
        // One produce request makes one record batch per partition: consecutive offsets in call order.
        batch.forEach((item, i) => {
          this.counters.published++;
          item.resolve({ channel: item.channel, epoch, offset: Number(base) + i + 1, ts: item.ts, data: item.data });
        });
      })
      .catch((err: unknown) => {
        // A failed request may still have been written (the answer was lost with the broker), and
        // the client library does not advance its sequence number on a failure: the next batch
        // would reuse this one's, and the broker would take it for a retry of this one, answer
        // with this one's offset and drop it, a silent loss (seen on broker restarts). A new
        // producer id makes every later batch new to the broker.
        if (producer === this.producer) this.retireProducer();
        const e = new BackboneUnavailableError(`kafka publish failed: ${errorText(err)}`, { cause: err });
        for (const item of batch) item.reject(e);
      })
      .finally(() => {
        this.pending -= batch.length;
        const left = (this.producing.get(producer) ?? 1) - 1;
        if (left > 0) this.producing.set(producer, left);
        else this.producing.delete(producer);
        if (left === 0 && producer !== this.producer && !this.closed()) producer.close(true, () => {});
        q.busy = false;
        this.flush(partition);
      });
  }

  /**
   * Publishes from now on go through a new producer (a new producer id, sequence numbers from 0).
   * The old one closes once its requests in flight have settled: they are answered normally.
   */
  private retireProducer(): void {
    const old = this.producer;
    if (!old || !this.newProducer) return;
    this.producer = this.newProducer();
    if (!this.producing.has(old)) old.close(true, () => {});
  }

  // ---------------------------------------------------------------- history plumbing

  private partitionLog(): PartitionLog {
    const name = () => this.options.topic;
    return {
      bounds: (partition) => partitionBounds(this.reader as Consumer, name(), partition),
      read: (partition, from) =>
        readChunk(this.reader as Consumer, this.topic as TopicInfo, partition, from, Math.min(1024 * 1024, this.options.fetchMaxBytes)),
    };
  }

  private async historySlot(): Promise<void> {
    if (this.historyRunning < this.options.historyConcurrency) {
      this.historyRunning++;
      return;
    }
    if (this.historyWaiters.length >= MAX_HISTORY_WAITERS) {
      throw new BackboneUnavailableError('too many kafka history reads waiting');
    }
    // The slot is handed over by releaseHistorySlot, so the running count stays the same.
    await new Promise<void>((resolve) => this.historyWaiters.push(resolve));
  }

  private releaseHistorySlot(): void {
    const next = this.historyWaiters.shift();
    if (next) next();
    else this.historyRunning--;
  }

  /**
   * True when nothing of `partition` at Kafka offsets below `through` can still be delivered in
   * `epoch`: the live reader is past it, or the partition's history moved on (a reset or a new
   * topic: every later delivery carries another epoch, and `consume` reads the epoch afresh).
   */
  private livePassed(partition: number, epoch: string, through: bigint): boolean {
    const topic = this.topic;
    if (!topic || partition >= topic.partitions || this.epochFor(topic, partition) !== epoch) return true;
    return (this.positions[partition] ?? -1n) >= through;
  }

  // ---------------------------------------------------------------- small helpers

  /** The epoch of `partition`'s current history (see plan()). */
  private epochFor(topic: TopicInfo, partition: number): string {
    return epochOf(topic.id, partition, this.resets[partition]);
  }

  /** A method, not a field test, so TypeScript does not narrow the state across awaits. */
  private closed(): boolean {
    return this.machine.state === 'closed';
  }

  /** The wait before retry `attempt`: the kit's curve between the configured floor and cap. */
  private backoff(attempt: number): number {
    return backoffDelay(attempt, this.options.reconnectMinMs, this.options.reconnectMaxMs);
  }

  /** Waits, or returns early when the backbone closes. */
  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stopping.signal }).catch(() => {});
  }
}

/**
 * Builds a Kafka backbone for `brokers`: `host:port` or `kafka://host[:port]` (port 9092 by
 * default) each, as the CLI's `--backbone kafka://...` gives them.
 */
export function createKafkaBackbone(brokers: string[], opts: Omit<KafkaBackboneOptions, 'brokers'> = {}): KafkaBackbone {
  if (!Array.isArray(brokers)) throw new TypeError('createKafkaBackbone: brokers must be an array');
  return new KafkaBackbone({ ...opts, brokers: brokers.map(brokerAddress) });
}

function brokerAddress(b: string): string {
  if (typeof b !== 'string' || !b.startsWith('kafka://')) return b;
  let url: URL;
  try {
    url = new URL(b);
  } catch {
    throw new TypeError(`createKafkaBackbone: ${JSON.stringify(b)} is not a valid kafka:// URL`);
  }
  if (url.username || url.password || (url.pathname !== '' && url.pathname !== '/') || url.search || url.hash || !url.hostname) {
    throw new TypeError(`createKafkaBackbone: ${JSON.stringify(b)} must be kafka://host[:port] and nothing more`);
  }
  return `${url.hostname}:${url.port || '9092'}`;
}
