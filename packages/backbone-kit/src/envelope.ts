/**
 * The wire format shared by every adapter, version 1. A publication travels as one JSON object:
 *
 *   {"v":1,"channel":"<name>","epoch":"<e>","offset":<n>,"ts":<ms>,"historySize":<n>,"historyTtlSeconds":<n>,"data":<JSON value>}
 *
 * `v`, `channel` and `data` are always there; `ts` is there except in records an outside publisher
 * wrote to Kafka (the record's own timestamp stands in); `epoch`/`offset` only where the message
 * itself carries the position (Redis; NATS core writes "" and 0); the history fields only where
 * the reader needs the publisher's retention (Kafka). docs/backbones.md ("The envelope") states
 * this for services that publish straight into a backbone.
 *
 * Control messages and fleet records have envelopes of their own (`encodeControl`,
 * `encodeRecord`); they never share a subject, channel or key with publications.
 *
 * Encoding splices the payload in as it came (it was checked as JSON text on the way in), so a
 * publish never pays for a second serialization. Decoding is defensive: whoever wrote the bytes,
 * it never throws, it answers a reason instead, and it re-serializes the payload so only
 * well-formed JSON reaches clients.
 */
import { isValidChannel } from '@gatehouse/protocol';
import type { ControlMessage, ControlRecord } from './contract.js';
import { checkControlMessage, checkRecord } from './validate.js';

/** The envelope version this kit reads and writes. */
export const ENVELOPE_VERSION = 1;

/** What goes into a publication envelope. `data` must already be valid JSON text. */
export interface EnvelopeFields {
  readonly channel: string;
  /** ms since the Unix epoch. */
  readonly ts: number;
  /** The payload as JSON text, spliced in as is. */
  readonly data: string;
  /** Written together with `offset` when the message carries its own position. */
  readonly epoch?: string;
  readonly offset?: number;
  /** Written together with `historyTtlSeconds` when readers need the publisher's retention. */
  readonly historySize?: number;
  readonly historyTtlSeconds?: number;
}

/** A publication envelope that passed every check. */
export interface DecodedEnvelope {
  readonly channel: string;
  /** ms since the Unix epoch (`defaultTs` when the envelope had none and the caller allowed it). */
  readonly ts: number;
  /** The payload, re-serialized: always well-formed JSON text. */
  readonly data: string;
  /** Present only when decoded with `requirePosition`. */
  readonly epoch?: string;
  readonly offset?: number;
  /** The publisher's retention; undefined when the envelope did not say. */
  readonly historySize: number | undefined;
  readonly historyTtlSeconds: number | undefined;
}

/** What a reader demands beyond the common fields. */
export interface DecodeOptions {
  /** Used as `ts` when the envelope has none; without it, a missing `ts` is a reason to drop. */
  readonly defaultTs?: number;
  /**
   * The envelope must carry its position: `epoch` 1-64 characters and `offset` an integer >= 1.
   * Without it `epoch` and `offset` are not read at all (NATS core writes "" and 0; JetStream and
   * Kafka take the position from the stream).
   */
  readonly requirePosition?: boolean;
}

/**
 * The start of an envelope, up to and including the channel, for writers that complete it
 * elsewhere (the Redis publish script adds the position, `ts` and `data` on the server).
 */
export function envelopeHead(channel: string): string {
  return '{"v":1,"channel":' + JSON.stringify(channel);
}

