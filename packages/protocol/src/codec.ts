/**
 * Decoding validates every field a peer sends and never trusts shape: a frame is either a fully
 * typed value or a `DecodeError` with a stable code and a message that names the field.
 * Encoding of the hot frames (`pub`) is string concatenation around pre-serialized data, so a
 * publication is serialized once however many subscribers receive it.
 */
import type { ClientFrame, ErrorCode, ServerFrame, StreamPosition, PubFrame } from './frames.js';

/** Why a frame could not be decoded. */
export class DecodeError extends Error {
  override readonly name = 'DecodeError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The request id, when the frame carried a readable one (so the error can be a reply). */
    readonly id?: number,
  ) {
    super(message);
  }
}

/** Channel names: `namespace:rest`, at most 255 characters, from a conservative alphabet. */
export const MAX_CHANNEL_LENGTH = 255;
// The namespace is at most 64 characters; the whole name, namespace included, at most 255.
const CHANNEL_RE = /^[A-Za-z0-9_-]{1,64}:[A-Za-z0-9_.:@=/+-]+$/;

/** True when `name` is a valid channel name. */
export function isValidChannel(name: unknown): name is string {
  return typeof name === 'string' && name.length <= MAX_CHANNEL_LENGTH && CHANNEL_RE.test(name);
}

/** The namespace part of a valid channel name. */
export function namespaceOf(channel: string): string {
  return channel.slice(0, channel.indexOf(':'));
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isRequestId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

function isOffset(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function readId(f: Obj): number {
  const id = f['id'];
  if (!isRequestId(id)) throw new DecodeError('bad_request', '"id" must be a positive integer');
  return id;
}

function readChannel(f: Obj, id: number): string {
  const ch = f['channel'];
  if (typeof ch !== 'string') throw new DecodeError('bad_request', '"channel" must be a string', id);
  if (!isValidChannel(ch)) {
    throw new DecodeError(
      'invalid_channel',
      'channel must look like "namespace:name" (at most 255 characters; namespace up to 64 of letters, digits, _-; name of letters, digits, _-.:@=/+)',
      id,
    );
  }
  return ch;
}

function readPosition(v: unknown, id: number): StreamPosition {
  if (!isObject(v) || typeof v['epoch'] !== 'string' || v['epoch'].length > 64 || !isOffset(v['offset'])) {
    throw new DecodeError('bad_request', '"since" must be {"epoch": string, "offset": integer >= 0}', id);
  }
  return { epoch: v['epoch'], offset: v['offset'] };
}

function readToken(f: Obj, id: number, required: boolean): string | undefined {
  const t = f['token'];
  if (t === undefined && !required) return undefined;
  if (typeof t !== 'string' || t.length === 0 || t.length > 8192) {
    throw new DecodeError('bad_request', '"token" must be a non-empty string of at most 8192 characters', id);
  }
  return t;
}

/**
 * Decodes one client frame from a text message. Throws `DecodeError` for anything that is not a
 * well-formed v1 frame; never returns a partially checked value.
 */
export function decodeClientFrame(text: string): ClientFrame {
  let f: unknown;
  try {
    f = JSON.parse(text);
  } catch {
    throw new DecodeError('bad_request', 'frame is not valid JSON');
  }
  if (!isObject(f)) throw new DecodeError('bad_request', 'frame must be a JSON object');
  const op = f['op'];
  if (op === 'pong') return { op: 'pong' };
  // The id is echoed in any error it can be read for, an invalid op's included.
  if (typeof op !== 'string') throw new DecodeError('bad_request', '"op" must be a string', isRequestId(f['id']) ? f['id'] : undefined);
  const id = readId(f);
  switch (op) {
    case 'connect': {
      const v = f['v'];
      if (!isRequestId(v)) throw new DecodeError('bad_request', '"v" must be a positive integer', id);
      const frame: ClientFrame = { op, id, v };
      const token = readToken(f, id, false);
      if (token !== undefined) frame.token = token;
      if (f['reconnect'] === true) frame.reconnect = true;
      return frame;
    }
    case 'subscribe': {
      const channel = readChannel(f, id);
      const since = f['since'];
      return since === undefined ? { op, id, channel } : { op, id, channel, since: readPosition(since, id) };
    }
    case 'unsubscribe':
      return { op, id, channel: readChannel(f, id) };
    case 'publish': {
      const channel = readChannel(f, id);
      if (!('data' in f) || f['data'] === undefined) throw new DecodeError('bad_request', '"data" is required', id);
      return { op, id, channel, data: f['data'] };
    }
    case 'refresh':
      return { op, id, token: readToken(f, id, true) as string };
    case 'presence':
    case 'presence_stats':
      return { op, id, channel: readChannel(f, id) };
    default:
      throw new DecodeError('unknown_op', `unknown op "${op.slice(0, 32)}"`, id);
  }
}

/** Encodes a client frame (used by the SDK). */
export function encodeClientFrame(frame: ClientFrame): string {
  return JSON.stringify(frame);
}

/** Encodes a server frame. For `pub` frames on the hot path use `encodePub`. */
export function encodeServerFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

/**
 * Encodes a `pub` frame around data that is already JSON text, so the payload is never parsed or
 * serialized again on the way out. `dataJson` must be valid JSON (the server guarantees it).
 */
export function encodePub(channel: string, epoch: string, offset: number, ts: number, dataJson: string): string {
  return (
    '{"op":"pub","channel":' +
    JSON.stringify(channel) +
    ',"epoch":' +
    JSON.stringify(epoch) +
    ',"offset":' +
    offset +
    ',"ts":' +
    ts +
    ',"data":' +
    dataJson +
    '}'
  );
}

/** Decodes a server frame (used by the SDK). Throws `DecodeError` on anything malformed. */
export function decodeServerFrame(text: string): ServerFrame {
  let f: unknown;
  try {
    f = JSON.parse(text);
  } catch {
    throw new DecodeError('bad_request', 'server frame is not valid JSON');
  }
  if (!isObject(f) || typeof f['op'] !== 'string') throw new DecodeError('bad_request', 'server frame has no op');
  switch (f['op']) {
    case 'pub': {
      if (typeof f['channel'] !== 'string' || typeof f['epoch'] !== 'string' || !isOffset(f['offset'])) {
        throw new DecodeError('bad_request', 'malformed pub frame');
      }
      return f as unknown as PubFrame;
    }
    case 'connected':
    case 'subscribed':
    case 'published':
    case 'ok':
    case 'error':
    case 'ping':
    case 'refresh':
    case 'gap':
    case 'presence':
    case 'presence_stats':
    case 'join':
    case 'leave':
      return f as unknown as ServerFrame;
    case 'server_subscribed':
    case 'server_unsubscribed':
      if (!isValidChannel(f['channel'])) throw new DecodeError('bad_request', `malformed ${f['op']} frame`);
      if (f['op'] === 'server_subscribed' && (typeof f['epoch'] !== 'string' || !isOffset(f['offset']))) {
        throw new DecodeError('bad_request', 'malformed server_subscribed frame');
      }
      return f as unknown as ServerFrame;
    default:
      throw new DecodeError('unknown_op', `unknown server op "${String(f['op']).slice(0, 32)}"`);
  }
}
