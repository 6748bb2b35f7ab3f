/**
 * Publishes through a gateway's HTTP API (`POST /api/publish`, `POST /api/broadcast`) with the
 * global fetch, and makes the rest of the server API's calls (history, channels, disconnect,
 * server-side subscribe, info, drain; docs/api.md). Refusals the server marks as temporary (429, 5xx) and network failures are
 * retried with jittered exponential backoff, never sooner than the server's Retry-After.
 */
import { isValidChannel, type ErrorCode, type PresenceInfo, type StreamPosition } from '@gatehouse/protocol';
import { PublishError } from './errors.js';
import type { BroadcastResult, Publisher } from './publisher.js';
import type {
  ChannelsResult,
  DisconnectResult,
  DrainResult,
  SubscribeResult,
  UnsubscribeResult,
  HistoryOptions,
  HistoryResult,
  InfoResult,
  PublishOptions,
  Target,
} from './api-types.js';

/** Options for `new HttpPublisher(options)`. */
export interface HttpPublisherOptions {
  /** Base URL of the gateway, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  url: string;
  /** The API key, sent as `Authorization: apikey <key>`. */
  apiKey: string;
  /** Deadline per attempt, response body included. Default 5000. */
  timeoutMs?: number;
  /** Attempts after the first, for network errors, timeouts, 429 and 5xx. Default 2. */
  retries?: number;
  /** Retry backoff: attempt n waits uniformly between minMs and min(maxMs, minMs * 2^(n+1)). */
  backoff?: { minMs?: number; maxMs?: number };
  /** A Retry-After longer than this is not waited for: the call rejects at once. Default 30000. */
  maxRetryAfterMs?: number;
  /** The fetch to use. Default: the global fetch (Node >= 20). */
  fetch?: typeof fetch;
  /** Randomness in [0, 1) for jitter. Default Math.random. */
  random?: () => number;
}

/** The defaults, in one place. */
export const HTTP_PUBLISHER_DEFAULTS = {
  timeoutMs: 5_000,
  retries: 2,
  backoff: { minMs: 100, maxMs: 5_000 },
  maxRetryAfterMs: 30_000,
} as const;

/** Responses larger than this are refused: the API's answers are small. */
const MAX_RESPONSE_BYTES = 1 << 20;
const MAX_DELAY_MS = 2_147_483_647;

interface Resolved {
  base: URL;
  authorization: string;
  timeoutMs: number;
  retries: number;
  minMs: number;
  maxMs: number;
  maxRetryAfterMs: number;
  fetch: typeof fetch;
  random: () => number;
}

function ms(name: string, v: unknown, fallback: number, min: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > MAX_DELAY_MS) {
    throw new TypeError(`options.${name} must be a number of milliseconds from ${min} to ${MAX_DELAY_MS}, got ${String(v)}`);
  }
  return v;
}

