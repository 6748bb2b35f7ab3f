/**
 * Input checks every adapter runs before it touches the wire, in one place so a bad call gets the
 * same precise error from every backbone and the conformance suite can hold them all to it.
 * Each check throws `BackboneInputError`; none of them ever sees the network.
 */
import { isValidChannel, MAX_CHANNEL_LENGTH } from '@gatehouse/protocol';
import { CONTROL_MAX_BYTES, type ControlMessage, type ControlRecord, type PublishOptions } from './contract.js';

/** What was wrong with the input; stable, so callers and metrics can branch on it. */
export type BackboneInputCode =
  'invalid_channel' | 'invalid_data' | 'data_too_large' | 'invalid_publish_options' | 'invalid_control' | 'invalid_record';

/**
 * A call to a backbone with input it can never accept (retrying will not help). It is a
 * `TypeError`, as adapters threw before this class existed, with a stable `code`.
 */
export class BackboneInputError extends TypeError {
  override readonly name = 'BackboneInputError';
  constructor(
    /** Stable reason. */
    readonly code: BackboneInputCode,
    message: string,
  ) {
    super(message);
  }
}

/** Control message types and record kinds: 1-64 characters of a-z 0-9 . _ - */
const NAME_RE = /^[a-z0-9._-]{1,64}$/;
/** Node ids, the rule the gateway's `nodeId` option enforces. */
const NODE_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
/** Control characters and lone surrogates (which cannot be written as UTF-8). */
const UNPRINTABLE_RE = /[\u0000-\u001f\u007f]|\p{Surrogate}/u;
/** Longest record key, characters. */
export const RECORD_KEY_MAX_LENGTH = 256;

/** A short, safe rendering of a bad value for an error message. */
function show(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Whether `id` is a valid node id (1-64 characters of A-Z a-z 0-9 _ . -). */
export function isValidNodeId(id: unknown): id is string {
  return typeof id === 'string' && NODE_ID_RE.test(id);
}

/** Throws unless `channel` is a valid channel name (the protocol's rule). */
export function checkChannel(channel: unknown): asserts channel is string {
  if (!isValidChannel(channel)) {
    throw new BackboneInputError(
      'invalid_channel',
      `invalid channel name ${show(channel)}: must look like "namespace:name" (letters, digits, _-.:@=/+; at most ${MAX_CHANNEL_LENGTH} characters)`,
    );
  }
}

/**
 * Throws unless `text` is JSON text of at most `maxBytes` UTF-8 bytes. `what` names it in the
 * message ("publish data", "control data").
 */
function checkJsonText(
  text: unknown,
  what: string,
  maxBytes: number,
  code: BackboneInputCode,
  tooLarge: BackboneInputCode,
): asserts text is string {
  if (typeof text !== 'string') throw new BackboneInputError(code, `${what} must be JSON text (a string), got ${typeof text}`);
  if (text.length === 0) throw new BackboneInputError(code, `${what} is empty; it must be JSON text`);
  // text.length is a lower bound of the byte length: skip counting bytes when it already fails.
  const bytes = text.length > maxBytes ? text.length : Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) throw new BackboneInputError(tooLarge, `${what} has at least ${bytes} bytes, more than the ${maxBytes} allowed`);
  try {
    JSON.parse(text);
  } catch {
    // Delivering it would fail on every receiver; refuse it where the caller can see why.
    throw new BackboneInputError(code, `${what} is not valid JSON text`);
  }
}

/**
 * Throws unless `data` is a publication payload: non-empty JSON text (any JSON value) that
 * parses. Size: the kit puts no limit of its own (the gateway caps payloads with
 * `maxPayloadBytes` before it publishes); an adapter passes `maxBytes` when its transport has a
 * ceiling (Kafka's `maxMessageBytes`), counted in UTF-8 bytes of `data` alone.
 */
export function checkPublishData(data: unknown, maxBytes = Number.POSITIVE_INFINITY): asserts data is string {
  checkJsonText(data, 'publish data', maxBytes, 'invalid_data', 'data_too_large');
}

/** Throws unless `options` carries integer `historySize` and `historyTtlSeconds`, both >= 0. */
export function checkPublishOptions(options: unknown): asserts options is PublishOptions {
  const o = options as Partial<PublishOptions> | null | undefined;
  for (const field of ['historySize', 'historyTtlSeconds'] as const) {
    const v = o?.[field];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw new BackboneInputError('invalid_publish_options', `publish option ${field} must be an integer >= 0, got ${show(v)}`);
    }
  }
}

/** Throws unless `msg` is a control message the contract allows (see `ControlMessage`). */
export function checkControlMessage(msg: unknown): asserts msg is ControlMessage {
  if (typeof msg !== 'object' || msg === null) throw new BackboneInputError('invalid_control', 'control message must be an object');
  const m = msg as Record<string, unknown>;
  if (typeof m['type'] !== 'string' || !NAME_RE.test(m['type'])) {
    throw new BackboneInputError('invalid_control', `control message type ${show(m['type'])} must be 1-64 characters of a-z 0-9 . _ -`);
  }
  if (!isValidNodeId(m['from'])) {
    throw new BackboneInputError(
      'invalid_control',
      `control message from ${show(m['from'])} must be a node id (1-64 characters of A-Z a-z 0-9 _ . -)`,
    );
  }
  if (m['to'] !== undefined && !isValidNodeId(m['to'])) {
    throw new BackboneInputError(
      'invalid_control',
      `control message to ${show(m['to'])} must be absent or a node id (1-64 characters of A-Z a-z 0-9 _ . -)`,
    );
  }
  checkJsonText(m['data'], 'control message data', CONTROL_MAX_BYTES, 'invalid_control', 'data_too_large');
}

/** Throws unless `kind` is a record kind (1-64 characters of a-z 0-9 . _ -). */
export function checkRecordKind(kind: unknown): asserts kind is string {
  if (typeof kind !== 'string' || !NAME_RE.test(kind)) {
    throw new BackboneInputError('invalid_record', `record kind ${show(kind)} must be 1-64 characters of a-z 0-9 . _ -`);
  }
}

/** Throws unless `kind` and `record` are what `putRecord` accepts (see `ControlRecord`). */
export function checkRecord(kind: unknown, record: unknown): asserts record is ControlRecord {
  checkRecordKind(kind);
  if (typeof record !== 'object' || record === null) throw new BackboneInputError('invalid_record', 'record must be an object');
  const r = record as Record<string, unknown>;
  const key = r['key'];
  if (typeof key !== 'string' || key.length === 0 || key.length > RECORD_KEY_MAX_LENGTH || UNPRINTABLE_RE.test(key)) {
    throw new BackboneInputError(
      'invalid_record',
      `record key ${show(key)} must be 1-${RECORD_KEY_MAX_LENGTH} characters without control characters or lone surrogates`,
    );
  }
  checkJsonText(r['value'], 'record value', CONTROL_MAX_BYTES, 'invalid_record', 'data_too_large');
  const expiresAt = r['expiresAt'];
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt) || expiresAt < 0) {
    throw new BackboneInputError(
      'invalid_record',
      `record expiresAt ${show(expiresAt)} must be ms since the Unix epoch (a finite number >= 0)`,
    );
  }
}
