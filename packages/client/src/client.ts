/**
 * The Gatehouse client: one logical connection that survives socket losses. A state machine
 * decides, from the close-code class and the server's retry hint, whether and when to reconnect;
 * subscriptions keep their stream positions across sockets so every reconnect resumes where the
 * application left off.
 */
import {
  CloseCode,
  PROTOCOL_VERSION,
  closeClass,
  decodeServerFrame,
  encodeClientFrame,
  isValidChannel,
  parseRetryHint,
  type ClientFrame,
  type CloseClass,
  type ConnectedFrame,
  type ErrorCode,
  type ErrorFrame,
  type GapReason,
  type ServerFrame,
  type StreamPosition,
} from '@gatehouse/protocol';
import { Backoff, RECONNECT_JITTER_MS, unit } from './backoff.js';
import { TypedEmitter } from './emitter.js';
import { GatehouseError } from './errors.js';
import { resolveOptions, type ClientOptions, type ResolvedOptions } from './options.js';
import { Subscription, type RelayedEvents } from './subscription.js';
import { OPEN, type SocketCloseEvent, type SocketMessageEvent, type WebSocketConstructor, type WebSocketLike } from './transport.js';

/** Where the client stands. `closed` is terminal: a closed client never connects again. */
export type ClientState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** Payload of `state`. */
export interface StateEvent {
  readonly state: ClientState;
  readonly previous: ClientState;
}

/** Payload of `connected`: the server accepted the connection. */
export interface ConnectedEvent {
  /** The server's id for this connection (quote it in support requests). */
  readonly client: string;
  /** The node serving the connection. */
  readonly node: string;
  /** The server's heartbeat interval in ms (0: none). */
  readonly heartbeat: number;
  /** When the token expires (ms since epoch), if it does. */
  readonly expires?: number;
  /** True when this connection replaced a lost one. */
  readonly reconnect: boolean;
}

/** Payload of `disconnected`: a socket or a connect attempt ended. */
export interface DisconnectedEvent {
  /** Close code from the server, or one the client assigned (1006 lost, 4301 heartbeat silence). */
  readonly code: number;
  readonly reason: string;
  /** The class that decided what happens next. */
  readonly class: CloseClass;
  /** Delay before the next attempt; undefined when the client does not reconnect. */
  readonly retryInMs: number | undefined;
}

/** Events of a `GatehouseClient`; subscription events are repeated here for every channel. */
export interface ClientEvents extends RelayedEvents {
  state: StateEvent;
  connected: ConnectedEvent;
  disconnected: DisconnectedEvent;
}

/** How long a healthy connection to a server without heartbeats must last to reset the backoff. */
const HEALTHY_WITHOUT_HEARTBEAT_MS = 5_000;
/** How long `close()` waits for the close handshake before dropping the socket (`ws` only). */
const CLOSE_HANDSHAKE_MS = 1_000;
/** The pause before reconnecting after a resumable close without a hint: [min, min + spread). */
const RESUME_PAUSE_MIN_MS = 100;
const RESUME_PAUSE_SPREAD_MS = 400;
/** The connect request always uses this id: it is the first request on every socket. */
const CONNECT_ID = 1;

interface PublishRequest {
  readonly channel: string;
  readonly data: unknown;
  readonly resolve: (p: StreamPosition) => void;
  readonly reject: (e: GatehouseError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Set once sent: the socket it went out on and its id there. */
  sentOn?: Connection;
  id?: number;
}

type Pending =
  | { kind: 'publish'; req: PublishRequest }
  | { kind: 'subscribe'; sub: Subscription; since: StreamPosition | undefined }
  | { kind: 'unsubscribe'; done: () => void }
  | { kind: 'refresh' }
  | {
      kind: 'query';
      resolve: (f: Record<string, unknown>) => void;
      reject: (e: GatehouseError) => void;
      timer: ReturnType<typeof setTimeout>;
    };

/** One socket and what belongs to it alone. */
interface Connection {
  readonly ws: WebSocketLike;
  nextId: number;
  /** The server answered `connected`. */
  ready: boolean;
  /** Lasted long enough (a heartbeat arrived) to forget earlier failures. */
  healthy: boolean;
  heartbeatMs: number;
  lastFrameAt: number;
  /** The transport's error message, reported when the close carries no reason. */
  transportError: string | undefined;
  readonly pending: Map<number, Pending>;
  watchdog: ReturnType<typeof setTimeout> | undefined;
  healthyTimer: ReturnType<typeof setTimeout> | undefined;
  refreshing: boolean;
}

/**
 * The client's behaviour, independent of where the WebSocket implementation comes from. The
 * package entries (browser and Node) export it as `GatehouseClient` with their default transport.
 */
export class ClientCore extends TypedEmitter<ClientEvents> {
  /** The gateway's WebSocket URL, e.g. `wss://example.com/ws`. */
  readonly url: string;
  readonly #opts: ResolvedOptions;
  readonly #backoff: Backoff;
  #state: ClientState = 'idle';
  #conn: Connection | undefined;
  /** Bumped whenever an attempt is superseded, so a late `getToken` result is dropped. */
  #attemptSeq = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** The deadline of the current attempt, from its start (token fetch included) to `connected`. */
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #everConnected = false;
  /** A 4005 close already led to one reconnect with a fresh token since the last healthy connection. */
  #tokenRetryUsed = false;
  readonly #subs = new Map<string, Subscription>();
  readonly #queue: PublishRequest[] = [];