function resolve(o: HttpPublisherOptions): Resolved {
  if (typeof o !== 'object' || o === null) throw new TypeError('options must be an object');
  let base: URL;
  try {
    base = new URL(o.url);
  } catch {
    throw new TypeError(`options.url must be an absolute http:// or https:// URL, got ${JSON.stringify(o.url)}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new TypeError(`options.url must use http:// or https://, got ${base.protocol}`);
  }
  if (base.username || base.password) throw new TypeError('options.url must not carry credentials; pass the key as options.apiKey');
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  if (typeof o.apiKey !== 'string' || o.apiKey.length === 0 || /[\r\n]/.test(o.apiKey)) {
    throw new TypeError('options.apiKey must be a non-empty string without line breaks');
  }
  const retries = o.retries ?? HTTP_PUBLISHER_DEFAULTS.retries;
  if (!Number.isSafeInteger(retries) || retries < 0 || retries > 100) {
    throw new TypeError(`options.retries must be an integer from 0 to 100, got ${String(retries)}`);
  }
  const b = o.backoff ?? {};
  const minMs = ms('backoff.minMs', b.minMs, HTTP_PUBLISHER_DEFAULTS.backoff.minMs, 1);
  const maxMs = ms('backoff.maxMs', b.maxMs, Math.max(HTTP_PUBLISHER_DEFAULTS.backoff.maxMs, minMs), 1);
  if (maxMs < minMs) throw new TypeError(`options.backoff.maxMs (${maxMs}) must be at least options.backoff.minMs (${minMs})`);
  const fetchImpl = o.fetch ?? globalThis.fetch;
  if (typeof fetchImpl !== 'function') throw new TypeError('no fetch available: pass options.fetch or use Node >= 20');
  const random = o.random ?? Math.random;
  if (typeof random !== 'function') throw new TypeError('options.random must be a function returning a number in [0, 1)');
  return {
    base,
    authorization: `apikey ${o.apiKey}`,
    timeoutMs: ms('timeoutMs', o.timeoutMs, HTTP_PUBLISHER_DEFAULTS.timeoutMs, 1),
    retries,
    minMs,
    maxMs,
    maxRetryAfterMs: ms('maxRetryAfterMs', o.maxRetryAfterMs, HTTP_PUBLISHER_DEFAULTS.maxRetryAfterMs, 0),
    fetch: fetchImpl,
    random,
  };
}

/**
 * Publishes through the gateway's HTTP API. Retries may deliver a publication twice when an
 * earlier attempt reached the server but its answer was lost (network error, timeout, 5xx);
 * pass an `idempotencyKey` (the gateway then publishes once per key), or set `retries: 0`.
 */
export class HttpPublisher implements Publisher {
  readonly #o: Resolved;
  #closed = false;
  readonly #inflight = new Set<AbortController>();
  readonly #sleeping = new Set<() => void>();

  /** Throws a TypeError naming the field when an option is missing or contradictory. */
  constructor(options: HttpPublisherOptions) {
    this.#o = resolve(options);
  }

  /** Publishes `data` to `channel` with `POST /api/publish` (with an idempotency key, at most once). */
  async publish(channel: string, data: unknown, options: PublishOptions = {}): Promise<StreamPosition> {
    if (!isValidChannel(channel))
      throw new PublishError('invalid_channel', `invalid channel ${JSON.stringify(channel)}: expected "namespace:name"`);
    const body = serialize({ channel, data, ...keyOf(options) }, data);
    const json = await this.#post('api/publish', body);
    if (!isPosition(json)) throw new PublishError('bad_response', 'publish answer lacks {"epoch": string, "offset": integer}');
    return { epoch: json.epoch, offset: json.offset };
  }

  /** Publishes `data` to every channel in `channels` with `POST /api/broadcast`. */
  async broadcast(channels: readonly string[], data: unknown, options: PublishOptions = {}): Promise<BroadcastResult[]> {
    if (!Array.isArray(channels) || channels.length === 0) throw new PublishError('bad_request', 'channels must be a non-empty array');
    const invalid = channels.find((c) => !isValidChannel(c));
    if (invalid !== undefined)
      throw new PublishError('invalid_channel', `invalid channel ${JSON.stringify(invalid)}: expected "namespace:name"`);
    const body = serialize({ channels, data, ...keyOf(options) }, data);
    const json = await this.#post('api/broadcast', body);
    const results = isObject(json) ? json['results'] : undefined;
    if (!Array.isArray(results) || results.length !== channels.length || !results.every(isBroadcastResult)) {
      throw new PublishError(
        'bad_response',
        'broadcast answer lacks one {"channel", "epoch", "offset"} or {"channel", "error"} per channel',
      );
    }
    return results;
  }

  /** `POST /api/history`: the channel's publications with their positions. */
  async history(channel: string, options: HistoryOptions = {}): Promise<HistoryResult> {
    return this.#call<HistoryResult>('history', { channel, ...options });
  }

  /** `POST /api/channels`: channels with subscribers anywhere in the fleet, most subscribers first. */
  async channels(options: { pattern?: string; limit?: number } = {}): Promise<ChannelsResult> {
    return this.#call<ChannelsResult>('channels', options);
  }

  /** `POST /api/disconnect`: closes a user's (or one client's) connections on every node; `reconnect` picks 4202 over 4006. */
  async disconnect(target: Target & { reconnect?: boolean; reason?: string }): Promise<DisconnectResult> {
    return this.#call<DisconnectResult>('disconnect', target);
  }

  /** `POST /api/subscribe`: subscribes a user's (or one client's) live connections to `channel`. */
  async subscribe(target: Target, channel: string): Promise<SubscribeResult> {
    return this.#call<SubscribeResult>('subscribe', { ...target, channel });
  }

  /** `POST /api/unsubscribe`: ends a user's (or one client's) subscription to `channel`. */
  async unsubscribe(target: Target, channel: string): Promise<UnsubscribeResult> {
    return this.#call<UnsubscribeResult>('unsubscribe', { ...target, channel });
  }

  /** `POST /api/info`: every node with its figures (and its `slowest` connections when asked). */
  async info(options: { slowest?: number } = {}): Promise<InfoResult> {
    return this.#call<InfoResult>('info', options);
  }

  /** `POST /api/drain`: starts a drain of the node named `node`. */
  async drain(node: string): Promise<DrainResult> {
    return this.#call<DrainResult>('drain', { node });
  }

  async #call<T>(name: string, body: object): Promise<T> {
    const json = await this.#post(`api/${name}`, JSON.stringify(body));
    if (!isObject(json)) throw new PublishError('bad_response', `${name} answer is not a JSON object`);
    return json as T;
  }

  /**
   * The members of a presence channel across the fleet (`POST /api/presence`): each connection's
   * id, user id and token `info`.
   */
  async presence(channel: string): Promise<PresenceInfo[]> {
    const json = await this.#presence('api/presence', channel);
    const members = json['members'];
    if (!Array.isArray(members)) throw new PublishError('bad_response', 'presence answer lacks "members"');
    return members as PresenceInfo[];
  }

  /** Connections and distinct users in a presence channel across the fleet (`POST /api/presence_stats`). */
  async presenceStats(channel: string): Promise<{ clients: number; users: number }> {
    const json = await this.#presence('api/presence_stats', channel);
    if (typeof json['clients'] !== 'number' || typeof json['users'] !== 'number') {
      throw new PublishError('bad_response', 'presence_stats answer lacks "clients" and "users"');
    }
    return { clients: json['clients'], users: json['users'] };
  }

  async #presence(path: string, channel: string): Promise<Record<string, unknown>> {
    if (!isValidChannel(channel))
      throw new PublishError('invalid_channel', `invalid channel ${JSON.stringify(channel)}: expected "namespace:name"`);
    const json = await this.#post(path, JSON.stringify({ channel }));
    if (!isObject(json)) throw new PublishError('bad_response', `${path} answer is not an object`);
    return json;
  }

  /** Aborts requests in flight and pending retries; later calls reject with code 'closed'. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const c of this.#inflight) c.abort();
    for (const wake of this.#sleeping) wake();
  }

  async #post(path: string, body: string): Promise<unknown> {
    const url = new URL(path, this.#o.base);
    for (let attempt = 0; ; attempt++) {
      if (this.#closed) throw new PublishError('closed', 'the publisher is closed', { attempts: attempt });
      const outcome = await this.#once(url, body, attempt + 1);
      if (outcome.ok) return outcome.json;
      const { error, retryable } = outcome;
      if (!retryable || attempt >= this.#o.retries) throw error;
      const hint = error.retryAfterMs;
      if (hint !== undefined && hint > this.#o.maxRetryAfterMs) throw error;
      await this.#sleep(Math.max(this.#delay(attempt), hint ?? 0));
    }
  }

  async #once(
    url: URL,
    body: string,
    attempts: number,
  ): Promise<{ ok: true; json: unknown } | { ok: false; error: PublishError; retryable: boolean }> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.#o.timeoutMs);
    this.#inflight.add(controller);
    let status: number | undefined;
    try {
      const res = await this.#o.fetch(url, {
        method: 'POST',
        headers: { authorization: this.#o.authorization, 'content-type': 'application/json', accept: 'application/json' },
        body,
        signal: controller.signal,
      });
      status = res.status;
      const text = await readLimited(res, MAX_RESPONSE_BYTES);
      if (res.ok) {
        try {
          return { ok: true, json: JSON.parse(text) };
        } catch {
          return {
            ok: false,
            retryable: false,
            error: new PublishError('bad_response', `HTTP ${res.status} with a body that is not JSON`, { status, attempts }),
          };
        }
      }
      const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
      const { code, message } = readApiError(text, res.status);
      return {
        ok: false,
        retryable: res.status === 429 || res.status >= 500,
        error: new PublishError(code, message, retryAfterMs === undefined ? { status, attempts } : { status, attempts, retryAfterMs }),
      };
    } catch (err) {
      if (err instanceof PublishError) return { ok: false, retryable: false, error: err };
      if (this.#closed)
        return {
          ok: false,
          retryable: false,
          error: new PublishError('closed', 'the publisher was closed during the request', { attempts }),
        };
      if (timedOut) {
        return {
          ok: false,
          retryable: true,
          error: new PublishError(
            'timeout',
            `no complete answer from ${url.origin} within ${this.#o.timeoutMs} ms`,
            status === undefined ? { attempts } : { status, attempts },
          ),
        };
      }
      return {
        ok: false,
        retryable: true,
        error: new PublishError('network', `request to ${url.origin} failed: ${causeMessage(err)}`, { attempts, cause: err }),
      };
    } finally {
      clearTimeout(timer);
      this.#inflight.delete(controller);
    }
  }

  #delay(attempt: number): number {
    const window = Math.min(this.#o.maxMs, this.#o.minMs * 2 ** (attempt + 1));
    const r = this.#o.random();
    const u = Number.isFinite(r) ? Math.min(1, Math.max(0, r)) : 0;
    return Math.round(this.#o.minMs + u * (window - this.#o.minMs));
  }

  /** Waits `ms`, cut short by close() (the next loop turn then rejects with 'closed'). */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#sleeping.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleeping.add(wake);
    });
  }
}

