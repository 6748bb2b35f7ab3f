/**
 * The JetStream backbone: durable and replayable. One stream (default `GATEHOUSE`) captures
 * `<prefix>.>`; a publication's offset is its stream sequence (strictly rising within a channel,
 * not contiguous), and the epoch is the stream's creation time, so a recreated stream is a new
 * epoch. Each subscribed channel is read by one ordered consumer filtered to its subject. The
 * adapter, not the client library, owns resumption: after every reconnect, and whenever a
 * consumer stalls or ends, it replaces the channel's consumer with a new one starting right after
 * the last sequence it delivered: no gap, no duplicate, in stream order.
 *
 * Retention belongs to the stream (max age, max messages per subject, max bytes), not to a
 * channel. The per-publish `historySize`/`historyTtlSeconds` travel in message headers and are
 * applied when history is read, so a namespace can keep less than the stream does, never more.
 *
 * Control messages travel on the fleet's NATS core control subject (control.ts), outside the
 * stream: they are live only, and nothing stores them. Fleet records are durable, in a KV bucket
 * of the stream's own (records.ts).
 */
import { headers as natsHeaders } from '@nats-io/transport-node';
import {
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type StoredMsg,
  type StreamInfo,
} from '@nats-io/jetstream';
import {
  BackboneUnavailableError,
  checkChannel,
  checkPublishData,
  checkPublishOptions,
  decodeEnvelope,
  encodeEnvelope,
  nowMs,
  retryUntilDeadline,
  type Backbone,
  type BackboneCapabilities,
  type BackboneHandler,
  type BackboneState,
  type ControlMessage,
  type ControlRecord,
  type HistoryResult,
  type Publication,
  type PublishOptions,
} from '@gatehouse/backbone-kit';
import { NatsLink, within, type NatsBackboneStats } from './connection.js';
import { NatsControl } from './control.js';
import { JetStreamRecords } from './records.js';
import { resolveJetStreamOptions, type JetStreamBackboneOptions, type ResolvedJetStreamOptions } from './options.js';
import { channelToSubject } from './subject.js';

const CAPABILITIES: BackboneCapabilities = {
  sequenced: true,
  history: true,
  contiguousOffsets: false,
  durable: true,
  shared: true,
  durableRecords: true,
};

/** Header carrying the namespace's history size with each publication. */
export const HISTORY_SIZE_HEADER = 'Gatehouse-History-Size';
/** Header carrying the namespace's history TTL (seconds) with each publication. */
export const HISTORY_TTL_HEADER = 'Gatehouse-History-Ttl';

/** The epoch of a stream: the digits of its creation timestamp (nanosecond resolution). */
export function streamEpoch(info: StreamInfo): string {
  const digits = String(info.created).replace(/\D/g, '');
  if (digits.length === 0) throw new Error(`stream ${info.config.name} reports no creation time`);
  return digits.slice(0, 64);
}

interface ChannelReader {
  /** The ordered consumer's message stream; undefined while it is being created. */
  messages: ConsumerMessages | undefined;
  /** Sequence of the last publication delivered, to drop anything out of order. */
  last: number;
}

/**
 * Consumer notifications after which the library's own recovery of an ordered consumer cannot be
 * trusted. In @nats-io/jetstream 3.4 a consumer lost with the server (ordered consumers are
 * in-memory) is recreated by the library with its stale pending-pull count, so its first pull
 * asks for 0 messages and the reader stalls (or the request is refused and the reader ends).
 */
const REPLACE_ON = new Set(['heartbeats_missed', 'consumer_not_found', 'consumer_deleted', 'stream_not_found', 'reset']);

/** Server heartbeats are expected every half of this; two missed ones mean the reader stalled. */
const PULL_EXPIRES_MS = 10_000;

/** A history read waiting for the channel's live reader to deliver through `seq` (epoch `epoch`). */
interface BarrierWait {
  readonly seq: number;
  readonly epoch: string;
  readonly done: (err?: Error) => void;
}

