/**
 * Channel patterns as granted by token claims: an exact channel name, or a prefix ending in `*`
 * (`chat:*`, `user:42:*`), or `*` for every channel. No other wildcard exists, so matching is a
 * string comparison and a hostile pattern cannot cost more than its length.
 */

/** True when `channel` is matched by `pattern`. */
export function matchChannel(pattern: string, channel: string): boolean {
  if (pattern.endsWith('*')) return channel.startsWith(pattern.slice(0, -1));
  return pattern === channel;
}

/** True when any of `patterns` matches `channel`. */
export function matchAny(patterns: readonly string[], channel: string): boolean {
  for (const p of patterns) if (matchChannel(p, channel)) return true;
  return false;
}
