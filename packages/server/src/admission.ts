/**
 * Admission control: token buckets for the node's connect rate and for each client address, and a
 * retry delay spread over a window sized to the backlog, so refused clients do not come back in
 * step and turn one storm into the next.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** A token bucket: `rate` tokens per second, at most `burst` saved up. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now = performance.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes one token if there is one. */
  take(now = performance.now()): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Tokens missing to admit one more request right now (0 when one is available). */
  deficit(now = performance.now()): number {
    this.refill(now);
    return Math.max(0, 1 - this.tokens);
  }

  /** True when the bucket is full (so an idle entry can be forgotten). */
  full(now = performance.now()): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }

  private refill(now: number): void {
    const elapsed = (now - this.last) / 1000;
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + elapsed * this.rate);
  }
}

/** Per-address connect limits. Memory is bounded: idle (full) buckets are swept, and a hard cap applies. */
export class AddressLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly rate: number,
    private readonly maxTracked = 100_000,
  ) {}

  /** Takes a token for `address`; false means refuse. */
  take(address: string, now = performance.now()): boolean {
    let b = this.buckets.get(address);
    if (!b) {
      if (this.buckets.size >= this.maxTracked) this.sweep(now);
      if (this.buckets.size >= this.maxTracked) return false;
      b = new TokenBucket(this.rate, this.rate * 2, now);
      this.buckets.set(address, b);
    }
    return b.take(now);
  }

  /** Forgets addresses whose bucket refilled completely. */
  sweep(now = performance.now()): void {
    for (const [addr, b] of this.buckets) if (b.full(now)) this.buckets.delete(addr);
  }

  /** Addresses tracked. */
  get size(): number {
    return this.buckets.size;
  }
}

/**
 * A retry delay for a refused connection: at least `baseMs`, spread uniformly over a window that
 * grows with how far over the rate the node is, capped at `maxMs`.
 */
export function retryDelay(backlogSeconds: number, baseMs = 1000, maxMs = 30_000, random = Math.random): number {
  const window = Math.min(maxMs - baseMs, Math.max(1000, backlogSeconds * 1000));
  return Math.round(baseMs + random() * window);
}

/**
 * Event-loop lag as admission sees it: the p99 of the last second, from Node's own delay
 * histogram (no timers of our own on the measured loop).
 */
export class LagMonitor {
  private readonly histogram = monitorEventLoopDelay({ resolution: 10 });
  private timer: NodeJS.Timeout | undefined;
  /** p99 event-loop delay over the last full second, ms. */
  lagMs = 0;

  /** Starts sampling. */
  start(): void {
    if (this.timer) return;
    this.histogram.enable();
    this.timer = setInterval(() => {
      this.lagMs = this.histogram.count > 0 ? this.histogram.percentile(99) / 1e6 : 0;
      this.histogram.reset();
    }, 1000);
    this.timer.unref();
  }

  /** Stops sampling. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.histogram.disable();
  }
}

/**
 * How many refusals are waiting to come back, decaying with a one-second time constant. Divided
 * by the admitted rate it sizes the window refused clients are spread over.
 */
export class RefusalBacklog {
  private value = 0;
  private last = performance.now();

  /** Counts one refusal and returns the backlog in seconds at `rate` admissions per second. */
  add(rate: number, now = performance.now()): number {
    this.value = this.value * Math.exp(-(now - this.last) / 1000) + 1;
    this.last = now;
    return this.value / Math.max(1, rate);
  }
}