/** A Backbone on one JetStream stream. */
export class JetStreamBackbone implements Backbone {
  readonly kind = 'jetstream';
  readonly capabilities = CAPABILITIES;
  /** The options in effect, defaults filled in. */
  readonly options: ResolvedJetStreamOptions;
  private readonly link: NatsLink;
  private readonly control: NatsControl;
  private readonly fleetRecords: JetStreamRecords;
  private handler: BackboneHandler | undefined;
  private js: JetStreamClient | undefined;
  private jsm: JetStreamManager | undefined;
  private epoch = '';
  /** The epoch the current readers were started in. */
  private readersEpoch = '';
  private recovering = false;
  private readonly readers = new Map<string, ChannelReader>();
  /** History reads waiting for a channel's live reader (the history barrier, see `history`). */
  private readonly barrier = new Map<string, BarrierWait[]>();
  private readonly pending = new Map<string, Promise<void>>();

  constructor(options: JetStreamBackboneOptions) {
    this.options = resolveJetStreamOptions(options);
    this.link = new NatsLink(this.options, 'jetstream', () => this.recover());
    this.control = new NatsControl(this.link, this.options.subjectPrefix, this.options.timeoutMs, this.options.onMalformed);
    this.fleetRecords = new JetStreamRecords(this.link, this.options);
  }

  get state(): BackboneState {
    return this.link.state;
  }

  /** Counters since construction (a copy). */
  stats(): NatsBackboneStats {
    return { ...this.link.stats };
  }

  /** The subject `channel` maps to. */
  subjectOf(channel: string): string {
    return channelToSubject(this.options.subjectPrefix, channel);
  }

  /** The current epoch (the stream's identity); '' before start. */
  get currentEpoch(): string {
    return this.epoch;
  }

  async start(handler: BackboneHandler): Promise<void> {
    this.handler = handler;
    const deadline = Date.now() + this.options.startTimeoutMs;
    const nc = await this.link.open(handler);
    // A server that just started accepts connections a little before JetStream answers.
    try {
      await retryUntilDeadline(
        deadline,
        async () => {
          this.jsm = await jetstreamManager(nc, { timeout: this.options.timeoutMs });
          this.js = jetstream(nc, { timeout: this.options.timeoutMs });
          this.epoch = streamEpoch(await this.ensureStream());
          this.readersEpoch = this.epoch;
          await this.fleetRecords.open(this.js);
        },
        { giveUp: (err) => this.link.state === 'closed' || !isTransient(err) },
      );
      await this.control.listen(nc);
    } catch (err) {
      await this.link.close();
      throw err instanceof BackboneUnavailableError
        ? err
        : new BackboneUnavailableError(`jetstream: ${(err as Error).message}`, { cause: err });
    }
    this.link.ready();
  }

  async publish(channel: string, data: string, options: PublishOptions): Promise<Publication> {
    try {
      this.link.assertUp();
      checkChannel(channel);
      checkPublishData(data);
      checkPublishOptions(options);
      const { historySize, historyTtlSeconds } = options;
      const ts = nowMs();
      const h = natsHeaders();
      h.set(HISTORY_SIZE_HEADER, String(historySize));
      h.set(HISTORY_TTL_HEADER, String(historyTtlSeconds));
      const epoch = this.epoch;
      let ack;
      try {
        ack = await (this.js as JetStreamClient).publish(this.subjectOf(channel), encodeEnvelope({ channel, ts, data }), {
          headers: h,
          timeout: this.options.timeoutMs,
        });
      } catch (err) {
        throw new BackboneUnavailableError(`jetstream publish: ${(err as Error).message}`, { cause: err });
      }
      if (ack.stream !== this.options.stream)
        throw new Error(`subject of ${channel} is stored by stream ${ack.stream}, not ${this.options.stream}`);
      return { channel, epoch, offset: ack.seq, ts, data };
    } catch (err) {
      this.link.stats.publishErrors++;
      throw err;
    }
  }

  async subscribe(channel: string): Promise<void> {
    this.link.assertUp();
    checkChannel(channel);
    if (this.readers.has(channel)) {
      await this.pending.get(channel);
      return;
    }
    const p = this.openReader(channel);
    this.pending.set(channel, p);
    try {
      await p;
    } finally {
      if (this.pending.get(channel) === p) this.pending.delete(channel);
    }
  }

