/**
 * Adaptive write batching: when the next flush of the outbound queues runs.
 *
 * A flush pass writes once to every connection that has something queued, so its cost is about
 * one system call per connection, whatever the number of publications it carries. On an idle node
 * the next flush runs on the next tick, exactly as without batching. On a node whose passes take
 * long, the next pass starts no sooner than one pass's duration after the previous one ended (so
 * the node spends at most about half its time in passes), and never later than `maxDelayMs` after
 * the frame that asked for it was queued: publications arriving meanwhile share its writes.
 *
 * Time is measured with an injectable clock and timers, so tests drive slow passes without being
 * slow.
 */

/** Default bound on the delay batching adds to a flush, ms. */
export const DEFAULT_MAX_BATCH_DELAY_MS = 50;

/** Time and timers the flush pacing uses. */
export interface FlushTiming {
  /** A monotonic clock, ms. */
  now(): number;
  /** Runs `fn` on the next turn of the event loop (after pending I/O). */
  next(fn: () => void): void;
  /** Runs `fn` in `ms` milliseconds. */
  later(fn: () => void, ms: number): void;
}

/** The process's clock and timers. */
export const systemFlushTiming: FlushTiming = {
  now: () => performance.now(),
  next: (fn) => setImmediate(fn),
  later: (fn, ms) => setTimeout(fn, ms),
};

/** Decides how long the next flush waits, from the duration and end of the previous pass. */
export class FlushPacer {
  private readonly maxDelayMs: number;
  private lastPassMs = 0;
  private lastEnd = 0;

  constructor(maxDelayMs = DEFAULT_MAX_BATCH_DELAY_MS) {
    this.maxDelayMs = Math.max(0, maxDelayMs);
  }

  /** A flush pass ran from `start` to `end` (ms of the pacing clock). */
  passed(start: number, end: number): void {
    this.lastPassMs = Math.max(0, end - start);
    this.lastEnd = end;
  }

  /**
   * Ms the flush asked for at `now` should wait (0: next tick). Only a pass that took at least a
   * millisecond, followed by a frame queued sooner than that pass's duration after it ended, leads
   * to a wait; a node that was idle for longer than its last pass flushes on the next tick.
   */
  delay(now: number): number {
    const wait = Math.min(this.maxDelayMs, this.lastPassMs) - (now - this.lastEnd);
    if (!(wait >= 1)) return 0;
    return Math.ceil(wait);
  }
}
