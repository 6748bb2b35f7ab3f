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
import type { NativeSend } from './native-send.js';
import { SessionState } from './session.js';
import type { Session } from './session.js';

/**
 * A connection whose transport holds more unsent bytes than this gets no more writes until it
 * drains: what is queued meanwhile stays in the session's queue, where a slow-consumer cut can
 * drop it, so the close frame that follows reaches a client that is still reading.
 */
export const HIGH_WATER_BYTES = 128 * 1024;

/**
 * The last batch of frames joined into one write, and its bytes. A flush pass that carries several
 * publications hands every subscriber of a channel the same frames in the same order, so the bytes
 * are joined once per pass and the same Buffer is written to each socket (sockets never modify
 * what they write), instead of one allocation and copy per socket. Holds one batch at most.
 */
const lastJoin = { frames: [] as Buffer[], bytes: Buffer.alloc(0) };

export function joinFrames(chunks: readonly Buffer[], totalBytes: number): Buffer {
  const frames = lastJoin.frames;
  if (frames.length === chunks.length && lastJoin.bytes.length === totalBytes) {
    let i = 0;
    while (i < frames.length && frames[i] === chunks[i]) i++;
    if (i === frames.length) return lastJoin.bytes;
  }
  const bytes = Buffer.concat(chunks as Buffer[], totalBytes);
  frames.length = 0;
  for (const c of chunks) frames.push(c);
  lastJoin.bytes = bytes;
  return bytes;
}

/** `Session.socketBacklog` after a write whose effect on the socket's queue is not known: read it at the next enqueue. */
const BACKLOG_UNKNOWN = -1;

/**
 * Up to this many frames, a session's queue is an array shared with the other sessions that got
 * the same frames in this tick (`Outbound.appended`); past it, each has its own.
 */
const SHARED_QUEUE_MAX = 32;

/** Sessions per batched send call: bounds the descriptor arrays (64 KiB together). */
const RUN_MAX = 8192;

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
  /**
   * The batched send (native-send.ts): sessions whose transport gives a descriptor and that get
   * the same bytes in a flush are written in one call. Absent: every session writes through its
   * transport.
   */
  send?: NativeSend;
  /** Time and timers of the flush pacing (tests inject them). */
  flushTiming?: FlushTiming;
  /** Called when a session's queue hits the cap. */
  onSlowConsumer(session: Session): void;
}