  /**
   * @param url `ws://` or `wss://` URL of the gateway's `/ws` endpoint.
   * @param options see `ClientOptions`; contradictions throw a TypeError naming the field.
   * @param defaultWebSocket used when `options.WebSocket` is absent (each entry passes its own).
   */
  constructor(url: string, options: ClientOptions, defaultWebSocket: WebSocketConstructor | undefined) {
    super((err, event) => this.#listenerFailed(err, event));
    this.#opts = resolveOptions(url, options, defaultWebSocket);
    this.url = url;
    this.#backoff = new Backoff(this.#opts.backoff, this.#opts.random);
  }

  /** Where the client stands. */
  get state(): ClientState {
    return this.#state;
  }

  /** Starts connecting. Does nothing unless the client is idle; throws once it is closed. */
  connect(): void {
    if (this.#state === 'closed') throw new GatehouseError('closed', 'the client is closed; create a new GatehouseClient');
    if (this.#state !== 'idle') return;
    this.#setState('connecting');
    void this.#attempt();
  }

  /**
   * Closes the connection for good: no reconnect, every pending request rejects with code
   * 'closed', every subscription ends, and no timer stays behind.
   */
  close(): void {
    if (this.#state === 'closed') return;
    this.#attemptSeq++;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn) {
      this.#dropConnection(conn, 'closed');
      closeGracefully(conn.ws);
    }
    this.#shutdown();
    if (conn?.ready) this.emit('disconnected', { code: 1000, reason: 'client closed', class: 'terminal', retryInMs: undefined });
    this.#setState('closed');
  }

  /**
   * Subscribes to `channel` (sent now if connected, else on connect) and keeps the subscription
   * across reconnects. Throws a TypeError for an invalid channel name and an Error when the
   * channel is already subscribed or the client is closed.
   */
  subscribe(channel: string): Subscription {
    if (!isValidChannel(channel)) {
      throw new TypeError(
        `invalid channel ${JSON.stringify(channel)}: expected "namespace:name" (letters, digits, _-.:@=/+; at most 255 characters)`,
      );
    }
    if (this.#state === 'closed') throw new GatehouseError('closed', 'the client is closed; create a new GatehouseClient');
    if (this.#subs.has(channel)) {
      throw new Error(`already subscribed to ${channel}; use getSubscription() to reach the existing subscription`);
    }
    const sub = this.#newSubscription(channel);
    if (this.#conn?.ready) this.#sendSubscribe(this.#conn, sub);
    return sub;
  }

  #newSubscription(channel: string): Subscription {
    const sub = new Subscription(
      channel,
      (s) => this.#leave(s),
      (event, payload) => this.emit(event, payload as ClientEvents[typeof event]),
      (err, event) => this.#listenerFailed(err, event),
      (ch, op) => this.#presenceQuery(ch, op),
    );
    this.#subs.set(channel, sub);
    return sub;
  }

  /** The live subscription to `channel`, if any. */
  getSubscription(channel: string): Subscription | undefined {
    return this.#subs.get(channel);
  }

  /**
   * Publishes `data` (any JSON value) to `channel`; resolves with where it landed. Rejects with a
   * `GatehouseError` whose code is the server's error code, or 'not_connected', 'queue_full',
   * 'timeout', 'disconnected' (sent, outcome unknown) or 'closed'.
   */
  publish(channel: string, data: unknown): Promise<StreamPosition> {
    if (this.#state === 'closed') return Promise.reject(new GatehouseError('closed', 'the client is closed'));
    if (!isValidChannel(channel)) {
      return Promise.reject(new GatehouseError('invalid_channel', `invalid channel ${JSON.stringify(channel)}: expected "namespace:name"`));
    }
    let json: string | undefined;
    try {
      json = JSON.stringify(data);
    } catch (err) {
      return Promise.reject(new GatehouseError('bad_request', `data cannot be serialized as JSON: ${messageOf(err)}`, { cause: err }));
    }
    if (json === undefined)
      return Promise.reject(new GatehouseError('bad_request', 'data must be a JSON value (not undefined or a function)'));
    const conn = this.#conn?.ready ? this.#conn : undefined;
    if (!conn) {
      if (this.#opts.maxQueuedRequests === 0) {
        return Promise.reject(new GatehouseError('not_connected', `cannot publish while ${this.#state}: maxQueuedRequests is 0`));
      }
      if (this.#queue.length >= this.#opts.maxQueuedRequests) {
        return Promise.reject(
          new GatehouseError(
            'queue_full',
            `cannot publish while ${this.#state}: ${this.#queue.length} requests already wait for a connection`,
          ),
        );
      }
    }
    return new Promise<StreamPosition>((resolve, reject) => {
      const req: PublishRequest = { channel, data, resolve, reject, timer: undefined };
      req.timer = setTimeout(() => this.#publishTimedOut(req), this.#opts.requestTimeoutMs);
      if (conn) this.#sendPublish(conn, req);
      else this.#queue.push(req);
    });
  }

  // ---- connection attempts ----

  async #attempt(): Promise<void> {
    const seq = ++this.#attemptSeq;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = setTimeout(() => this.#connectTimedOut(seq), this.#opts.connectTimeoutMs);
    let token = this.#opts.token;
    if (this.#opts.getToken) {
      try {
        token = await this.#fetchToken();
      } catch (err) {
        if (seq !== this.#attemptSeq) return;
        const error =
          err instanceof GatehouseError ? err : new GatehouseError('token_failed', `getToken failed: ${messageOf(err)}`, { cause: err });
        this.emit('error', error);
        this.#afterLoss(undefined, 1006, `no token: ${error.message}`);
        return;
      }
      if (seq !== this.#attemptSeq) return;
    }
    let ws: WebSocketLike;
    try {
      ws = new this.#opts.WebSocket(this.url);
    } catch (err) {
      this.#afterLoss(undefined, 1006, `cannot open socket: ${messageOf(err)}`);
      return;
    }
    const conn: Connection = {
      ws,
      nextId: CONNECT_ID + 1,
      ready: false,
      healthy: false,
      heartbeatMs: 0,
      lastFrameAt: Date.now(),
      transportError: undefined,
      pending: new Map(),
      watchdog: undefined,
      healthyTimer: undefined,
      refreshing: false,
    };
    this.#conn = conn;
    ws.onopen = () => {
      if (this.#conn !== conn) return;
      const frame: ClientFrame = { op: 'connect', id: CONNECT_ID, v: PROTOCOL_VERSION };
      if (token !== undefined) frame.token = token;
      if (this.#everConnected) frame.reconnect = true;
      this.#send(conn, frame);
    };
    ws.onmessage = (ev: SocketMessageEvent) => {
      if (this.#conn === conn) this.#onMessage(conn, ev.data);
    };
    ws.onerror = (ev: { message?: unknown }) => {
      // Browsers say nothing useful here; `ws` carries the cause (ECONNREFUSED, bad status).
      if (typeof ev?.message === 'string' && ev.message) conn.transportError = ev.message;
    };
    ws.onclose = (ev: SocketCloseEvent) => {
      if (this.#conn !== conn) return;
      this.#conn = undefined;
      this.#dropConnection(conn, 'disconnected');
      const reason = ev.reason || conn.transportError || '';
      this.#afterLoss(conn, typeof ev.code === 'number' ? ev.code : 1006, reason);
    };
  }

  /** The attempt's deadline passed: give up on its socket, or on a getToken that never settled. */
  #connectTimedOut(seq: number): void {
    this.#connectTimer = undefined;
    if (seq !== this.#attemptSeq) return;
    const reason = `connect timeout: no connected reply within ${this.#opts.connectTimeoutMs} ms`;
    if (this.#conn) {
      this.#abandon(this.#conn, 1006, reason);
    } else {
      this.#attemptSeq++; // a late getToken result belongs to this abandoned attempt
      this.#afterLoss(undefined, 1006, `${reason} (getToken did not settle)`);
    }
  }

  async #fetchToken(): Promise<string | undefined> {
    const token = await this.#opts.getToken!();
    if (token !== undefined && (typeof token !== 'string' || token.length === 0)) {
      throw new GatehouseError('token_failed', 'getToken must resolve with a non-empty string or undefined');
    }
    return token;
  }

  /** Gives up on a socket the client no longer trusts (dead path, stalled handshake). */
  #abandon(conn: Connection, code: number, reason: string): void {
    if (this.#conn !== conn) return;
    this.#conn = undefined;
    this.#dropConnection(conn, 'disconnected');
    // A dead path would hold a close handshake open for a long time; `ws` can cut it at once.
    if (conn.ws.terminate) conn.ws.terminate();
    else conn.ws.close(1000, reason.slice(0, 100));
    this.#afterLoss(conn, code, reason);
  }

  /** Decides, after a socket or attempt ended, whether and when to try again. */
  #afterLoss(conn: Connection | undefined, code: number, reason: string): void {
    if (this.#state === 'closed') return;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    const hint = parseRetryHint(reason);
    let cls = closeClass(code);
    const healthy = conn?.healthy === true;
    if (healthy) this.#backoff.reset();
    if (code === CloseCode.TokenExpired && this.#opts.getToken && !this.#tokenRetryUsed) {
      // The one terminal code a fresh token cures: try once, and stop if that fails the same way.
      this.#tokenRetryUsed = true;
      cls = 'reconnect';
    }
    if (cls === 'terminal') {
      this.#shutdown(code, reason);
      this.emit('disconnected', { code, reason, class: cls, retryInMs: undefined });
      this.#setState('closed');
      return;
    }
    let delay: number;
    if (cls === 'reconnect' && healthy) {
      delay = hint ?? Math.round(unit(this.#opts.random) * RECONNECT_JITTER_MS);
    } else if (cls === 'resumable' && healthy) {
      delay = hint ?? Math.round(RESUME_PAUSE_MIN_MS + unit(this.#opts.random) * RESUME_PAUSE_SPREAD_MS);
    } else {
      // Backoff, or a prompt-reconnect code on a connection that never proved healthy: a node
      // that accepts and at once turns clients away must not drive them in a tight loop.
      delay = this.#backoff.next(hint);
    }
    for (const sub of this.#subs.values()) sub.suspend();
    this.emit('disconnected', { code, reason, class: cls, retryInMs: delay });
    // Listeners run synchronously and may have closed the client.
    if ((this.#state as ClientState) === 'closed') return;
    this.#setState('reconnecting');
    if (this.#state !== 'reconnecting') return;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#attempt();
    }, delay);
  }

  /** Stops a connection's timers and settles what was in flight on it. */
  #dropConnection(conn: Connection, why: 'closed' | 'disconnected'): void {
    clearTimeout(conn.watchdog);
    clearTimeout(conn.healthyTimer);
    const pending = [...conn.pending.values()];
    conn.pending.clear();
    for (const p of pending) {
      if (p.kind === 'publish') {
        clearTimeout(p.req.timer);
        p.req.reject(
          why === 'closed'
            ? new GatehouseError('closed', 'the client closed before the server answered')
            : new GatehouseError(
                'disconnected',
                'the connection dropped before the server answered; the publication may or may not have been accepted',
              ),
        );
      } else if (p.kind === 'unsubscribe') {
        // Without a connection the server holds no subscription to undo.
        p.done();
      } else if (p.kind === 'query') {
        clearTimeout(p.timer);
        p.reject(new GatehouseError(why, 'the connection ended before the server answered; ask again'));
      }
    }
  }

  /** Settles everything the client holds when it closes for good. */
  #shutdown(code?: number, reason?: string): void {
    const detail =
      code === undefined ? 'the client was closed' : `the server closed the connection for good (${code}${reason ? ` ${reason}` : ''})`;
    for (const req of this.#queue.splice(0)) {
      clearTimeout(req.timer);
      req.reject(new GatehouseError('closed', detail));
    }
    const subs = [...this.#subs.values()];
    this.#subs.clear();
    for (const sub of subs) sub.end('closed');
  }

  // ---- frames ----

  #onMessage(conn: Connection, data: unknown): void {
    conn.lastFrameAt = Date.now();
    if (typeof data !== 'string') {
      this.emit('error', new GatehouseError('protocol', 'the server sent a binary message; protocol v1 uses text frames only'));
      return;
    }
    let frame: ServerFrame;
    try {
      frame = decodeServerFrame(data);
    } catch (err) {
      this.emit('error', new GatehouseError('protocol', `unreadable frame from the server: ${messageOf(err)}`, { cause: err }));
      return;
    }
    if (!conn.ready) {
      if (frame.op === 'connected') this.#onConnected(conn, frame);
      else if (frame.op === 'error') this.emit('error', serverError(frame));
      else if (frame.op === 'ping') this.#send(conn, { op: 'pong' });
      return;
    }
    switch (frame.op) {
      case 'pub':
        this.#subs.get(frame.channel)?.receive(frame);
        return;
      case 'ping':
        this.#send(conn, { op: 'pong' });
        this.#markHealthy(conn);
        return;
      case 'subscribed':
      case 'published':
      case 'ok':
      case 'error':
        this.#onReply(conn, frame);
        return;
      case 'gap':
        this.#subs.get(String(frame.channel))?.markGap(gapReason(frame.reason));
        return;
      case 'join':
      case 'leave':
        this.#subs.get(String(frame.channel))?.presenceChange(frame.op, frame.info);
        return;
      case 'presence':
      case 'presence_stats':
        this.#onReply(conn, frame);
        return;
      case 'refresh':
        void this.#refresh(conn);
        return;
      case 'server_subscribed': {
        // The backend subscribed this connection (server API): a subscription like any other from here on.
        const sub = this.#subs.get(frame.channel) ?? this.#newSubscription(frame.channel);
        if (sub.state !== 'subscribed')
          sub.confirm({ op: 'subscribed', id: 0, channel: frame.channel, epoch: frame.epoch, offset: frame.offset }, undefined);
        return;
      }
      case 'server_unsubscribed': {
        const sub = this.#subs.get(frame.channel);
        if (sub) this.#subs.delete(frame.channel);
        sub?.end('server');
        return;
      }
      case 'connected':
        this.emit('error', new GatehouseError('protocol', 'the server sent a second connected frame'));
        return;
    }
  }

  #onConnected(conn: Connection, frame: ConnectedFrame): void {
    const { heartbeat, expires } = frame as unknown as Record<string, unknown>;
    if (
      frame.id !== CONNECT_ID ||
      typeof frame.client !== 'string' ||
      typeof frame.node !== 'string' ||
      typeof heartbeat !== 'number' ||
      !Number.isFinite(heartbeat) ||
      heartbeat < 0 ||
      (expires !== undefined && typeof expires !== 'number')
    ) {
      this.emit('error', new GatehouseError('protocol', 'malformed connected frame from the server'));
      this.#abandon(conn, 1006, 'malformed connected frame');
      return;
    }
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    conn.ready = true;
    conn.heartbeatMs = heartbeat;
    const reconnect = this.#everConnected;
    this.#everConnected = true;
    if (heartbeat > 0) this.#armWatchdog(conn, heartbeat + this.#opts.heartbeatGraceMs);
    else conn.healthyTimer = setTimeout(() => this.#markHealthy(conn), HEALTHY_WITHOUT_HEARTBEAT_MS);
    this.#setState('connected');
    const event: ConnectedEvent =
      typeof expires === 'number'
        ? { client: frame.client, node: frame.node, heartbeat, expires, reconnect }
        : { client: frame.client, node: frame.node, heartbeat, reconnect };
    this.emit('connected', event);
    if (this.#conn !== conn) return; // a listener closed the client
    for (const sub of this.#subs.values()) if (sub.state === 'subscribing') this.#sendSubscribe(conn, sub);
    for (const req of this.#queue.splice(0)) this.#sendPublish(conn, req);
  }

  #markHealthy(conn: Connection): void {
    if (conn.healthy || this.#conn !== conn) return;
    conn.healthy = true;
    this.#backoff.reset();
    this.#tokenRetryUsed = false;
  }

  /** Closes the socket when nothing arrived for `limitMs`; one timer, re-armed lazily. */
  #armWatchdog(conn: Connection, limitMs: number): void {
    const check = () => {
      if (this.#conn !== conn) return;
      const silent = Date.now() - conn.lastFrameAt;
      if (silent >= limitMs) {
        this.#abandon(
          conn,
          CloseCode.HeartbeatTimeout,
          `no frame from the server for ${silent} ms (heartbeat ${conn.heartbeatMs} ms + grace ${this.#opts.heartbeatGraceMs} ms)`,
        );
      } else {
        conn.watchdog = setTimeout(check, limitMs - silent);
      }
    };
    conn.watchdog = setTimeout(check, limitMs);
  }

  #onReply(conn: Connection, frame: ServerFrame & { id?: number }): void {
    const id = frame.id;
    const pending = id === undefined ? undefined : conn.pending.get(id);
    if (!pending) {
      if (frame.op === 'error') this.emit('error', serverError(frame as ErrorFrame));
      return;
    }
    conn.pending.delete(id!);
    switch (pending.kind) {
      case 'publish': {
        const req = pending.req;
        clearTimeout(req.timer);
        if (frame.op === 'published' && isPosition(frame)) req.resolve({ epoch: frame.epoch, offset: frame.offset });
        else if (frame.op === 'error') req.reject(serverError(frame));
        else req.reject(new GatehouseError('protocol', `unexpected ${frame.op} reply to publish`));
        return;
      }
      case 'subscribe': {
        const { sub, since } = pending;
        if (this.#subs.get(sub.channel) !== sub) return; // unsubscribed meanwhile
        // The backend subscribed this connection while the request was on its way: already served.
        if (frame.op === 'error' && frame.code === 'already_subscribed' && sub.state === 'subscribed') return;
        if (frame.op === 'subscribed' && frame.channel === sub.channel && isPosition(frame)) {
          sub.confirm(frame, since);
        } else {
          this.#subs.delete(sub.channel);
          sub.fail(frame.op === 'error' ? serverError(frame) : new GatehouseError('protocol', `unexpected ${frame.op} reply to subscribe`));
          sub.end('error');
        }
        return;
      }
      case 'unsubscribe':
        if (frame.op === 'error' && frame.code !== 'not_subscribed') this.emit('error', serverError(frame));
        pending.done();
        return;
      case 'refresh':
        if (frame.op === 'error') this.emit('error', serverError(frame));
        return;
      case 'query':
        clearTimeout(pending.timer);
        if (frame.op === 'error') pending.reject(serverError(frame));
        else pending.resolve(frame as unknown as Record<string, unknown>);
        return;
    }
  }

  /** Sends a presence query on the current connection; rejects when there is none or no reply comes in time. */
  #presenceQuery(channel: string, op: 'presence' | 'presence_stats'): Promise<Record<string, unknown>> {
    const conn = this.#conn?.ready ? this.#conn : undefined;
    if (!conn) return Promise.reject(new GatehouseError('not_connected', `cannot ask for ${op} while ${this.#state}`));
    return new Promise((resolve, reject) => {
      let id = 0;
      const timer = setTimeout(() => {
        conn.pending.delete(id);
        reject(new GatehouseError('timeout', `no reply to ${op} on ${channel} within ${this.#opts.requestTimeoutMs} ms`));
      }, this.#opts.requestTimeoutMs);
      id = this.#request(conn, { kind: 'query', resolve, reject, timer }, (n) => ({ op, id: n, channel }));
    });
  }

  // ---- requests ----

  #send(conn: Connection, frame: ClientFrame): void {
    if (conn.ws.readyState !== OPEN) return;
    try {
      conn.ws.send(encodeClientFrame(frame));
    } catch (err) {
      // The socket is failing; its close event follows and drives the reconnect.
      conn.transportError = messageOf(err);
    }
  }

  #request(conn: Connection, pending: Pending, frame: (id: number) => ClientFrame): number {
    const id = conn.nextId++;
    conn.pending.set(id, pending);
    this.#send(conn, frame(id));
    return id;
  }

  #sendSubscribe(conn: Connection, sub: Subscription): void {
    const since = sub.recoverFrom();
    this.#request(conn, { kind: 'subscribe', sub, since }, (id) =>
      since ? { op: 'subscribe', id, channel: sub.channel, since } : { op: 'subscribe', id, channel: sub.channel },
    );
  }

  #sendPublish(conn: Connection, req: PublishRequest): void {
    this.#request(conn, { kind: 'publish', req }, (id) => {
      req.sentOn = conn;
      req.id = id;
      return { op: 'publish', id, channel: req.channel, data: req.data };
    });
  }

  #publishTimedOut(req: PublishRequest): void {
    const queued = this.#queue.indexOf(req);
    if (queued >= 0) this.#queue.splice(queued, 1);
    if (req.sentOn && req.id !== undefined) req.sentOn.pending.delete(req.id);
    req.reject(new GatehouseError('timeout', `no reply to publish on ${req.channel} within ${this.#opts.requestTimeoutMs} ms`));
  }

  #leave(sub: Subscription): Promise<void> {
    if (this.#subs.get(sub.channel) === sub) this.#subs.delete(sub.channel);
    sub.end('unsubscribe');
    const conn = this.#conn?.ready ? this.#conn : undefined;
    if (!conn) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const id = this.#request(conn, { kind: 'unsubscribe', done }, (n) => ({ op: 'unsubscribe', id: n, channel: sub.channel }));
      // Publications for the channel are already dropped; a server that never confirms must not
      // leave the caller waiting forever.
      const timer = setTimeout(() => {
        conn.pending.delete(id);
        resolve();
      }, this.#opts.requestTimeoutMs);
    });
  }

  /** The server warned that the token expires soon: fetch a new one and hand it over. */
  async #refresh(conn: Connection): Promise<void> {
    if (!this.#opts.getToken) {
      this.emit(
        'error',
        new GatehouseError(
          'token_failed',
          'the server asked for a token refresh, but no getToken option was given; the connection will close when the token expires',
        ),
      );
      return;
    }
    if (conn.refreshing) return;
    conn.refreshing = true;
    try {
      const token = await this.#fetchToken();
      if (this.#conn !== conn) return;
      if (token === undefined)
        throw new GatehouseError('token_failed', 'getToken resolved without a token when the server asked for a refresh');
      this.#request(conn, { kind: 'refresh' }, (id) => ({ op: 'refresh', id, token }));
    } catch (err) {
      if (this.#conn === conn) {
        this.emit(
          'error',
          err instanceof GatehouseError ? err : new GatehouseError('token_failed', `getToken failed: ${messageOf(err)}`, { cause: err }),
        );
      }
    } finally {
      conn.refreshing = false;
    }
  }

  // ---- helpers ----

  #setState(next: ClientState): void {
    const previous = this.#state;
    if (previous === next) return;
    this.#state = next;
    this.emit('state', { state: next, previous });
  }

  #listenerFailed(err: unknown, event: string): void {
    if (event === 'error') {
      // An error listener that throws has nowhere left to report to: surface it like any
      // uncaught exception instead of swallowing it.
      setTimeout(() => {
        throw err;
      }, 0);
      return;
    }
    this.emit('error', new GatehouseError('listener_failed', `a "${event}" listener threw: ${messageOf(err)}`, { cause: err }));
  }
}

/** Starts a close handshake, and cuts the socket if the handshake stalls (`ws` only). */
function closeGracefully(ws: WebSocketLike): void {
  try {
    ws.close(1000, 'client closed');
  } catch {
    // Already closing.
  }
  const terminate = ws.terminate;
  if (!terminate) return;
  const timer = setTimeout(() => terminate.call(ws), CLOSE_HANDSHAKE_MS);
  ws.onclose = () => clearTimeout(timer);
}

function serverError(frame: ErrorFrame): GatehouseError {
  const code: ErrorCode = typeof frame.code === 'string' ? frame.code : 'internal';
  const message = typeof frame.message === 'string' ? frame.message : 'the server reported an error';
  return new GatehouseError(code, message);
}

function isPosition(f: { epoch?: unknown; offset?: unknown }): f is { epoch: string; offset: number } {
  return typeof f.epoch === 'string' && typeof f.offset === 'number' && Number.isSafeInteger(f.offset) && f.offset >= 0;
}

function gapReason(r: unknown): GapReason {
  return r === 'history' || r === 'epoch' || r === 'backbone' ? r : 'history';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
