/**
 * The control plane on Kafka: control messages and fleet records, each on a topic of its own
 * beside the data topic, so no data channel (which lives in the data topic, keyed by channel)
 * can ever carry them, and a fleet's namespace (its data topic name) names them too.
 *
 * Control messages: topic `<topic>.control`, one partition, short retention. Every node reads it
 * with plain fetches from the end it found at start, with no consumer group (a group would share
 * the partition out; every node must see every message). After losing the broker a node goes on
 * from where it stopped, so a message is never delivered twice; retention bounds what it can
 * still catch up on. Sends are written once (no client retries): at most once.
 *
 * Records: topic `<topic>.records`, one partition, `cleanup.policy=compact,delete`, key
 * `<kind>/<key>` (a kind has no `/`), so compaction keeps only the newest record of a key and
 * `records()` reads the log from the beginning. Expiry: the newest write of a key wins and an
 * expired one is never answered; the topic's retention (90 days when this backbone creates it,
 * on broker time: `message.timestamp.type=LogAppendTime`) deletes old segments, so expired
 * records cannot pile up. No tombstones are written for expired records: one could land after a
 * fresh write of the same key from another node and delete it. Instead `putRecord` refuses an
 * `expiresAt` further ahead than the retention (less a margin for clock skew), so retention never
 * deletes a record that still counts. Each node keeps the live records it has read in memory and
 * reads only what is new on the next `records()` call.
 */
import { ConfigResourceTypes, type Admin, type Consumer, type Producer } from '@platformatic/kafka';
import {
  BackboneInputError,
  BackboneUnavailableError,
  backoffDelay,
  checkControlMessage,
  checkRecord,
  checkRecordKind,
  decodeControl,
  decodeRecord,
  encodeControl,
  encodeRecord,
  type BackboneState,
  type ControlMessage,
  type ControlRecord,
} from '@gatehouse/backbone-kit';
import type { LogRecord } from './history.js';
import type { ResolvedKafkaOptions } from './options.js';
import { controlTopicName, recordsTopicName } from './options.js';
import {
  describeTopic,
  fetchedPartition,
  partitionBounds,
  partitionRecords,
  readChunk,
  READ_COMMITTED,
  type FetchResult,
  type TopicInfo,
  type TopicSpec,
} from './topics.js';

/** How long the control topic keeps messages: what a node back from an outage can still catch up on. */
export const CONTROL_RETENTION_MS = 10 * 60_000;
/** How long the records topic keeps a segment when this backbone creates it. */
export const RECORDS_RETENTION_MS = 90 * 24 * 3_600_000;
/** Most of a day's clock skew between nodes and broker is tolerated before retention could bite. */
const MAX_SKEW_MS = 24 * 3_600_000;
/** The one partition of each control-plane topic. */
const PARTITION = 0;

/** Counters of the control plane, merged into the backbone's `stats()`. */
export interface KafkaControlStats {
  /** Control messages the broker acknowledged. */
  controlSent: number;
  /** Control messages handed to the handler. */
  controlDelivered: number;
  /** Control messages dropped because they were not valid (written by someone else). */
  controlMalformed: number;
  /**
   * Failed operations against the broker: sends and record writes it did not take, and control
   * reads that failed (a count that keeps rising while `controlReconnects` does not is a stuck
   * control reader).
   */
  controlErrors: number;
  /** Times the control reader came back after losing the broker or its topic. */
  controlReconnects: number;
  /** Control messages retention removed before this node read them (a long outage). */
  controlSkipped: number;
  /** Records the broker acknowledged. */
  recordsPut: number;
  /** Stored records dropped on read because they were not valid. */
  recordsMalformed: number;
}

/** What the control plane needs from the backbone that owns it. */
export interface ControlPlaneDeps {
  readonly options: ResolvedKafkaOptions;
  /** Shared with the backbone: creates and describes topics. */
  readonly admin: Admin;
  /** Its own client: a long-polling fetch would hold up anything queued behind it. */
  readonly live: Consumer;
  /** Shared with history reads: only fetches that do not wait. */
  readonly reader: Consumer;
  /** Its own producer, not idempotent and without retries: a control message goes out at most once. */
  readonly producer: Producer;
  /** The backbone's state: the control plane takes work only while it is `up`. */
  readonly state: () => BackboneState;
  /** Hands a message to the handler (which must not throw; the backbone guards it). */
  readonly deliver: (msg: ControlMessage) => void;
  /** Waits `ms`, or less when the backbone closes. */
  readonly pause: (ms: number) => Promise<void>;
}