/** Encodes a publication envelope (see the module comment for which fields appear when). */
export function encodeEnvelope(f: EnvelopeFields): string {
  let out = envelopeHead(f.channel);
  if (f.epoch !== undefined || f.offset !== undefined) out += ',"epoch":' + JSON.stringify(f.epoch ?? '') + ',"offset":' + (f.offset ?? 0);
  out += ',"ts":' + f.ts;
  if (f.historySize !== undefined || f.historyTtlSeconds !== undefined) {
    out += ',"historySize":' + (f.historySize ?? 0) + ',"historyTtlSeconds":' + (f.historyTtlSeconds ?? 0);
  }
  return out + ',"data":' + f.data + '}';
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Parses `input` as one JSON object, or says why it is not one. */
function parseObject(input: string | Uint8Array): Record<string, unknown> | string {
  let text: string;
  if (typeof input === 'string') text = input;
  else {
    try {
      text = decoder.decode(input);
    } catch {
      return 'not UTF-8';
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const o = value as Record<string, unknown>;
  if (o['v'] !== ENVELOPE_VERSION) return `unsupported envelope version ${JSON.stringify(o['v']) ?? 'undefined'}`;
  return o;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isTimestamp(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

/**
 * Decodes a publication envelope that arrived where `expectedChannel`'s publications travel (its
 * subject, pub/sub channel or record key). The channel inside must be that one, so nobody can
 * smuggle a publication into another channel by choosing where to write it. Returns the decoded
 * fields, or a string saying why the envelope must be dropped; never throws.
 */
export function decodeEnvelope(input: string | Uint8Array, expectedChannel: string, options: DecodeOptions = {}): DecodedEnvelope | string {
  const e = parseObject(input);
  if (typeof e === 'string') return e;
  if (e['channel'] !== expectedChannel) return '"channel" does not match where the envelope arrived';
  if (!isValidChannel(expectedChannel)) return '"channel" is not a valid channel name';
  if (!('data' in e) || e['data'] === undefined) return '"data" is missing';
  let ts = e['ts'];
  if (ts === undefined && options.defaultTs !== undefined) ts = options.defaultTs;
  if (!isTimestamp(ts)) return '"ts" must be a number of ms since the Unix epoch';
  const historySize = e['historySize'];
  if (historySize !== undefined && !isCount(historySize)) return '"historySize" must be an integer >= 0';
  const historyTtlSeconds = e['historyTtlSeconds'];
  if (historyTtlSeconds !== undefined && !isCount(historyTtlSeconds)) return '"historyTtlSeconds" must be an integer >= 0';
  // Re-serializing the value (not slicing the text) means only well-formed JSON is forwarded.
  const decoded = { channel: expectedChannel, ts, data: JSON.stringify(e['data']), historySize, historyTtlSeconds };
  if (!options.requirePosition) return decoded;
  const epoch = e['epoch'];
  if (typeof epoch !== 'string' || epoch.length === 0 || epoch.length > 64) return '"epoch" must be a string of 1-64 characters';
  const offset = e['offset'];
  if (!isCount(offset) || offset < 1) return '"offset" must be an integer >= 1';
  return { ...decoded, epoch, offset };
}

/** Encodes a control message for the wire. `msg` must have passed `checkControlMessage`. */
export function encodeControl(msg: ControlMessage): string {
  let out = '{"v":1,"type":' + JSON.stringify(msg.type) + ',"from":' + JSON.stringify(msg.from);
  if (msg.to !== undefined) out += ',"to":' + JSON.stringify(msg.to);
  return out + ',"data":' + msg.data + '}';
}

/** A checker's message without its class, for a reason string. */
function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Decodes a control message from the wire: the same rules `checkControlMessage` applies to a
 * sender. Returns the message (its data re-serialized) or a reason; never throws.
 */
export function decodeControl(input: string | Uint8Array): ControlMessage | string {
  const o = parseObject(input);
  if (typeof o === 'string') return o;
  if (!('data' in o) || o['data'] === undefined) return '"data" is missing';
  const msg: ControlMessage =
    o['to'] === undefined
      ? { type: o['type'] as string, from: o['from'] as string, data: JSON.stringify(o['data']) }
      : { type: o['type'] as string, from: o['from'] as string, to: o['to'] as string, data: JSON.stringify(o['data']) };
  try {
    checkControlMessage(msg);
  } catch (err) {
    return reasonOf(err);
  }
  return msg;
}

/** Encodes a fleet record for storage. `record` must have passed `checkRecord`. */
export function encodeRecord(record: ControlRecord): string {
  return '{"v":1,"key":' + JSON.stringify(record.key) + ',"expiresAt":' + record.expiresAt + ',"value":' + record.value + '}';
}

/**
 * Decodes a stored fleet record of `kind`: the same rules `checkRecord` applies to a writer.
 * Returns the record (its value re-serialized) or a reason; never throws.
 */
export function decodeRecord(kind: string, input: string | Uint8Array): ControlRecord | string {
  const o = parseObject(input);
  if (typeof o === 'string') return o;
  if (!('value' in o) || o['value'] === undefined) return '"value" is missing';
  const record: ControlRecord = { key: o['key'] as string, value: JSON.stringify(o['value']), expiresAt: o['expiresAt'] as number };
  try {
    checkRecord(kind, record);
  } catch (err) {
    return reasonOf(err);
  }
  return record;
}
