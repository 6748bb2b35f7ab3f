/**
 * Client options: one type, every default in one place, contradictions rejected at construction
 * with a TypeError that names the field.
 */
import type { WebSocketConstructor } from './transport.js';
import { TRANSPORT_KINDS } from './transports.js';
import type { TransportKind } from './transports.js';

/** Exponential backoff with full jitter, for reconnects after failures. */
export interface BackoffOptions {
  /** The floor: no backoff wait is shorter. Default 500. */
  minMs?: number;
  /** The cap: no backoff wait is longer (unless the server's retry hint says so). Default 20000. */
  maxMs?: number;
  /** Growth of the window per consecutive failure. Default 2. */
  factor?: number;
}

/** Options for `new GatehouseClient(url, options)`. */
export interface ClientOptions {
  /** A fixed token. Contradicts `getToken`. Omit both to connect anonymously. */
  token?: string;
  /**
   * Called before every connect attempt and whenever the server asks for a refresh; resolves
   * with a token, or undefined for an anonymous connection. Contradicts `token`.
   */
  getToken?: () => Promise<string | undefined>;
  /** WebSocket constructor. Default: `globalThis.WebSocket` (the Node entry defaults to `ws`). */
  WebSocket?: WebSocketConstructor;
  /** Reconnect backoff: floor, cap and growth factor. */
  backoff?: BackoffOptions;
  /** Deadline for the socket to open and the server's `connected` reply to arrive. Default 10000. */
  connectTimeoutMs?: number;
  /** How long past the server's heartbeat interval silence is tolerated. Default 10000. */
  heartbeatGraceMs?: number;
  /** Requests (publish) that may wait for a connection; 0 rejects them at once. Default 100. */
  maxQueuedRequests?: number;
  /** Deadline for a request's reply, time spent queued included. Default 10000. */
  requestTimeoutMs?: number;
  /** Source of randomness in [0, 1) for jitter; inject a fixed one in tests. Default Math.random. */
  random?: () => number;
  /**
   * Transports in order of preference: the next is tried when a connection dies before `connected`
   * with no close from the server (a blocked upgrade). Default ['websocket', 'http-stream', 'sse']
   * ('sse' only where EventSource exists). The stream endpoints live beside the `/ws` URL.
   */
  transports?: TransportKind[];
  /** While on a fallback, try WebSocket again after this long (doubling per failed try). Default 60000. */
  websocketRetryMs?: number;
}

/** Options after defaults and validation. */
export interface ResolvedOptions {
  token: string | undefined;
  getToken: (() => Promise<string | undefined>) | undefined;
  /** Undefined only when 'websocket' is not among the transports. */
  WebSocket: WebSocketConstructor | undefined;
  backoff: Required<BackoffOptions>;
  connectTimeoutMs: number;
  heartbeatGraceMs: number;
  maxQueuedRequests: number;
  requestTimeoutMs: number;
  random: () => number;
  transports: TransportKind[];
  websocketRetryMs: number;
}

/** The defaults, in one place. */
export const DEFAULTS = {
  backoff: { minMs: 500, maxMs: 20_000, factor: 2 },
  connectTimeoutMs: 10_000,
  heartbeatGraceMs: 10_000,
  maxQueuedRequests: 100,
  requestTimeoutMs: 10_000,
  websocketRetryMs: 60_000,
} as const;

// setTimeout stores delays in a signed 32-bit integer; anything longer fires at once.
const MAX_DELAY_MS = 2_147_483_647;

function duration(name: string, v: unknown, fallback: number, min: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > MAX_DELAY_MS) {
    throw new TypeError(`options.${name} must be a number of milliseconds from ${min} to ${MAX_DELAY_MS}, got ${String(v)}`);
  }
  return v;
}