/** Control messages and fleet records of one Kafka backbone (see the module comment). */
export class KafkaControlPlane {
  /** Counters that only grow. */
  readonly counters: KafkaControlStats = KafkaControlPlane.noCounters();

  /** Every counter at zero (also what a backbone that never started reports). */
  static noCounters(): KafkaControlStats {
    return {
      controlSent: 0,
      controlDelivered: 0,
      controlMalformed: 0,
      controlErrors: 0,
      controlReconnects: 0,
      controlSkipped: 0,
      recordsPut: 0,
      recordsMalformed: 0,
    };
  }
  private readonly controlSpec: TopicSpec;
  private readonly recordsSpec: TopicSpec;
  private controlTopic: TopicInfo | undefined;
  /** Next offset the control reader fetches. */
  private position = 0n;
  private recordsTopic: TopicInfo | undefined;
  /** Furthest `expiresAt - now` a record may have, from the records topic's retention. */
  private maxTtlMs = Number.POSITIVE_INFINITY;
  /** The records topic's retention as read at start, for error messages. */
  private retentionText = 'none';
  /** Live records read so far, per kind, then per key; and the next offset to read. */
  private readonly view = new Map<string, Map<string, ControlRecord>>();
  private viewTopic: string | undefined;
  private viewAt = 0n;
  /** Reads of the records topic, one after the other, so each sees every write before it started. */
  private reading: Promise<unknown> = Promise.resolve();
  private loop: Promise<void> | undefined;

  constructor(private readonly deps: ControlPlaneDeps) {
    const o = deps.options;
    const common = { partitions: 1, replicationFactor: o.replicationFactor, create: o.createTopic };
    this.controlSpec = {
      ...common,
      name: controlTopicName(o.topic),
      configs: [
        { name: 'cleanup.policy', value: 'delete' },
        { name: 'retention.ms', value: String(CONTROL_RETENTION_MS) },
        // Retention deletes whole segments: small ones keep the topic near its retention.
        { name: 'segment.ms', value: String(CONTROL_RETENTION_MS / 5) },
      ],
    };
    this.recordsSpec = {
      ...common,
      name: recordsTopicName(o.topic),
      configs: [
        { name: 'cleanup.policy', value: 'compact,delete' },
        { name: 'retention.ms', value: String(RECORDS_RETENTION_MS) },
        // Broker time, so a node with a wrong clock cannot get records deleted early.
        { name: 'message.timestamp.type', value: 'LogAppendTime' },
        // Compaction skips the active segment: roll hourly so replaced records go.
        { name: 'segment.ms', value: String(3_600_000) },
      ],
    };
  }

  /**
   * Creates the two topics when missing, reads the records topic's retention and places the
   * control reader at the end of its topic. Run by the backbone's start (and retried with it).
   */
  async prepare(): Promise<void> {
    const { admin, live } = this.deps;
    const [control, records] = await Promise.all([describeTopic(admin, this.controlSpec), describeTopic(admin, this.recordsSpec)]);
    const [{ end }] = await Promise.all([partitionBounds(live, this.controlSpec.name, PARTITION), this.readRetention()]);
    this.controlTopic = control;
    this.recordsTopic = records;
    this.position = end;
  }

  /** Starts reading control messages; runs until the backbone closes. */
  run(signal: AbortSignal): void {
    this.loop ??= this.readLoop(signal);
  }

  /** Resolves once the read loop has stopped (after the backbone closed its clients). */
  async stopped(): Promise<void> {
    await this.loop;
  }

  /** `Backbone.sendControl`. */
  async send(msg: ControlMessage): Promise<void> {
    checkControlMessage(msg);
    this.requireUp();
    await this.write(this.controlSpec.name, null, encodeControl(msg));
    this.counters.controlSent++;
  }

