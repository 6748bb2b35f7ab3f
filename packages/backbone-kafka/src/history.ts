/**
 * Channel history out of a shared partition. A channel has no log of its own in Kafka: it is the
 * records with its key inside one partition that many channels share. So a read walks the
 * partition and keeps that key, and every walk runs on a budget (records examined, time): when the
 * budget runs out the answer is "incomplete" (a reported gap), never a guess.
 *
 * Offsets here are Gatehouse offsets: Kafka offset + 1, so 0 means "nothing yet". A position `g`
 * means "everything up to Kafka offset g - 1 is known".
 */
import type { DecodedEnvelope, HistoryResult, Publication } from '@gatehouse/backbone-kit';
import { decodePublication } from './wire.js';

/** One data record as read from a partition. */
export interface LogRecord {
  /** Kafka offset. */
  readonly offset: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** Record timestamp, ms. */
  readonly timestamp: number;
}

/** What the history reader needs from Kafka for one partition (a fake in unit tests). */
export interface PartitionLog {
  /** `start`: log start offset (older records are gone); `end`: the next offset to be written. */
  bounds(partition: number): Promise<{ start: bigint; end: bigint }>;
  /**
   * Records from `from` on, oldest first (a bounded chunk; may begin before `from`), and the offset
   * right after the last batch returned, control batches included, so a walk always advances.
   */
  read(partition: number, from: bigint): Promise<{ records: readonly LogRecord[]; next: bigint }>;
}

/** Where a channel lives and how its history may be read. */
export interface ChannelLocation {
  readonly channel: string;
  readonly partition: number;
  readonly epoch: string;
}

/** Budget and caching knobs (from the backbone options). */
export interface HistoryLimits {
  readonly scanRecords: number;
  readonly timeoutMs: number;
  readonly cacheSize: number;
}

interface Budget {
  records: number;
  readonly deadline: number;
}

type WalkEnd = 'end' | 'stopped' | 'exhausted';

/** Records examined per step when looking backwards for a channel's newest publication. */
const BACKWARD_STEP = 2_000n;

