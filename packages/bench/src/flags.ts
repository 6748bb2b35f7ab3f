/**
 * Reading numbers from command-line flags, shared by `gatehouse bench` and `gatehouse capacity`:
 * every refusal is a UsageError whose message names the flag, the allowed range and what was given.
 */

/** A usage mistake: printed without a stack, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

function range(min: number, max: number): string {
  return max >= Number.MAX_SAFE_INTEGER
    ? `of at least ${min.toLocaleString('en-US')}`
    : `from ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')}`;
}

/** `raw` as a whole number in [min, max] (underscores allowed: 100_000), or undefined when absent. */
export function wholeNumber(flag: string, raw: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (raw === undefined) return undefined;
  const s = String(raw).trim().replace(/_/g, '');
  const n = /^-?\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${flag} must be a whole number ${range(min, max)}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

/** `raw` as a decimal number in [min, max], or undefined when absent. */
export function decimal(flag: string, raw: unknown, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const s = String(raw).trim();
  const n = /^-?\d+(\.\d+)?$/.test(s) ? Number(s) : NaN;
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`--${flag} must be a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
}