  /** `Backbone.putRecord`. */
  async put(kind: string, record: ControlRecord): Promise<void> {
    checkRecord(kind, record);
    if (record.expiresAt - Date.now() > this.maxTtlMs) {
      throw new BackboneInputError(
        'invalid_record',
        `record expiresAt ${record.expiresAt} is more than ${this.maxTtlMs} ms ahead: the topic ${this.recordsSpec.name} ` +
          `(${this.retentionText}) could delete the record before it expires`,
      );
    }
    this.requireUp();
    await this.write(this.recordsSpec.name, `${kind}/${record.key}`, encodeRecord(record));
    this.counters.recordsPut++;
  }

  /** `Backbone.records`: reads what is new in the records topic, then answers from memory. */
  async list(kind: string): Promise<ControlRecord[]> {
    checkRecordKind(kind);
    this.requireUp();
    const read = this.reading.then(() => this.catchUp());
    this.reading = read.catch(() => {});
    await read;
    const now = Date.now();
    const byKey = this.view.get(kind);
    const out: ControlRecord[] = [];
    for (const [key, r] of byKey ?? []) {
      if (r.expiresAt > now) out.push(r);
      else byKey?.delete(key);
    }
    if (byKey?.size === 0) this.view.delete(kind);
    return out;
  }

  private requireUp(): void {
    const state = this.deps.state();
    if (state !== 'up') throw new BackboneUnavailableError(`kafka backbone is ${state}`);
  }

