/**
 * Per-session outbound queues and their flush. What a session is sent in one tick is queued and
 * written with one write at the next flush; the caps (bytes, messages) are checked as frames are
 * queued, and a session past them is handed to `onSlowConsumer`. A connection whose transport
 * holds more than HIGH_WATER_BYTES gets no writes until it drains.
 *
 * Adaptive batching (batching.ts) decides when the next flush runs: on the next tick on a node with
 * time to spare, a little later on a saturated one, so that what arrives meanwhile shares it.
 */
import { nowMs } from './backbone.js';
import { FlushPacer, systemFlushTiming } from './batching.js';
import type { FlushTiming } from './batching.js';
import type { GatewayMetrics } from './metrics.js';
import { SessionState } from './session.js';
import type { Session } from './session.js';

/**
 * A connection whose transport holds more unsent bytes than this gets no more writes until it
 * drains: what is queued meanwhile stays in the session's queue, where a slow-consumer cut can
 * drop it, so the close frame that follows reaches a client that is still reading.
 */
export const HIGH_WATER_BYTES = 128 * 1024;

/** What the queues need. */
export interface OutboundOptions {
  metrics: GatewayMetrics;
  maxQueueBytes: number;
  maxQueueMessages: number;
  /** Hold each flush this many ms so publications arriving meanwhile share one write (0: next tick). */
  coalesceMs: number;
  /**
   * Bound, in ms, on what adaptive batching may add to a flush on a saturated node (0 turns it off).
   * Unused when `coalesceMs` is set. Default: DEFAULT_MAX_BATCH_DELAY_MS.
   */
  maxBatchDelayMs?: number;
  /** Time and timers of the flush pacing (tests inject them). */
  flushTiming?: FlushTiming;
  /** Called when a session's queue hits the cap. */
  onSlowConsumer(session: Session): void;
}

/** The outbound queues of a node's sessions. */
export class Outbound {
  private dirty: Session[] = [];
  private spare: Session[] = [];
  private flushScheduled = false;
  /** Accept times of publications fanned out since the last flush (one per publication). */
  private readonly flushTs: number[] = [];
  private readonly flushBound = () => this.flush();
  private readonly pacer: FlushPacer;
  private readonly timing: FlushTiming;

  constructor(private readonly o: OutboundOptions) {
    this.timing = o.flushTiming ?? systemFlushTiming;
    const timing = this.timing;
    this.pacer = new FlushPacer(o.maxBatchDelayMs, () => timing.cpu());
  }

  /** A publication accepted at `ts` was queued for at least one session in this tick. */
  delivered(ts: number): void {
    this.flushTs.push(ts);
  }

  /**
   * Queues bytes for `s`; closes it as a slow consumer when its queue would pass the cap (bytes
   * always; messages unless `countMessage` is false, for history replays).
   */
  enqueue(s: Session, frame: Buffer, countMessage = true): void {
    if (s.state === SessionState.Closing) return;
    const q = s.queue;
    // What the socket still holds cannot change before this tick's flush, so it is read once,
    // with the first frame queued, not once per delivery.
    if (q.length === 0) s.socketBacklog = s.transport.bufferedBytes;
    if ((countMessage && q.length >= this.o.maxQueueMessages) || s.queuedBytes + frame.length + s.socketBacklog > this.o.maxQueueBytes) {
      this.o.onSlowConsumer(s);
      return;
    }
    if (q.length === 0 && !s.waitingDrain) this.markDirty(s);
    q.push(frame);
    s.queuedBytes += frame.length;
  }

  /**
   * Writes everything queued in this tick: one write per connection, except to a connection whose
   * transport is past the high-water mark, whose queue waits for the drain.
   */
  flush(): void {
    this.flushScheduled = false;
    const started = this.timing.now();
    const dirty = this.dirty;
    this.dirty = this.spare;
    for (const s of dirty) {
      const q = s.queue;
      if (q.length === 0) continue;
      if (s.state !== SessionState.Closing && s.transport.writable) {
        if (
          s.socketBacklog > HIGH_WATER_BYTES &&
          s.transport.bufferedBytes > HIGH_WATER_BYTES &&
          s.transport.whenDrained(() => this.drained(s))
        ) {
          s.waitingDrain = true;
          continue;
        }
        s.transport.writeMany(q, s.queuedBytes);
      }
      q.length = 0;
      s.queuedBytes = 0;
    }
    dirty.length = 0;
    this.spare = dirty;
    if (this.flushTs.length > 0) {
      const now = nowMs();
      for (const ts of this.flushTs) this.o.metrics.publishDelivery.observe(Math.max(0, now - ts) / 1000);
      this.flushTs.length = 0;
    }
    this.pacer.passed(started, this.timing.now());
  }

  /** `s`'s transport drained: its held queue goes out with the next flush. */
  private drained(s: Session): void {
    s.waitingDrain = false;
    s.socketBacklog = s.transport.bufferedBytes;
    if (s.state !== SessionState.Closing && s.queue.length > 0) this.markDirty(s);
  }

  /** `s` has frames for the next flush; schedules the flush if none is. */
  private markDirty(s: Session): void {
    this.dirty.push(s);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    if (this.o.coalesceMs > 0) {
      this.timing.later(this.flushBound, this.o.coalesceMs);
      return;
    }
    const wait = this.pacer.delay(this.timing.now());
    if (wait > 0) {
      this.o.metrics.batchDelay.observe(wait / 1000);
      this.timing.later(this.flushBound, wait);
    } else {
      this.timing.next(this.flushBound);
    }
  }
}
