/**
 * Channel <-> NATS subject mapping, the same for NATS core and JetStream:
 *
 *   `<namespace>:<rest>`  ->  `<prefix>.<enc(namespace)>.<enc(rest)>`
 *
 * `enc` keeps `A-Z a-z 0-9 _ - : @ = / +` and writes every other UTF-8 byte (and `%` itself) as
 * `%XX` (upper-case hex), so a token never holds `.`, `*`, `>` or whitespace, and the mapping is
 * injective: `decodeToken(encodeToken(x)) === x` for every string. The namespace is its own
 * token so a service can listen to a whole namespace with `<prefix>.<namespace>.>`.
 * Example: `chat:room.42` -> `gatehouse.chat.room%2E42`.
 */

const KEEP = /^[A-Za-z0-9_:@=/+-]$/;
const encoder = new TextEncoder();

/** Encodes one subject token (see the module comment). */
export function encodeToken(text: string): string {
  let out = '';
  for (const ch of text) {
    if (KEEP.test(ch)) {
      out += ch;
      continue;
    }
    for (const byte of encoder.encode(ch)) out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** Decodes one token written by `encodeToken`; undefined if it is not one. */
export function decodeToken(token: string): string | undefined {
  if (token.length === 0 || !/^(?:[A-Za-z0-9_:@=/+-]|%[0-9A-F]{2})+$/.test(token)) return undefined;
  let text: string;
  try {
    text = decodeURIComponent(token);
  } catch {
    return undefined;
  }
  // Only the one spelling encodeToken produces counts, so subject -> channel is injective too.
  return encodeToken(text) === token ? text : undefined;
}

/** True when `prefix` is one or more plain subject tokens joined by dots. */
export function isValidSubjectPrefix(prefix: string): boolean {
  return typeof prefix === 'string' && prefix.length <= 128 && /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/.test(prefix);
}

/** The subject of `channel` under `prefix`. The channel must contain a ':' (namespace:rest). */
export function channelToSubject(prefix: string, channel: string): string {
  const colon = channel.indexOf(':');
  if (colon <= 0 || colon === channel.length - 1)
    throw new TypeError(`channel ${JSON.stringify(channel.slice(0, 80))} is not "namespace:name"`);
  return `${prefix}.${encodeToken(channel.slice(0, colon))}.${encodeToken(channel.slice(colon + 1))}`;
}

/** The channel a subject under `prefix` names, or undefined if it names none. */
export function subjectToChannel(prefix: string, subject: string): string | undefined {
  if (!subject.startsWith(prefix + '.')) return undefined;
  const tokens = subject.slice(prefix.length + 1).split('.');
  if (tokens.length !== 2) return undefined;
  const ns = decodeToken(tokens[0] as string);
  const rest = decodeToken(tokens[1] as string);
  if (ns === undefined || rest === undefined || ns.includes(':')) return undefined;
  return `${ns}:${rest}`;
}
