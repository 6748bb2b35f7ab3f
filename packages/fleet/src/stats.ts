/** Small summaries of measured durations. */

/** p50, p99 and max of a set of durations in ms (null when there are none). */
export interface Percentiles {
  n: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

/** Nearest-rank percentile of sorted values; `q` in (0, 1]. */
function rank(sorted: readonly number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

/** Summarises `values` (ms), rounded to whole ms. */
export function percentiles(values: readonly number[]): Percentiles {
  if (values.length === 0) return { n: 0, p50: null, p99: null, max: null };
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: Math.round(rank(sorted, 0.5)),
    p99: Math.round(rank(sorted, 0.99)),
    max: Math.round(sorted[sorted.length - 1] as number),
  };
}

/** Resolves after `ms`; the load phases of a scenario are timed, the checks never are. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