function keyOf(options: PublishOptions): { idempotencyKey?: string } {
  const key = options?.idempotencyKey;
  if (key === undefined) return {};
  if (typeof key !== 'string' || key.length === 0 || key.length > 256) {
    throw new PublishError('bad_request', 'options.idempotencyKey must be a string of 1-256 characters');
  }
  return { idempotencyKey: key };
}

function serialize(body: object, data: unknown): string {
  if (data === undefined) throw new PublishError('bad_request', 'data must be a JSON value, not undefined');
  let text: string | undefined;
  try {
    text = JSON.stringify(body);
  } catch (err) {
    throw new PublishError('bad_request', `data cannot be serialized as JSON: ${causeMessage(err)}`, { cause: err });
  }
  // JSON.stringify silently drops functions and symbols inside an object.
  if (JSON.stringify(data) === undefined) throw new PublishError('bad_request', 'data must be a JSON value (not a function or symbol)');
  return text;
}

/** Reads a response body as text, refusing more than `limit` bytes. */
async function readLimited(res: Response, limit: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new PublishError('bad_response', `response body above ${limit} bytes`, { status: res.status });
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

/** Retry-After as delta-seconds or an HTTP date, in ms from now. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d{1,9}$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function readApiError(text: string, status: number): { code: ErrorCode | 'bad_response'; message: string } {
  try {
    const body: unknown = JSON.parse(text);
    const e = isObject(body) ? body['error'] : undefined;
    if (isObject(e) && typeof e['code'] === 'string' && typeof e['message'] === 'string') {
      return { code: e['code'] as ErrorCode, message: e['message'] };
    }
  } catch {
    // Not the API's JSON: a proxy in between answered.
  }
  return { code: 'bad_response', message: `HTTP ${status} without a Gatehouse error body: ${JSON.stringify(text.slice(0, 200))}` };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isPosition(v: unknown): v is StreamPosition {
  return (
    isObject(v) &&
    typeof v['epoch'] === 'string' &&
    typeof v['offset'] === 'number' &&
    Number.isSafeInteger(v['offset']) &&
    v['offset'] >= 0
  );
}

function isBroadcastResult(v: unknown): v is BroadcastResult {
  if (!isObject(v) || typeof v['channel'] !== 'string') return false;
  const e = v['error'];
  if (e !== undefined) return isObject(e) && typeof e['code'] === 'string' && typeof e['message'] === 'string';
  return isPosition(v);
}

function causeMessage(err: unknown): string {
  // fetch wraps the real reason (ECONNREFUSED, reset) in `cause`.
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return (err instanceof Error ? err.message : String(err)) + cause;
}
