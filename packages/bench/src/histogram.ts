/**
 * A log-bucketed latency histogram: fixed memory (about 1,100 counters), 2% relative precision
 * from 1 microsecond to 10 minutes, mergeable across worker processes by adding counts. Workers
 * record into one, ship the non-empty buckets over IPC, and the coordinator merges them.
 */

/** Each bucket is 2% wider than the one before. */
const GROWTH = 1.02;
const LN_GROWTH = Math.log(GROWTH);
/** Bucket 0 holds everything below 1 microsecond; the last bucket holds everything above ~10 min. */
const BUCKETS = 1 + Math.ceil(Math.log(600e6) / LN_GROWTH);

/** Non-empty buckets as `[index, count]` pairs: the form a histogram travels in. */
export type SparseCounts = [number, number][];

/** Latency percentiles in milliseconds; null when nothing was recorded. */
export interface LatencySummary {
  p50: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
}

/** A mergeable latency histogram (values in milliseconds). */
export class Histogram {
  private counts = new Float64Array(BUCKETS);
  /** Values recorded. */
  count = 0;
  /** Largest value recorded, exactly. */
  max = 0;
  /** Sum of values, for the mean. */
  sum = 0;
  /** Values below zero (clamped to zero): a clock problem worth reporting, never hidden. */
  negative = 0;

  /** Records one value in milliseconds. */
  record(ms: number): void {
    if (!(ms >= 0)) {
      this.negative++;
      ms = 0;
    }
    const us = ms * 1000;
    const i = us < 1 ? 0 : Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(us) / LN_GROWTH));
    this.counts[i] = (this.counts[i] as number) + 1;
    this.count++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  /** Adds another histogram's counts (or their sparse form) into this one. */
  merge(other: Histogram | HistogramSnapshot): void {
    const sparse = other instanceof Histogram ? other.sparse() : other.buckets;
    for (const [i, c] of sparse) this.counts[i] = (this.counts[i] ?? 0) + c;
    this.count += other.count;
    this.sum += other.sum;
    this.negative += other.negative;
    if (other.max > this.max) this.max = other.max;
  }

  /** Forgets everything. */
  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.max = 0;
    this.sum = 0;
    this.negative = 0;
  }

  /** The non-empty buckets. */
  sparse(): SparseCounts {
    const out: SparseCounts = [];
    for (let i = 0; i < BUCKETS; i++) {
      const c = this.counts[i] as number;
      if (c > 0) out.push([i, c]);
    }
    return out;
  }

  /** A plain-data copy that survives IPC and JSON. */
  snapshot(): HistogramSnapshot {
    return { count: this.count, max: this.max, sum: this.sum, negative: this.negative, buckets: this.sparse() };
  }

  /** Rebuilds a histogram from a snapshot. */
  static from(s: HistogramSnapshot): Histogram {
    const h = new Histogram();
    h.merge(s);
    return h;
  }

  /**
   * The value at quantile `q` (0..1) in ms: the geometric middle of the bucket holding it, capped
   * by the exact maximum. Null when empty.
   */
  quantile(q: number): number | null {
    if (this.count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i] as number;
      if (seen >= rank) return Math.min(this.max, bucketMiddleMs(i));
    }
    return this.max;
  }

  /** p50, p99, p99.9 and max, in ms, rounded to microseconds. */
  summary(): LatencySummary {
    const r = (v: number | null) => (v === null ? null : Math.round(v * 1000) / 1000);
    return {
      p50: r(this.quantile(0.5)),
      p99: r(this.quantile(0.99)),
      p999: r(this.quantile(0.999)),
      max: this.count === 0 ? null : r(this.max),
    };
  }
}

/** A histogram as plain data. */
export interface HistogramSnapshot {
  count: number;
  max: number;
  sum: number;
  negative: number;
  buckets: SparseCounts;
}

/** Lower bound of bucket `i`, in ms. */
export function bucketLowMs(i: number): number {
  return i === 0 ? 0 : Math.pow(GROWTH, i - 1) / 1000;
}

/** Upper bound of bucket `i`, in ms. */
export function bucketHighMs(i: number): number {
  return Math.pow(GROWTH, i) / 1000;
}

function bucketMiddleMs(i: number): number {
  return i === 0 ? 0.0005 : Math.sqrt(bucketLowMs(i) * bucketHighMs(i));
}