  private async write(topic: string, key: string | null, value: string): Promise<void> {
    try {
      await this.deps.producer.send({
        messages: [
          { topic, partition: PARTITION, ...(key === null ? {} : { key: Buffer.from(key, 'utf8') }), value: Buffer.from(value, 'utf8') },
        ],
      });
    } catch (err) {
      this.counters.controlErrors++;
      throw new BackboneUnavailableError(`kafka write to ${topic} failed: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    }
  }

  /**
   * The retention in force decides how far ahead a record may expire: whoever created the topic,
   * and whatever an operator set on it since start.
   */
  private async readRetention(): Promise<void> {
    const [desc] = await this.deps.admin.describeConfigs({
      resources: [
        {
          resourceType: ConfigResourceTypes.TOPIC,
          resourceName: this.recordsSpec.name,
          configurationKeys: ['cleanup.policy', 'retention.ms'],
        },
      ],
    });
    const value = (name: string) => desc?.configs.find((c) => c.name === name)?.value ?? undefined;
    const policy = value('cleanup.policy') ?? 'delete';
    const retention = Number(value('retention.ms') ?? '-1');
    if (!policy.split(',').includes('delete') || !(retention >= 0)) {
      this.maxTtlMs = Number.POSITIVE_INFINITY;
      this.retentionText = `cleanup.policy=${policy}, nothing deleted by age`;
      return;
    }
    this.maxTtlMs = retention - Math.min(MAX_SKEW_MS, retention / 10);
    this.retentionText = `cleanup.policy=${policy}, retention.ms=${retention}`;
  }

  // ---------------------------------------------------------------- control messages

  private async readLoop(signal: AbortSignal): Promise<void> {
    const o = this.deps.options;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const res = await this.fetchControl();
        if (signal.aborted) return;
        if (failures > 0) this.counters.controlReconnects++;
        failures = 0;
        this.consume(res);
      } catch {
        if (signal.aborted) return;
        this.counters.controlErrors++;
        // Back off and find the topic again (its leader may have moved, or it was recreated).
        for (;;) {
          await this.deps.pause(backoffDelay(++failures, o.reconnectMinMs, o.reconnectMaxMs));
          if (signal.aborted) return;
          try {
            await this.replan();
            break;
          } catch {
            // Still unreachable: the backbone's own reader reports the state; keep trying.
          }
        }
      }
    }
  }

  private fetchControl(): Promise<FetchResult> {
    const o = this.deps.options;
    const topic = this.controlTopic as TopicInfo;
    const maxBytes = Math.min(1024 * 1024, o.fetchMaxBytes);
    return this.deps.live.fetch({
      node: topic.leaders[PARTITION] as number,
      maxWaitTime: o.fetchMaxWaitMs,
      minBytes: 1,
      maxBytes,
      isolationLevel: READ_COMMITTED,
      topics: [
        {
          topicId: topic.id,
          partitions: [
            { partition: PARTITION, fetchOffset: this.position, currentLeaderEpoch: -1, lastFetchedEpoch: -1, partitionMaxBytes: maxBytes },
          ],
        },
      ],
    });
  }

  /** Continues on the same topic where it stopped (within what is left); on a new topic, at its end. */
  private async replan(): Promise<void> {
    const info = await describeTopic(this.deps.admin, this.controlSpec);
    const { start, end } = await partitionBounds(this.deps.live, this.controlSpec.name, PARTITION);
    let position = info.id === this.controlTopic?.id ? this.position : end;
    if (position < start) {
      this.counters.controlSkipped += Number(start - position);
      position = start;
    }
    if (position > end) position = end;
    this.controlTopic = info;
    this.position = position;
  }

  private consume(res: FetchResult): void {
    const topic = this.controlTopic as TopicInfo;
    const part = fetchedPartition(res, topic.id, PARTITION);
    if (!part) return;
    const { records, next } = partitionRecords(part, this.position);
    for (const rec of records) {
      if (rec.offset < this.position) continue;
      const msg = rec.value ? decodeControl(rec.value) : 'no value';
      if (typeof msg === 'string') this.counters.controlMalformed++;
      else {
        this.counters.controlDelivered++;
        this.deps.deliver(msg);
      }
    }
    if (next > this.position) this.position = next;
  }

  // ---------------------------------------------------------------- records

  /** Reads the records topic from where this node stopped to its current end. */
  private async catchUp(): Promise<void> {
    const { admin, reader, options } = this.deps;
    let topic = this.recordsTopic as TopicInfo;
    let bounds;
    try {
      bounds = await partitionBounds(reader, this.recordsSpec.name, PARTITION);
    } catch {
      // The leader moved or the topic was recreated: describe it again, once.
      topic = this.recordsTopic = await describeTopic(admin, this.recordsSpec);
      bounds = await partitionBounds(reader, this.recordsSpec.name, PARTITION);
    }
    if (this.viewTopic !== topic.id) {
      // A new topic is a new set of records.
      this.view.clear();
      this.viewTopic = topic.id;
      this.viewAt = 0n;
    }
    // Below the log start lie only segments retention deleted, whose records had all expired.
    if (this.viewAt < bounds.start) this.viewAt = bounds.start;
    const deadline = Date.now() + options.historyTimeoutMs;
    const maxBytes = Math.min(1024 * 1024, options.fetchMaxBytes);
    while (this.viewAt < bounds.end) {
      if (Date.now() > deadline)
        throw new BackboneUnavailableError(
          `reading ${this.recordsSpec.name} took longer than historyTimeoutMs (${options.historyTimeoutMs} ms)`,
        );
      const { records, next } = await readChunk(reader, topic, PARTITION, this.viewAt, maxBytes);
      if (next <= this.viewAt)
        throw new BackboneUnavailableError(`reading ${this.recordsSpec.name} made no progress at offset ${this.viewAt}`);
      const now = Date.now();
      for (const rec of records) if (rec.offset >= this.viewAt) this.apply(rec, now);
      this.viewAt = next;
    }
  }

  /** One stored record: the newest write of a key replaces the one before. */
  private apply(rec: LogRecord, now: number): void {
    const full = rec.key?.toString('utf8') ?? '';
    const slash = full.indexOf('/');
    const kind = full.slice(0, slash);
    const key = full.slice(slash + 1);
    if (slash < 1) {
      this.counters.recordsMalformed++;
      return;
    }
    const decoded = rec.value === null ? null : decodeRecord(kind, rec.value);
    if (typeof decoded === 'string' || (decoded !== null && decoded.key !== key)) {
      this.counters.recordsMalformed++;
      return;
    }
    const byKey = this.view.get(kind);
    // A tombstone (an operator's delete) or an expired record: the key has no record now.
    if (decoded === null || decoded.expiresAt <= now) {
      byKey?.delete(key);
      if (byKey?.size === 0) this.view.delete(kind);
      return;
    }
    if (byKey) byKey.set(key, decoded);
    else this.view.set(kind, new Map([[key, decoded]]));
  }
}
