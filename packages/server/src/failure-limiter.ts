/**
 * Brute-force brake for API keys: failed authentications are counted per client address in a
 * fixed window; an address past the limit is refused (429 with Retry-After) until its window ends,
 * whether its next key is right or not. Addresses kept are bounded; when full, the oldest go.
 */
import { ApiError } from './http-api.js';

/** Failed attempts one address may make per window. */
export const MAX_FAILURES = 10;
/** The window, ms. */
export const FAILURE_WINDOW_MS = 60_000;
const MAX_ADDRESSES = 10_000;

/** Counts failures per address. */
export class FailureLimiter {
  private readonly failures = new Map<string, { count: number; until: number }>();

  constructor(
    private readonly max = MAX_FAILURES,
    private readonly windowMs = FAILURE_WINDOW_MS,
  ) {}

  /** Throws 429 when `address` is over the limit. */
  check(address: string, now = Date.now()): void {
    const f = this.failures.get(address);
    if (!f) return;
    if (f.until <= now) {
      this.failures.delete(address);
      return;
    }
    if (f.count >= this.max) {
      throw new ApiError('rate_limited', `too many failed attempts from this address; retry later`, Math.ceil((f.until - now) / 1000));
    }
  }

  /** Counts one failed attempt from `address`. */
  fail(address: string, now = Date.now()): void {
    const f = this.failures.get(address);
    if (f && f.until > now) {
      f.count++;
      return;
    }
    if (this.failures.size >= MAX_ADDRESSES) {
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
    this.failures.set(address, { count: 1, until: now + this.windowMs });
  }

  /**
   * Runs `authenticate` for `address` under the limit: refused at once when over it, and a
   * failure (401) is counted.
   */
  guard<T>(address: string, authenticate: () => T): T {
    this.check(address);
    try {
      return authenticate();
    } catch (err) {
      if (err instanceof ApiError && err.code === 'unauthorized') this.fail(address);
      throw err;
    }
  }
}
