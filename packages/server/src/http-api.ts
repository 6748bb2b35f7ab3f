/**
 * The HTTP publish API: `POST /api/publish` and `POST /api/broadcast`, authenticated with
 * `Authorization: apikey <key>`. Every error is JSON `{"error":{"code","message"}}` with a stable
 * code, and nothing is published unless the whole request is valid.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERROR_HTTP_STATUS, isValidChannel, matchAny, namespaceOf } from '@gatehouse/protocol';
import type { ErrorCode } from '@gatehouse/protocol';
import type { ApiKey } from './options.js';

/** An error the API answers with; `code` decides the HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** Writes a JSON response. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** Writes an error response. */
export function sendError(res: ServerResponse, err: ApiError): void {
  const headers: Record<string, string> = {};
  if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(err.retryAfterSeconds);
  // The rest of an oversized body is never read, so this connection cannot carry another request.
  if (err.code === 'payload_too_large') headers['connection'] = 'close';
  sendJson(res, ERROR_HTTP_STATUS[err.code], { error: { code: err.code, message: err.message } }, headers);
}

/** Reads a request body up to `limit` bytes; larger bodies are refused before they are buffered. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new ApiError('payload_too_large', `body is ${declared} bytes; the limit is ${limit}`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        chunks.length = 0;
        reject(new ApiError('payload_too_large', `body is larger than the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (err) => {
      if (!done) reject(err);
      done = true;
    });
  });
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Checks `Authorization: apikey <key>` in constant time per configured key. */
export class ApiKeys {
  private readonly keys: { digest: Buffer; channels: string[] | undefined }[];

  constructor(keys: ApiKey[]) {
    this.keys = keys.map((k) => ({ digest: digest(k.key), channels: k.channels }));
  }

  /** The channel patterns of the presented key (undefined: all), or throws 401. */
  authenticate(header: string | undefined): string[] | undefined {
    if (this.keys.length === 0) throw new ApiError('unauthorized', 'the publish API is disabled: no API key is configured');
    const m = header ? /^apikey\s+(\S{1,512})$/i.exec(header) : null;
    if (!m) throw new ApiError('unauthorized', 'send "Authorization: apikey <key>"');
    const presented = digest(m[1] as string);
    let found: { channels: string[] | undefined } | undefined;
    for (const k of this.keys) if (timingSafeEqual(k.digest, presented)) found = k;
    if (!found) throw new ApiError('unauthorized', 'API key is not valid');
    return found.channels;
  }
}

/** A validated publish request. */
export interface PublishRequest {
  channels: string[];
  /** The data as JSON text, serialized once. */
  data: string;
  /** A retry with the same key (per channel) inside the window publishes nothing (idempotency.ts). */
  idempotencyKey?: string;
}

type Obj = Record<string, unknown>;

/**
 * Parses and validates a publish or broadcast body. Checks every channel (name, namespace, key
 * permission) before anything is published.
 */
export function parsePublishBody(
  body: Buffer,
  broadcast: boolean,
  knownNamespace: (ns: string) => boolean,
  allowed: string[] | undefined,
  maxChannels: number,
): PublishRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ApiError('bad_request', 'body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ApiError('bad_request', 'body must be a JSON object');
  }
  const o = parsed as Obj;
  if (!('data' in o) || o['data'] === undefined) throw new ApiError('bad_request', '"data" is required');
  let channels: unknown[];
  if (broadcast) {
    if (!Array.isArray(o['channels']) || o['channels'].length === 0) {
      throw new ApiError('bad_request', '"channels" must be a non-empty list');
    }
    if (o['channels'].length > maxChannels) {
      throw new ApiError('bad_request', `"channels" may hold at most ${maxChannels} channels`);
    }
    channels = o['channels'];
  } else {
    if (typeof o['channel'] !== 'string') throw new ApiError('bad_request', '"channel" must be a string');
    channels = [o['channel']];
  }
  for (const ch of channels) {
    if (!isValidChannel(ch)) {
      throw new ApiError('invalid_channel', `channel ${JSON.stringify(ch).slice(0, 80)} must look like "namespace:name"`);
    }
    if (!knownNamespace(namespaceOf(ch))) {
      throw new ApiError('unknown_namespace', `namespace "${namespaceOf(ch)}" is not configured`);
    }
    if (allowed && !matchAny(allowed, ch)) {
      throw new ApiError('forbidden', `this API key may not publish to "${ch}"`);
    }
  }
  let data: string;
  try {
    data = JSON.stringify(o['data']);
  } catch {
    // JSON.parse accepts nesting that JSON.stringify overflows the stack on (abuse case 30).
    throw new ApiError('bad_request', '"data" is nested too deeply');
  }
  const key = o['idempotencyKey'];
  if (key !== undefined && (typeof key !== 'string' || key.length === 0 || key.length > 256)) {
    throw new ApiError('bad_request', '"idempotencyKey" must be a string of 1-256 characters');
  }
  const request: PublishRequest = { channels: [...new Set(channels as string[])], data };
  if (key !== undefined) request.idempotencyKey = key;
  return request;
}
