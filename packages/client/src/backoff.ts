/**
 * Reconnect delays. Failures back off exponentially with full jitter so a fleet of clients that
 * lost the same node spreads its return instead of arriving in step.
 */
import type { BackoffOptions } from './options.js';

/** Upper bound of the small jitter used when the server asks for a prompt reconnect. */
export const RECONNECT_JITTER_MS = 1000;

/**
 * Counts consecutive failed connections and turns the count into a delay: attempt n waits a
 * uniformly random time between `minMs` and `min(maxMs, minMs * factor^(n+1))`, never less than
 * the server's retry hint.
 */
export class Backoff {
  #attempt = 0;

  constructor(
    private readonly options: Required<BackoffOptions>,
    private readonly random: () => number,
  ) {}

  /** Consecutive failures since the last healthy connection. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The delay for the next attempt; counts one more failure. */
  next(hintMs?: number): number {
    const { minMs, maxMs, factor } = this.options;
    // factor ** n may reach Infinity after many failures; Math.min turns that into the cap.
    const ceiling = Math.min(maxMs, minMs * factor ** (this.#attempt + 1));
    this.#attempt++;
    const delay = Math.round(minMs + unit(this.random) * (ceiling - minMs));
    return hintMs === undefined ? delay : Math.max(delay, hintMs);
  }

  /** Forgets past failures (after a connection proved healthy). */
  reset(): void {
    this.#attempt = 0;
  }
}

/** A sample of `random` clamped into [0, 1], so a faulty source cannot produce absurd delays. */
export function unit(random: () => number): number {
  const r = random();
  return Number.isFinite(r) ? Math.min(1, Math.max(0, r)) : 0;
}