/** Checks `url` and `options`, fills in defaults, and throws a TypeError naming any bad field. */
export function resolveOptions(url: unknown, options: ClientOptions, defaultWebSocket: WebSocketConstructor | undefined): ResolvedOptions {
  if (typeof url !== 'string' || !/^wss?:\/\/[^/]/i.test(url)) {
    throw new TypeError(`url must be a ws:// or wss:// URL, got ${JSON.stringify(url)}`);
  }
  try {
    new URL(url);
  } catch {
    throw new TypeError(`url is not a valid URL: ${JSON.stringify(url)}`);
  }
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { token, getToken } = options;
  if (token !== undefined && getToken !== undefined) {
    throw new TypeError('options.token and options.getToken are mutually exclusive: pass a fixed token or a function that fetches one');
  }
  if (token !== undefined && (typeof token !== 'string' || token.length === 0)) {
    throw new TypeError('options.token must be a non-empty string');
  }
  if (getToken !== undefined && typeof getToken !== 'function') {
    throw new TypeError('options.getToken must be a function returning a Promise of a token');
  }
  const transports = options.transports ?? [...TRANSPORT_KINDS];
  if (!Array.isArray(transports) || transports.length === 0 || !transports.every((t) => TRANSPORT_KINDS.includes(t))) {
    throw new TypeError(`options.transports must be a non-empty list of ${TRANSPORT_KINDS.map((t) => `'${t}'`).join(', ')}`);
  }
  const WebSocket = options.WebSocket ?? defaultWebSocket;
  if (typeof WebSocket !== 'function' && (transports.includes('websocket') || options.WebSocket !== undefined)) {
    throw new TypeError(
      options.WebSocket === undefined
        ? 'no WebSocket implementation found: pass options.WebSocket, or on Node import the package under its "node" condition (which uses the ws package), or leave \'websocket\' out of options.transports'
        : 'options.WebSocket must be a WebSocket constructor',
    );
  }
  const b = options.backoff ?? {};
  if (typeof b !== 'object' || b === null) throw new TypeError('options.backoff must be an object');
  const minMs = duration('backoff.minMs', b.minMs, DEFAULTS.backoff.minMs, 1);
  const maxMs = duration('backoff.maxMs', b.maxMs, Math.max(DEFAULTS.backoff.maxMs, minMs), 1);
  if (maxMs < minMs) {
    throw new TypeError(`options.backoff.maxMs (${maxMs}) must be at least options.backoff.minMs (${minMs})`);
  }
  const factor = b.factor ?? DEFAULTS.backoff.factor;
  if (typeof factor !== 'number' || !Number.isFinite(factor) || factor < 1 || factor > 100) {
    throw new TypeError(`options.backoff.factor must be a number from 1 to 100, got ${String(factor)}`);
  }
  const maxQueuedRequests = options.maxQueuedRequests ?? DEFAULTS.maxQueuedRequests;
  if (!Number.isSafeInteger(maxQueuedRequests) || maxQueuedRequests < 0) {
    throw new TypeError(`options.maxQueuedRequests must be an integer >= 0, got ${String(maxQueuedRequests)}`);
  }
  const random = options.random ?? Math.random;
  if (typeof random !== 'function') throw new TypeError('options.random must be a function returning a number in [0, 1)');
  return {
    token,
    getToken,
    WebSocket,
    backoff: { minMs, maxMs, factor },
    connectTimeoutMs: duration('connectTimeoutMs', options.connectTimeoutMs, DEFAULTS.connectTimeoutMs, 1),
    heartbeatGraceMs: duration('heartbeatGraceMs', options.heartbeatGraceMs, DEFAULTS.heartbeatGraceMs, 0),
    maxQueuedRequests,
    requestTimeoutMs: duration('requestTimeoutMs', options.requestTimeoutMs, DEFAULTS.requestTimeoutMs, 1),
    random,
    transports,
    websocketRetryMs: duration('websocketRetryMs', options.websocketRetryMs, DEFAULTS.websocketRetryMs, 1),
  };
}
