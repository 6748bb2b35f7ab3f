/**
 * Envelopes on NATS subjects.
 *
 * - NATS core carries the full envelope
 *   `{"v":1,"channel":"<name>","epoch":"","offset":0,"ts":<ms>,"data":<JSON value>}`; there is no
 *   order across publishers, so epoch and offset are always "" and 0 (whatever a sender wrote).
 * - JetStream stores `{"v":1,"channel":"<name>","ts":<ms>,"data":<JSON value>}`; the stream
 *   assigns the sequence, which becomes the offset, and the epoch comes from the stream.
 *
 * Incoming bytes are decoded defensively: anything malformed is reported and dropped, never
 * delivered, never thrown. The channel inside must be the one the subject names, so nobody can
 * smuggle a publication into another channel by choosing the subject.
 */

/** The envelope version this adapter reads and writes. */
export const ENVELOPE_VERSION = 1;

/** Encodes a NATS core envelope (data is JSON text, spliced in without re-serializing). */
export function encodeCoreEnvelope(channel: string, ts: number, data: string): string {
  return '{"v":1,"channel":' + JSON.stringify(channel) + ',"epoch":"","offset":0,"ts":' + ts + ',"data":' + data + '}';
}

/** Encodes the value JetStream stores for one publication. */
export function encodeStoredEnvelope(channel: string, ts: number, data: string): string {
  return '{"v":1,"channel":' + JSON.stringify(channel) + ',"ts":' + ts + ',"data":' + data + '}';
}

/** What a valid envelope yields: the channel it names, its timestamp and its data as JSON text. */
export interface DecodedEnvelope {
  readonly channel: string;
  readonly ts: number;
  readonly data: string;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes an envelope (either form; `epoch`/`offset` are not read) that arrived for `channel`.
 * Returns the decoded fields, or a string saying why it was rejected.
 */
export function decodeEnvelope(bytes: Uint8Array, channel: string): DecodedEnvelope | string {
  let env: unknown;
  try {
    env = JSON.parse(decoder.decode(bytes));
  } catch {
    return 'not UTF-8 JSON';
  }
  if (typeof env !== 'object' || env === null || Array.isArray(env)) return 'not a JSON object';
  const e = env as Record<string, unknown>;
  if (e['v'] !== ENVELOPE_VERSION) return `unsupported envelope version ${JSON.stringify(e['v'])}`;
  if (e['channel'] !== channel) return 'channel does not match the subject it arrived on';
  const ts = e['ts'];
  if (typeof ts !== 'number' || !Number.isFinite(ts) || ts < 0) return '"ts" must be a number of ms since the Unix epoch';
  if (!('data' in e) || e['data'] === undefined) return '"data" is missing';
  // Re-serializing the value guarantees only well-formed JSON reaches clients.
  return { channel, ts, data: JSON.stringify(e['data']) };
}