/** Answers `history` for one topic: exact recovery when it can prove it, `complete: false` otherwise. */
export class HistoryReader {
  /** Newest known position per channel, and how far the partition was examined for it. */
  private readonly positions = new Map<string, { epoch: string; end: bigint; offset: number }>();
  /** One position lookup per channel at a time: a subscribe storm on a hot channel scans once. */
  private readonly inflight = new Map<string, Promise<number>>();
  constructor(
    private readonly log: PartitionLog,
    private readonly limits: HistoryLimits,
    /** Told why each record of a read channel that is not a valid envelope is skipped. */
    private readonly onMalformed: (reason: string, channel: string) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  /** The history answer for `loc` (see `Backbone.history`). */
  async read(loc: ChannelLocation, after: { epoch: string; offset: number } | undefined, limit: number): Promise<HistoryResult> {
    if (!after) return { epoch: loc.epoch, offset: await this.position(loc), publications: [], complete: true };
    const incomplete = async (): Promise<HistoryResult> => ({
      epoch: loc.epoch,
      offset: await this.position(loc),
      publications: [],
      complete: false,
    });
    if (after.epoch !== loc.epoch) return incomplete();
    const { start, end } = await this.log.bounds(loc.partition);
    // The first record the caller has not seen is at Kafka offset `after.offset`.
    const from = BigInt(after.offset);
    if (from > end || from < start) return incomplete();
    if (from === end) return { epoch: loc.epoch, offset: after.offset, publications: [], complete: true };

    const found: { offset: number; env: DecodedEnvelope }[] = [];
    const key = Buffer.from(loc.channel, 'utf8');
    let overLimit = false;
    const walked = await this.walk(loc.partition, from, end, key, this.budget(), (r) => {
      const env = this.decode(loc.channel, r);
      if (!env) return true;
      if (found.length === limit) {
        overLimit = true;
        return false;
      }
      found.push({ offset: Number(r.offset) + 1, env });
      return true;
    });
    const newest = found.at(-1);
    if (walked === 'end' && newest) this.remember(loc, end, newest.offset);
    if (walked !== 'end' || overLimit || !this.retained(found.map((f) => f.env))) return incomplete();
    const publications: Publication[] = found.map(({ offset, env }) => ({
      channel: loc.channel,
      epoch: loc.epoch,
      offset,
      ts: env.ts,
      data: env.data,
    }));
    return { epoch: loc.epoch, offset: newest ? newest.offset : after.offset, publications, complete: true };
  }

  /**
   * True when the publisher's retention (carried by the newest publication, as the memory
   * backbone takes it from the last publish) still covers every missed publication.
   */
  private retained(missed: readonly DecodedEnvelope[]): boolean {
    const newest = missed.at(-1);
    if (!newest) return true;
    if (newest.historySize !== undefined && missed.length > newest.historySize) return false;
    const ttl = newest.historyTtlSeconds;
    if (ttl !== undefined && ttl > 0) {
      const oldest = missed[0] as DecodedEnvelope;
      if (this.now() - oldest.ts > ttl * 1000) return false;
    }
    return true;
  }

  /**
   * The channel's current position: the offset of its newest publication; the log start when it
   * has none left in the log (0 if nothing was ever removed); or, when the budget runs out, the
   * partition's end, which is still a correct place to recover from (nothing of this channel
   * lies between its newest publication and the end that the caller could miss).
   */
  position(loc: ChannelLocation): Promise<number> {
    const running = this.inflight.get(loc.channel);
    if (running) return running;
    const p = this.lookup(loc).finally(() => this.inflight.delete(loc.channel));
    this.inflight.set(loc.channel, p);
    return p;
  }

  private async lookup(loc: ChannelLocation): Promise<number> {
    const { start, end } = await this.log.bounds(loc.partition);
    const key = Buffer.from(loc.channel, 'utf8');
    const budget = this.budget();
    const known = this.positions.get(loc.channel);
    if (known && known.epoch === loc.epoch && known.end <= end && known.end >= start) {
      // Only the records written since the last lookup need a look.
      let newest = -1n;
      const walked = await this.walk(loc.partition, known.end, end, key, budget, (r) => {
        if (this.decode(loc.channel, r)) newest = r.offset;
        return true;
      });
      if (walked === 'end') {
        // A remembered offset below the log start is raised to it: nothing of this channel lies
        // between, and recovering from the log start is provably complete.
        const offset = newest >= 0n ? Number(newest) + 1 : Math.max(known.offset, Number(start));
        this.remember(loc, end, offset);
        return offset;
      }
      return Number(end);
    }
    // Look backwards, one step at a time, for the newest record with the key.
    let stepEnd = end;
    while (stepEnd > start) {
      const stepStart = stepEnd - BACKWARD_STEP > start ? stepEnd - BACKWARD_STEP : start;
      let newest = -1n;
      const walked = await this.walk(loc.partition, stepStart, stepEnd, key, budget, (r) => {
        if (this.decode(loc.channel, r)) newest = r.offset;
        return true;
      });
      // A step cut short proves nothing: a newer record may lie in the part not examined.
      if (walked !== 'end') return Number(end);
      if (newest >= 0n) {
        this.remember(loc, end, Number(newest) + 1);
        return Number(newest) + 1;
      }
      stepEnd = stepStart;
    }
    this.remember(loc, end, Number(start));
    return Number(start);
  }

  /** Forgets every remembered position (the topic was recreated: all epochs changed). */
  reset(): void {
    this.positions.clear();
  }

  private budget(): Budget {
    return { records: this.limits.scanRecords, deadline: this.now() + this.limits.timeoutMs };
  }

  private remember(loc: ChannelLocation, end: bigint, offset: number): void {
    if (this.limits.cacheSize === 0) return;
    // Re-inserting moves the entry to the back: the Map's order is the eviction order (LRU).
    this.positions.delete(loc.channel);
    this.positions.set(loc.channel, { epoch: loc.epoch, end, offset });
    if (this.positions.size > this.limits.cacheSize) {
      const oldest = this.positions.keys().next().value as string;
      this.positions.delete(oldest);
    }
  }

  private decode(channel: string, r: LogRecord): DecodedEnvelope | undefined {
    const env = decodePublication(channel, r.value, r.timestamp);
    if (typeof env !== 'string') return env;
    this.onMalformed(env, channel);
    return undefined;
  }

  /**
   * Calls `visit` for each record with `key` at offsets [from, until), oldest first, until it
   * returns false ('stopped'), the range is done ('end'), or the budget is spent ('exhausted').
   */
  private async walk(
    partition: number,
    from: bigint,
    until: bigint,
    key: Buffer,
    budget: Budget,
    visit: (r: LogRecord) => boolean,
  ): Promise<WalkEnd> {
    let next = from;
    while (next < until) {
      if (budget.records <= 0 || this.now() > budget.deadline) return 'exhausted';
      const chunk = await this.log.read(partition, next);
      for (const r of chunk.records) {
        if (r.offset < next) continue;
        if (r.offset >= until) return 'end';
        budget.records--;
        if (r.key !== null && r.key.equals(key) && !visit(r)) return 'stopped';
      }
      // A chunk that does not advance (records removed under us, an aborted transaction at the
      // end) cannot prove anything: stop rather than spin.
      if (chunk.next <= next) return 'exhausted';
      next = chunk.next;
    }
    return 'end';
  }
}
