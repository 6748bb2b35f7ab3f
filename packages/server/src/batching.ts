/**
 * Adaptive write batching: when the next flush of the outbound queues runs.
 *
 * A flush pass writes once to every connection that has something queued, so its cost is about
 * one system call per connection, whatever the number of publications it carries. Publications
 * that arrive while a pass runs already share the next one (the queues are flushed once per
 * tick). What this adds is for a saturated node, one whose process has been using a whole core
 * (measured between the ends of passes of a millisecond or more): there the next pass starts no sooner than one pass's duration after
 * the previous one ended, and never later than `maxDelayMs` after the frame that asked for it was
 * queued, so the node keeps time for everything else and what arrives meanwhile shares its writes.
 * A node with time to spare flushes on the next tick: there a held flush only adds latency (the
 * bench measured it: p99 1.2 to 1.6 x the unheld flush at 5,000 and 15,000 subscribers x 10/s).
 * CPU time, not wall time, decides: a pass that takes long because other processes hold the cores
 * is not a node that cannot keep up.
 *
 * Time is measured with an injectable clock, CPU clock and timers, so tests drive slow passes
 * without being slow.
 */

/** Default bound on the delay batching adds to a flush, ms. */
export const DEFAULT_MAX_BATCH_DELAY_MS = 20;

/**
 * CPU time per wall-clock time (smoothed over the last several passes) from which a node counts as
 * saturated and batching holds flushes.
 */
export const SATURATED_SHARE = 0.97;
/** Weight of the newest measure in the smoothed share: about the last seven passes count. */
const SHARE_SMOOTHING = 0.3;

/** Time and timers the flush pacing uses. */
export interface FlushTiming {
  /** A monotonic clock, ms. */
  now(): number;
  /** CPU time the process has used, ms (read after long passes only). */
  cpu(): number;
  /** Runs `fn` on the next turn of the event loop (after pending I/O). */
  next(fn: () => void): void;
  /** Runs `fn` in `ms` milliseconds. */
  later(fn: () => void, ms: number): void;
}

/** The process's clock and timers. */
export const systemFlushTiming: FlushTiming = {
  now: () => performance.now(),
  cpu: () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  },
  next: (fn) => setImmediate(fn),
  later: (fn, ms) => setTimeout(fn, ms),
};

/** Decides how long the next flush waits, from the previous passes and the CPU the process used. */
export class FlushPacer {
  private readonly maxDelayMs: number;
  private lastPassMs = 0;
  private lastEnd = 0;
  /** The end of the last pass that read the CPU clock, and what it read (-1: none yet). */
  private measuredEnd = -1;
  private measuredCpu = 0;
  /** Smoothed CPU time per wall-clock time between the ends of passes that read the CPU clock. */
  private busy = 0;

  /**
   * `cpu` reads the process's CPU time in ms. It is read only at the end of a pass of a millisecond
   * or more, so a node of short passes (small fan-outs, many ticks) pays no system call for it.
   */
  constructor(
    maxDelayMs = DEFAULT_MAX_BATCH_DELAY_MS,
    private readonly cpu: () => number = systemFlushTiming.cpu,
  ) {
    this.maxDelayMs = Math.max(0, maxDelayMs);
  }

  /**
   * A flush pass ran from `start` to `end` (ms of the pacing clock). After a pass of a millisecond
   * or more, the CPU share since the last such pass ended (short passes and idle time included)
   * joins the smoothed share.
   */
  passed(start: number, end: number): void {
    this.lastPassMs = Math.max(0, end - start);
    this.lastEnd = end;
    if (this.lastPassMs < 1 || this.maxDelayMs === 0) return;
    const used = this.cpu();
    if (this.measuredEnd >= 0 && end > this.measuredEnd) {
      const share = Math.min(1, (used - this.measuredCpu) / (end - this.measuredEnd));
      this.busy += SHARE_SMOOTHING * (share - this.busy);
    }
    this.measuredEnd = end;
    this.measuredCpu = used;
  }

  /** The smoothed CPU share (1: a whole core), as of the last pass of a millisecond or more. */
  get busyShare(): number {
    return this.busy;
  }

  /**
   * Ms the flush asked for at `now` should wait (0: next tick). Only a node whose smoothed CPU
   * share is at least SATURATED_SHARE, after a pass of at least a millisecond, waits, and only for
   * what is left of one pass duration (at most `maxDelayMs`) since that pass ended.
   */
  delay(now: number): number {
    if (this.busy < SATURATED_SHARE || this.lastPassMs < 1) return 0;
    const wait = Math.min(this.maxDelayMs, this.lastPassMs) - Math.max(0, now - this.lastEnd);
    return wait >= 1 ? Math.ceil(wait) : 0;
  }
}