/** The outbound queues of a node's sessions. */
export class Outbound {
  /**
   * Sessions with frames for the next flush (the first `dirtyCount`), and the list of the flush
   * before, kept for reuse: emptying an array with \`length = 0\` drops its storage, and a fan-out to
   * every socket would grow it anew on every tick.
   */
  private dirty: (Session | undefined)[] = [];
  private dirtyCount = 0;
  private spare: (Session | undefined)[] = [];
  private flushScheduled = false;
  /** Accept times of publications fanned out since the last flush (one per publication). */
  private readonly flushTs: number[] = [];
  private readonly flushBound = () => this.flush();
  private readonly pacer: FlushPacer;
  private readonly timing: FlushTiming;
  /** The last queue `appended` made, and from what (shared by the sessions that follow). */
  private lastPrev: Buffer | Buffer[] | undefined;
  private lastFrame: Buffer | undefined;
  private lastNext: Buffer[] | undefined;
  /** The batched send's current run: its bytes and sessions (see sendRun). */
  private runBytes: Buffer | undefined;
  private runLength = 0;
  private readonly runSessions: (Session | undefined)[] = [];
  private readonly runFds = new Int32Array(RUN_MAX);
  private readonly runResults = new Int32Array(RUN_MAX);

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
    const n = s.queuedCount;
    // What the socket still holds cannot change before this tick's flush, so it is read once,
    // with the first frame queued, not once per delivery; and not at all after a batched send
    // that the kernel took whole left it empty (only the transport's own pings and pongs can have
    // joined it since: a few bytes).
    if (n === 0 && s.socketBacklog !== 0) s.socketBacklog = s.transport.bufferedBytes;
    if ((countMessage && n >= this.o.maxQueueMessages) || s.queuedBytes + frame.length + s.socketBacklog > this.o.maxQueueBytes) {
      this.o.onSlowConsumer(s);
      return;
    }
    if (n === 0) {
      s.queued = frame;
      if (!s.waitingDrain) this.markDirty(s);
    } else if (n > SHARED_QUEUE_MAX) {
      (s.queued as Buffer[]).push(frame); // its own array (made below), never shared
    } else {
      s.queued = this.appended(s.queued as Buffer | Buffer[], frame, n);
    }
    s.queuedCount = n + 1;
    s.queuedBytes += frame.length;
  }

  /**
   * `prev` (a session's `n` queued frames) followed by `frame`, as a new array that is never
   * modified (up to SHARED_QUEUE_MAX frames): the subscribers of a channel queue the same frames
   * in the same order, so the one made for the first of them serves all that follow, instead of
   * an array per connection per tick. Past SHARED_QUEUE_MAX a session gets an array of its own.
   */
  private appended(prev: Buffer | Buffer[], frame: Buffer, n: number): Buffer[] {
    if (prev === this.lastPrev && frame === this.lastFrame) return this.lastNext as Buffer[];
    const next = n === 1 ? [prev as Buffer, frame] : (prev as Buffer[]).concat(frame);
    if (n === SHARED_QUEUE_MAX) return next;
    this.lastPrev = prev;
    this.lastFrame = frame;
    this.lastNext = next;
    return next;
  }

  /**
   * Writes everything queued in this tick: one write per connection, except to a connection whose
   * transport is past the high-water mark, whose queue waits for the drain.
   */
  flush(): void {
    this.flushScheduled = false;
    this.lastPrev = this.lastFrame = this.lastNext = undefined;
    const started = this.timing.now();
    const dirty = this.dirty;
    const count = this.dirtyCount;
    this.dirty = this.spare;
    this.dirtyCount = 0;
    const send = this.o.send;
    for (let i = 0; i < count; i++) {
      const s = dirty[i] as Session;
      const q = s.queued;
      if (q === undefined) continue;
      const t = s.transport;
      // A transport with a descriptor says whether it is writable when its run is sent (sendRun).
      const direct = send !== undefined && t.sendFd !== undefined;
      if (s.state !== SessionState.Closing && (direct || t.writable)) {
        if (s.socketBacklog > HIGH_WATER_BYTES && t.bufferedBytes > HIGH_WATER_BYTES && t.whenDrained(() => this.drained(s))) {
          s.waitingDrain = true;
          continue;
        }
        if (direct) {
          // Consecutive sessions getting the same bytes (a channel's subscribers) form one run.
          const bytes = Array.isArray(q) ? joinFrames(q, s.queuedBytes) : q;
          if (bytes !== this.runBytes || this.runLength === RUN_MAX) this.sendRun(bytes);
          this.runSessions[this.runLength++] = s;
          s.socketBacklog = 0; // unless the kernel does not take it all (sendRun)
        } else {
          if (Array.isArray(q)) t.writeMany(q, s.queuedBytes);
          else t.write(q);
          s.socketBacklog = BACKLOG_UNKNOWN;
        }
      }
      s.clearQueued();
    }
    this.sendRun(undefined);
    dirty.fill(undefined, 0, count);
    this.spare = dirty;
    if (this.flushTs.length > 0) {
      const now = nowMs();
      for (const ts of this.flushTs) this.o.metrics.publishDelivery.observe(Math.max(0, now - ts) / 1000);
      this.flushTs.length = 0;
    }
    this.pacer.passed(started, this.timing.now());
  }

  /**
   * Sends the run's bytes to each of its sessions in one call, then starts a run of `next`. A
   * session whose socket cannot take them directly now (something waits in its queue), or did not
   * take all of them (its buffer filled, an error), gets the rest through its transport, which
   * queues them in order and reports errors the usual way; one that is no longer writable (closed,
   * or its peer began a close) gets nothing.
   */
  private sendRun(next: Buffer | undefined): void {
    const n = this.runLength;
    const bytes = this.runBytes;
    this.runLength = 0;
    this.runBytes = next;
    if (n === 0 || bytes === undefined) return;
    const sessions = this.runSessions;
    const fds = this.runFds;
    const results = this.runResults;
    // Descriptors are read here, and nothing runs between this loop and the send.
    for (let i = 0; i < n; i++) fds[i] = (sessions[i] as Session).transport.sendFd?.() ?? -1;
    const complete = (this.o.send as NativeSend).sendEach(fds, n, bytes, results);
    if (complete < n) {
      let partial = 0;
      for (let i = 0; i < n; i++) {
        const r = results[i] as number;
        if (r === bytes.length) continue;
        const s = sessions[i] as Session;
        s.socketBacklog = BACKLOG_UNKNOWN;
        if (fds[i] !== -1) partial++;
        else if (!s.transport.writable) continue;
        s.transport.write(r > 0 ? bytes.subarray(r) : bytes);
      }
      if (partial > 0) this.o.metrics.batchedSends.inc({ outcome: 'rest_to_socket' }, partial);
    }
    if (complete > 0) this.o.metrics.batchedSends.inc({ outcome: 'complete' }, complete);
    sessions.fill(undefined, 0, n);
  }

  /** `s`'s transport drained: its held queue goes out with the next flush. */
  private drained(s: Session): void {
    s.waitingDrain = false;
    s.socketBacklog = s.transport.bufferedBytes;
    if (s.state !== SessionState.Closing && s.queuedCount > 0) this.markDirty(s);
  }

  /** `s` has frames for the next flush; schedules the flush if none is. */
  private markDirty(s: Session): void {
    this.dirty[this.dirtyCount++] = s;
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
