/**
 * Command-line parsing with messages in the user's terms: Node's `parseArgs` does the parsing,
 * and its errors are rewritten to name the flag as typed, with a "did you mean" for near misses.
 */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';

/** A usage mistake: printed without a stack, exit code 2. */
export class UsageError extends Error {}

/** Edit distance between two short strings (insertions, deletions, substitutions, swaps). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min((d[i - 1]![j] as number) + 1, (d[i]![j - 1] as number) + 1, (d[i - 1]![j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, (d[i - 2]![j - 2] as number) + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length] as number;
}

/**
 * The known name closest to `typed`, if it is close enough to be a typo (a third of its length,
 * at least 2 edits), or if one name starts with the other (`--heart` for `--heartbeat`).
 */
export function closest(typed: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of known) {
    const distance = editDistance(typed.toLowerCase(), name.toLowerCase());
    if (distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  if (best === undefined) return undefined;
  if (bestDistance <= Math.max(2, Math.floor(best.length / 3))) return best;
  const prefixed = [...known].filter((name) => name.length > 2 && typed.length > 2 && (name.startsWith(typed) || typed.startsWith(name)));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/** `, did you mean X?` for a near miss, or nothing. */
export function suggestion(typed: string, known: Iterable<string>): string {
  const near = closest(typed, known);
  return near === undefined ? '' : `; did you mean ${near}?`;
}

/**
 * Parses `argv` against `options` (plus `--help`/`-h`). Every mistake becomes a UsageError that
 * names the flag: unknown ones get the nearest known flag, missing values say so.
 */
export function parse(
  argv: string[],
  options: NonNullable<ParseArgsConfig['options']>,
  allowPositionals = false,
): { values: Record<string, unknown>; positionals: string[] } {
  const all = { ...options, help: { type: 'boolean' as const, short: 'h' } };
  try {
    return parseArgs({ args: argv, options: all, allowPositionals, strict: true });
  } catch (err) {
    const { code, message } = err as Error & { code?: string };
    const flag = /'(-[^' ]+)/.exec(message)?.[1] ?? '';
    switch (code) {
      case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
        const known = Object.keys(all).map((name) => `--${name}`);
        throw new UsageError(`unknown option ${flag}${suggestion(flag.replace(/=.*/, ''), known)} ("--help" lists every option)`);
      }
      case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
        if (/does not take an argument/.test(message)) throw new UsageError(`${flag} takes no value: give ${flag} alone, or leave it out`);
        if (/ambiguous/.test(message)) throw new UsageError(`${flag} needs a value; for a value starting with "-" write ${flag}=<value>`);
        throw new UsageError(`${flag} needs a value (${flag} <value>)`);
      case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
        const typed = /'([^']*)'/.exec(message)?.[1] ?? '';
        throw new UsageError(`unexpected argument "${typed}": this command takes only --options`);
      }
      default:
        throw new UsageError(message);
    }
  }
}