  private async openReader(channel: string): Promise<void> {
    // The reader is registered before its consumer exists, so a concurrent subscribe waits for
    // this one and messages are accepted from the first one on.
    const reader: ChannelReader = { messages: undefined, last: 0 };
    this.readers.set(channel, reader);
    try {
      // Everything stored after this point reaches the reader, even if it is created a little later.
      const info = await this.streamInfo();
      await this.startReader(channel, reader, info.state.last_seq + 1);
      // Unsubscribed (or closed) while the consumer was being made.
      if (this.readers.get(channel) !== reader) reader.messages?.stop();
    } catch (err) {
      if (this.readers.get(channel) === reader) this.readers.delete(channel);
      throw err instanceof BackboneUnavailableError || err instanceof TypeError
        ? err
        : new BackboneUnavailableError(`jetstream subscribe ${channel}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** An ephemeral ordered consumer of `channel`'s subject from stream sequence `startSeq` on. */
  private orderedConsumer(channel: string, startSeq: number): Promise<Consumer> {
    const js = this.js as JetStreamClient;
    return within(
      js.consumers.get(this.options.stream, {
        filter_subjects: this.subjectOf(channel),
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: startSeq,
      }),
      this.options.timeoutMs,
      `jetstream consumer for ${channel}`,
    );
  }

  /** Starts `reader`'s ordered consumer on `channel` at stream sequence `startSeq`. */
  private async startReader(channel: string, reader: ChannelReader, startSeq: number): Promise<void> {
    const consumer = await this.orderedConsumer(channel, startSeq);
    reader.last = startSeq - 1;
    const messages = await consumer.consume({
      max_messages: 256,
      expires: PULL_EXPIRES_MS,
      callback: (m: JsMsg) => this.onMessage(channel, reader, m),
    });
    reader.messages = messages;
    void this.watchReader(channel, reader, messages);
  }

  /**
   * Replaces `reader` when its consumer stalls (missed heartbeats), is lost, or ends without us
   * stopping it. While the link is down this waits for 'up' (see replaceStalled).
   */
  private async watchReader(channel: string, reader: ChannelReader, messages: ConsumerMessages): Promise<void> {
    let why = 'ended';
    void messages.closed().then(
      (err) => this.replaceStalled(channel, reader, err ? `ended: ${err.message}` : 'ended'),
      (err: Error) => this.replaceStalled(channel, reader, `ended: ${err.message}`),
    );
    try {
      for await (const s of messages.status()) {
        if (REPLACE_ON.has(s.type)) {
          why = s.type;
          break;
        }
      }
    } catch {
      // The status stream failing is handled like the consumer ending.
    }
    this.replaceStalled(channel, reader, why);
  }

  private replaceStalled(channel: string, reader: ChannelReader, why: string): void {
    if (this.readers.get(channel) !== reader) return;
    if (this.link.state !== 'up') {
      // Recovery replaces every reader it finds, but one it has already made can end before the
      // link reports 'up' (JetStream still starting after a server restart): look again then,
      // or that channel would stay unread on this node, a silent loss of all that follows.
      void this.link.whenUp().then(() => this.replaceStalled(channel, reader, why));
      return;
    }
    this.replaceReader(channel, reader, reader.last).catch((err: Error) => {
      // Cannot make a consumer while connected: treat it as an outage; recovery retries them all.
      this.link.retryRecover(new Error(`jetstream reader of ${channel} ${why}, and could not be replaced: ${err.message}`));
    });
  }

  /**
   * Puts a new reader in `old`'s slot, resuming right after sequence `last`. The old consumer is
   * stopped first, and the old reader object no longer matches the slot, so nothing it still
   * delivers gets through. On failure the slot keeps the new reader (no consumer, same `last`).
   */
  private async replaceReader(channel: string, old: ChannelReader, last: number): Promise<void> {
    const next: ChannelReader = { messages: undefined, last };
    this.readers.set(channel, next);
    old.messages?.stop();
    await this.startReader(channel, next, last + 1);
    // Unsubscribed (or replaced again) while the consumer was being made.
    if (this.readers.get(channel) !== next) next.messages?.stop();
  }

  private onMessage(channel: string, reader: ChannelReader, m: JsMsg): void {
    if (this.readers.get(channel) !== reader || m.seq <= reader.last) return;
    reader.last = m.seq;
    const env = decodeEnvelope(m.data, channel);
    if (typeof env === 'string') {
      this.link.stats.malformed++;
      this.options.onMalformed?.(env, m.subject);
    } else {
      this.link.deliver(this.handler, { channel, epoch: this.epoch, offset: m.seq, ts: env.ts, data: env.data });
    }
    if (this.barrier.has(channel)) this.releaseBarrier(channel, (w) => w.epoch !== this.epoch || w.seq <= m.seq);
  }

  /**
   * Waits until the live reader of `channel` (if this node subscribes it) has delivered through
   * sequence `seq`: the reader and the history read are separate consumers, so a read can answer a
   * position whose message the reader has not handed over yet. Rejects after the timeout.
   */
  private async liveThrough(channel: string, seq: number): Promise<void> {
    const reader = this.readers.get(channel);
    if (!reader || seq === 0 || reader.last >= seq) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const list = this.barrier.get(channel);
        const i = list?.indexOf(wait) ?? -1;
        if (list && i >= 0) list.splice(i, 1);
        if (list?.length === 0) this.barrier.delete(channel);
        reject(new BackboneUnavailableError(`jetstream history ${channel}: the live reader did not reach ${seq} in time`));
      }, this.options.timeoutMs);
      const wait: BarrierWait = {
        seq,
        epoch: this.epoch,
        done: (err) => {
          clearTimeout(timer);
          if (err) reject(err);
          else resolve();
        },
      };
      const list = this.barrier.get(channel);
      if (list) list.push(wait);
      else this.barrier.set(channel, [wait]);
    });
  }

  /** Ends the waits on `channel` that `match` picks (all when it is absent), with `err` if given. */
  private releaseBarrier(channel: string, match?: (w: BarrierWait) => boolean, err?: Error): void {
    const list = this.barrier.get(channel);
    if (!list) return;
    const keep = match ? list.filter((w) => !match(w)) : [];
    for (const w of list) if (!match || match(w)) w.done(err);
    if (keep.length > 0) this.barrier.set(channel, keep);
    else this.barrier.delete(channel);
  }

  async unsubscribe(channel: string): Promise<void> {
    const reader = this.readers.get(channel);
    if (!reader) return;
    this.readers.delete(channel);
    // No longer subscribed: nothing more will be delivered for a waiting read to wait for.
    this.releaseBarrier(channel);
    // The ordered consumer is ephemeral: stopping it lets the server drop it.
    reader.messages?.stop();
  }

  async history(channel: string, after: { epoch: string; offset: number } | undefined, limit: number): Promise<HistoryResult> {
    this.link.assertUp();
    checkChannel(channel);
    if (!Number.isSafeInteger(limit) || limit < 0) throw new TypeError('limit must be an integer >= 0');
    if (after && (typeof after.epoch !== 'string' || !Number.isSafeInteger(after.offset) || after.offset < 0)) {
      throw new TypeError('after must be {epoch: string, offset: integer >= 0}');
    }
    try {
      const result = await this.readHistory(channel, after, limit);
      // History is a barrier (the contract): resolve only once the live reader has delivered
      // through the position answered, so nothing at or below it follows.
      if (result.epoch === this.epoch) await this.liveThrough(channel, result.offset);
      return result;
    } catch (err) {
      if (err instanceof BackboneUnavailableError) throw err;
      throw new BackboneUnavailableError(`jetstream history ${channel}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async readHistory(channel: string, after: { epoch: string; offset: number } | undefined, limit: number): Promise<HistoryResult> {
    const jsm = this.jsm as JetStreamManager;
    const subject = this.subjectOf(channel);
    const stream = this.options.stream;
    const last = await within(jsm.streams.getMessage(stream, { last_by_subj: subject }), this.options.timeoutMs, 'jetstream last message');
    const epoch = this.epoch;
    const offset = last?.seq ?? 0;
    const none = { epoch, offset, publications: [] as Publication[] };
    if (!after) return { ...none, complete: true };
    if (after.epoch !== epoch || after.offset > offset) return { ...none, complete: false };
    if (after.offset === offset) return { ...none, complete: true };
    const size = headerInt(last, HISTORY_SIZE_HEADER);
    const ttl = headerInt(last, HISTORY_TTL_HEADER);
    if (size === 0) return { ...none, complete: false };

    // Limits remove the oldest messages first, so if the last one the client saw is still
    // stored, everything after it is too. From offset 0 there is no such anchor: complete only
    // while the stream never dropped anything.
    let perSubjectCap = 0;
    if (after.offset > 0) {
      const anchor = await within(jsm.streams.getMessage(stream, { seq: after.offset }), this.options.timeoutMs, 'jetstream anchor');
      if (!anchor || anchor.subject !== subject) return { ...none, complete: false };
    } else {
      const info = await this.streamInfo();
      if (info.state.first_seq > 1) return { ...none, complete: false };
      perSubjectCap = info.config.max_msgs_per_subject > 0 ? info.config.max_msgs_per_subject : 0;
    }
    const publications = await this.readRange(channel, after.offset + 1, offset, limit);
    if (!publications) return { ...none, complete: false };
    // At the per-subject cap, older messages of this channel may already have been dropped.
    if (perSubjectCap > 0 && publications.length >= perSubjectCap) return { ...none, complete: false };
    if (size !== undefined && publications.length > size) return { ...none, complete: false };
    const first = publications[0];
    if (first && ttl !== undefined && ttl > 0 && first.ts < Date.now() - ttl * 1000) return { ...none, complete: false };
    return { epoch, offset, publications, complete: true };
  }

  /**
   * The channel's publications from sequence `from` through `to`, read by a short-lived ordered
   * consumer. Undefined when more than `limit` lie in the range or the range could not be read
   * to its end (removed meanwhile): the caller reports a gap.
   */
  private async readRange(channel: string, from: number, to: number, limit: number): Promise<Publication[] | undefined> {
    const consumer = await this.orderedConsumer(channel, from);
    const out: Publication[] = [];
    let reached = false;
    try {
      const iter = await consumer.fetch({ max_messages: Math.min(limit + 1, 10_000), expires: this.options.timeoutMs });
      for await (const m of iter) {
        if (m.seq > to) {
          reached = true;
          break;
        }
        const env = decodeEnvelope(m.data, channel);
        if (typeof env === 'string') this.link.stats.malformed++;
        else out.push({ channel, epoch: this.epoch, offset: m.seq, ts: env.ts, data: env.data });
        if (out.length > limit) return undefined;
        if (m.seq === to) {
          reached = true;
          break;
        }
      }
    } finally {
      consumer.delete().catch(() => {});
    }
    return reached ? out : undefined;
  }

  async sendControl(msg: ControlMessage): Promise<void> {
    await this.control.send(msg);
  }

  async putRecord(kind: string, record: ControlRecord): Promise<void> {
    await this.fleetRecords.put(kind, record);
  }

  async records(kind: string): Promise<ControlRecord[]> {
    return this.fleetRecords.list(kind);
  }

  async close(): Promise<void> {
    for (const r of this.readers.values()) r.messages?.stop();
    this.readers.clear();
    for (const channel of [...this.barrier.keys()])
      this.releaseBarrier(channel, undefined, new BackboneUnavailableError('backbone closed'));
    await this.link.close();
  }

  // ---- internals ----

  /**
   * Reads the stream's state and adopts its epoch. A changed epoch means the stream was recreated
   * (history lost): outside recovery that is reported as an outage, and recovery restarts the
   * readers on the new stream.
   */
  private async streamInfo(): Promise<StreamInfo> {
    const info = await within(
      (this.jsm as JetStreamManager).streams.info(this.options.stream),
      this.options.timeoutMs,
      'jetstream stream info',
    );
    const epoch = streamEpoch(info);
    if (epoch !== this.epoch) {
      this.epoch = epoch;
      if (!this.recovering && this.readersEpoch !== epoch) {
        this.link.retryRecover(new Error(`stream ${this.options.stream} was recreated: new epoch ${epoch}`));
      }
    }
    return info;
  }

  /** Creates the stream if it is missing; checks it captures our subjects. */
  private async ensureStream(): Promise<StreamInfo> {
    const jsm = this.jsm as JetStreamManager;
    const o = this.options;
    const want = `${o.subjectPrefix}.>`;
    let info: StreamInfo | undefined;
    try {
      info = await jsm.streams.info(o.stream);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!info) {
      try {
        info = await jsm.streams.add({
          name: o.stream,
          subjects: [want],
          retention: RetentionPolicy.Limits,
          storage: o.storage === 'memory' ? StorageType.Memory : StorageType.File,
          num_replicas: o.replicas,
          discard: DiscardPolicy.Old,
          max_age: o.maxAgeSeconds * 1_000_000_000,
          max_msgs_per_subject: o.maxMsgsPerSubject > 0 ? o.maxMsgsPerSubject : -1,
          max_bytes: o.maxBytes > 0 ? o.maxBytes : -1,
        });
      } catch (err) {
        // Another gateway created it at the same moment.
        info = await jsm.streams.info(o.stream).catch(() => {
          throw err;
        });
      }
    }
    if (!info.config.subjects?.includes(want)) {
      throw new Error(`stream ${o.stream} exists but does not capture "${want}" (it captures ${JSON.stringify(info.config.subjects)})`);
    }
    return info;
  }

  /**
   * After a reconnect (or a reader that could not be replaced): re-read the stream (epoch), then
   * give every channel a new consumer starting right after the last sequence it delivered, before
   * reporting `up`. The old consumers are not trusted to resume by themselves: after a server
   * restart they are gone, and the client library's recreation of them stalls (see REPLACE_ON),
   * which silently lost everything published while this node was away.
   */
  private async recover(): Promise<void> {
    this.recovering = true;
    try {
      await this.streamInfo();
    } finally {
      this.recovering = false;
    }
    // Creates the bucket again if the server lost it (memory storage); one request otherwise.
    await this.fleetRecords.open(this.js as JetStreamClient);
    // A subscribe in flight when the link dropped settles (or fails) first; its slot is then
    // replaced like the others.
    await Promise.allSettled([...this.pending.values()]);
    if (this.epoch !== this.readersEpoch) {
      // The stream is new: the readers' sequences mean nothing there. Read each channel from the
      // start of the new stream (all of it was published after the old one vanished).
      for (const [channel, r] of [...this.readers]) {
        r.messages?.stop();
        this.readers.set(channel, { messages: undefined, last: 0 });
        // Nothing of the old stream will be delivered any more: reads waiting on it are done.
        this.releaseBarrier(channel);
      }
      // The slots now hold positions in the new stream, so a failed attempt below resumes from them.
      this.readersEpoch = this.epoch;
    }
    // Every channel keeps its slot (and `last`) while this runs, so a failed attempt is retried
    // in full by the link, each channel again from its own last delivered sequence.
    for (const [channel, old] of [...this.readers]) {
      if (this.readers.get(channel) === old) await this.replaceReader(channel, old, old.last);
    }
  }
}

/**
 * Worth another start attempt: no answer in time, or JetStream not (yet) answering. A stream that
 * exists with other subjects, or a refused configuration, is not.
 */
function isTransient(err: unknown): boolean {
  if (err instanceof BackboneUnavailableError) return true;
  const e = err as { name?: string; code?: string | number; message?: string };
  return (
    e?.name === 'TimeoutError' ||
    e?.name === 'NoRespondersError' ||
    e?.code === '503' ||
    e?.code === 503 ||
    /timeout|no responders|jetstream not enabled/i.test(e?.message ?? '')
  );
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; code?: number; api_error?: { err_code?: number } };
  return e?.name === 'StreamNotFoundError' || e?.api_error?.err_code === 10059 || e?.code === 404;
}

function headerInt(msg: StoredMsg | null, name: string): number | undefined {
  const v = msg?.header?.get(name);
  if (!v) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** Creates a JetStreamBackbone on `jetstream://host:port` or `nats://host:port` (not started). */
export function createJetStreamBackbone(
  url: string | readonly string[],
  options: Omit<JetStreamBackboneOptions, 'servers'> = {},
): JetStreamBackbone {
  return new JetStreamBackbone({ ...options, servers: typeof url === 'string' ? [url] : url });
}
