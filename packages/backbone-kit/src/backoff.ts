/**
 * Waiting between retries. Every adapter reconnects and retries with the same curve so an outage
 * looks alike whichever backbone is behind the gateway, and so a fleet of nodes that lost the same
 * server does not come back in lockstep.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Largest exponent used: past it the cap has long been reached, and 2 ** n stays finite. */
const MAX_DOUBLINGS = 30;

/**
 * The delay before retry number `attempt` (1 for the first retry): exponential growth from
 * `floorMs`, capped at `capMs`, with jitter. The result is uniform in
 * `[floorMs / 2, min(capMs, floorMs * 2 ** (attempt - 1))]`, rounded to whole ms: "full jitter"
 * spreads a fleet's retries over the whole window, and the floor of half `floorMs` keeps a retry
 * loop against a dead server from spinning. Never throws: an attempt below 1 counts as 1, a
 * negative or non-finite floor as 0, a cap below the floor as the floor (this runs inside
 * reconnect loops, where an exception would stop reconnecting for good).
 */
export function backoffDelay(attempt: number, floorMs: number, capMs: number, random: () => number = Math.random): number {
  const floor = Number.isFinite(floorMs) && floorMs > 0 ? floorMs : 0;
  const cap = Number.isFinite(capMs) && capMs > floor ? capMs : floor;
  const n = Number.isFinite(attempt) && attempt > 1 ? Math.min(Math.floor(attempt) - 1, MAX_DOUBLINGS) : 0;
  const ceiling = Math.min(cap, floor * 2 ** n);
  const low = Math.min(floor / 2, ceiling);
  const r = random();
  const unit = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
  return Math.round(low + unit * (ceiling - low));
}

/** How `retryUntilDeadline` paces itself and when it stops early. */
export interface RetryOptions {
  /** Says the error is final (a bad password, a closed backbone): rethrow it at once. */
  readonly giveUp?: (err: unknown) => boolean;
  /** Backoff floor, ms. Default 100. */
  readonly floorMs?: number;
  /** Backoff cap, ms. Default 2 000. */
  readonly capMs?: number;
  /** Aborting stops the wait between tries and rethrows the last error. */
  readonly signal?: AbortSignal;
  /** Source of jitter (tests pass a fixed one). */
  readonly random?: () => number;
}

/**
 * Runs `attempt` until it resolves, waiting `backoffDelay` between tries. Rethrows the last error
 * when `giveUp(error)` says so, when `signal` aborts, or when the next try would start at or after
 * `deadline` (ms since the Unix epoch). `attempt` gets the try number, starting at 1.
 */
export async function retryUntilDeadline<T>(deadline: number, attempt: (n: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { giveUp, floorMs = 100, capMs = 2_000, signal, random = Math.random } = options;
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const wait = backoffDelay(n, floorMs, capMs, random);
      if (signal?.aborted || giveUp?.(err) || Date.now() + wait >= deadline) throw err;
      const aborted = await sleep(wait, false, { signal }).catch(() => true);
      if (aborted) throw err;
    }
  }
}
