/**
 * The envelope on the Redis pub/sub channel:
 * `{"v":1,"channel":"<name>","epoch":"<epoch>","offset":<n>,"ts":<ms>,"data":<JSON value>}`.
 * The publish script writes it; anything else found on the channel (a stray PUBLISH by hand, a
 * service that skipped the script, a bug) is decoded defensively: a bad one is reported and
 * dropped, never delivered, never thrown.
 */
import type { Publication } from '@gatehouse/backbone-kit';

/** The envelope version this adapter reads and writes. */
export const ENVELOPE_VERSION = 1;

/** The start of an envelope for `channel`, built once per publish and completed by the script. */
export function envelopeHead(channel: string): string {
  return '{"v":1,"channel":' + JSON.stringify(channel);
}

/**
 * Decodes an envelope that arrived on `channel`'s pub/sub channel. Returns the publication, or a
 * string saying why it was rejected.
 */
export function decodeEnvelope(text: string, channel: string): Publication | string {
  let env: unknown;
  try {
    env = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (typeof env !== 'object' || env === null || Array.isArray(env)) return 'not a JSON object';
  const e = env as Record<string, unknown>;
  if (e['v'] !== ENVELOPE_VERSION) return `unsupported envelope version ${JSON.stringify(e['v'])}`;
  if (e['channel'] !== channel) return 'channel does not match the pub/sub channel it arrived on';
  const epoch = e['epoch'];
  if (typeof epoch !== 'string' || epoch.length === 0 || epoch.length > 64) return '"epoch" must be a string of 1-64 characters';
  const offset = e['offset'];
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 1) return '"offset" must be an integer >= 1';
  const ts = e['ts'];
  if (typeof ts !== 'number' || !Number.isFinite(ts) || ts < 0) return '"ts" must be a number of ms since the Unix epoch';
  if (!('data' in e) || e['data'] === undefined) return '"data" is missing';
  // Re-serializing the value (not slicing the text) guarantees the gateway only ever forwards
  // well-formed JSON, whoever wrote the envelope.
  return { channel, epoch, offset, ts, data: JSON.stringify(e['data']) };
}
