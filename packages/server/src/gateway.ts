/**
 * The gateway: one HTTP(S) server carrying the WebSocket endpoint (`/ws`), the publish API, health,
 * readiness and metrics. It owns the sessions, the hub, admission control, heartbeats and drain;
 * the backbone is handed in (the CLI picks it), so this file never names a concrete adapter.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { RawData, ServerOptions, WebSocket } from 'ws';
import {
  CloseCode,
  DecodeError,
  PROTOCOL_VERSION,
  decodeClientFrame,
  encodeServerFrame,
  formatCloseReason,
  matchAny,
  namespaceOf,
} from '@gatehouse/protocol';
import type { ClientFrame, ConnectFrame, ErrorCode, PublishFrame, RefreshFrame, SubscribeFrame } from '@gatehouse/protocol';
import { AddressLimiter, LagMonitor, RefusalBacklog, TokenBucket, retryDelay } from './admission.js';
import { handleAdmin } from './admin.js';
import type { SlowConnection } from './admin.js';
import { FleetView, NODES_CHANNEL, REVOCATIONS_CHANNEL, parseAnnouncement, parseRevocation } from './fleet.js';
import type { NodeAnnouncement } from './fleet.js';
import { ANONYMOUS, AuthError, TokenVerifier } from './auth.js';
import type { Backbone, Publication } from './backbone.js';
import { BackboneUnavailableError, nowMs } from './backbone.js';
import { ApiError, ApiKeys, parsePublishBody, readBody, sendError, sendJson } from './http-api.js';
import { Hub } from './hub.js';
import { MemoryBackbone } from './memory-backbone.js';
import { GatewayMetrics } from './metrics.js';
import { resolveOptions } from './options.js';
import type { GatewayOptions, NamespaceOptions } from './options.js';
import { Session, SessionState } from './session.js';
import { HEARTBEAT_FRAMES } from './wire.js';

/** Heartbeats are spread over this many slots per interval. */
const HEARTBEAT_SLOTS = 8;
/** Channels one broadcast may name. */
const MAX_BROADCAST_CHANNELS = 1000;
/** Stop writing heartbeats to a socket that already has this much unsent. */
const HEARTBEAT_SKIP_BYTES = 64 * 1024;

/** What a gateway is built from besides its options. */
export interface GatewayDeps {
  /** The backbone; default a fresh MemoryBackbone. */
  backbone?: Backbone;
  /** Logger; default pino to stdout at GATEHOUSE_LOG_LEVEL (info). */
  logger?: Logger;
}

/** A running gateway node. */
export class Gateway {
  readonly options: GatewayOptions;
  readonly backbone: Backbone;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  private readonly hub: Hub;
  private readonly verifier: TokenVerifier;
  private readonly apiKeys: ApiKeys;
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly slots: Set<Session>[] = Array.from({ length: HEARTBEAT_SLOTS }, () => new Set());
  private readonly userConnections = new Map<string, number>();
  private readonly connectBucket: TokenBucket;
  private readonly addressLimiter: AddressLimiter;
  private readonly anonymousAllowed: boolean;
  private sessionCount = 0;
  private nextSlot = 0;
  private seq = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private heartbeatSlot = 0;
  private started = false;
  private closed = false;
  private drainPromise: Promise<void> | undefined;
  private readonly lag = new LagMonitor();
  private readonly refusals = new RefusalBacklog();
  private readonly fleet: FleetView;
  private fleetTimer: NodeJS.Timeout | undefined;
  /** Bytes waiting in every outbound queue, as of the last fleet tick. */
  private pendingTotal = 0;
  /** Since when the backbone has been up without a break (ms), for rebalancing decisions. */
  private backboneUpSince: number | undefined;

  constructor(options: Partial<GatewayOptions> = {}, deps: GatewayDeps = {}) {
    this.options = resolveOptions(options);
    const o = this.options;
    this.log = (deps.logger ?? pino({ level: process.env['GATEHOUSE_LOG_LEVEL'] ?? 'info' })).child({ node: o.nodeId });
    this.backbone = deps.backbone ?? new MemoryBackbone();
    this.metrics = new GatewayMetrics(o.nodeId, {
      connectionCount: () => this.sessionCount,
      queueDepths: () => this.queueDepths(),
      backboneUp: () => this.backbone.state === 'up',
      channelCount: () => this.hub.channelCount,
      tokenCacheEntries: () => this.verifier.cacheEntries,
      draining: () => this.drainPromise !== undefined,
      backboneStats: () => this.backbone.stats?.(),
    });
    this.verifier = new TokenVerifier({
      tokenSecret: o.tokenSecret,
      jwks: o.jwks,
      issuer: o.tokenIssuer,
      audience: o.tokenAudience,
      cacheSize: o.tokenCacheSize,
      onLookup: (cached) => (cached ? this.metrics.authCacheHits : this.metrics.authCacheMisses).inc(),
    });
    this.apiKeys = new ApiKeys(o.apiKeys);
    this.anonymousAllowed = Object.values(o.namespaces).some((ns) => ns.anonymous);
    this.connectBucket = new TokenBucket(o.connectRate, o.connectRate * 2);
    this.addressLimiter = new AddressLimiter(o.connectRatePerAddress);
    this.fleet = new FleetView(o.announceIntervalMs * 3);
    this.hub = new Hub({
      backbone: this.backbone,
      metrics: this.metrics,
      log: this.log,
      maxQueueBytes: o.maxQueueBytes,
      maxQueueMessages: o.maxQueueMessages,
      channelLingerMs: o.channelLingerMs,
      coalesceMs: o.coalesceMs,
      historyLimit: (channel) => Math.max(1, this.namespace(channel)?.historySize ?? 1),
      onSlowConsumer: (s) => this.onSlowConsumer(s),
    });

    const serverOptions = {
      maxHeaderSize: o.maxHeaderBytes,
      headersTimeout: o.headersTimeoutMs,
      requestTimeout: o.headersTimeoutMs * 3,
      connectionsCheckingInterval: Math.min(1000, o.headersTimeoutMs),
      keepAliveTimeout: 5000,
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res);
    this.server = o.tlsCert
      ? createHttpsServer({ ...serverOptions, cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey as string) }, handler)
      : createHttpServer(serverOptions, handler);
    this.server.maxHeadersCount = 100;
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      // Malformed requests, oversized headers, header timeouts: answer if we still can, never crash.
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      // Counted by the HTTP parser's code, as WebSocket errors are by ws's (abuse cases 7 and 9).
      this.metrics.protocolErrors.inc({ code: err.code ?? 'http_client_error' });
      if (socket.writable) socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      socket.destroy();
    });
    const wsOptions = {
      noServer: true,
      maxPayload: o.maxPayloadBytes,
      // Explicit and low: a flood of tiny fragments must not grow the heap (ws defaults are far higher).
      maxFragments: o.maxFragments,
      maxBufferedChunks: o.maxFragments * 4,
      perMessageDeflate: false,
      clientTracking: false,
      autoPong: false,
      closeTimeout: o.closeTimeoutMs,
      skipUTF8Validation: false,
    };
    // closeTimeout is newer than @types/ws.
    this.wss = new WebSocketServer(wsOptions as ServerOptions);
  }

  /** Starts the backbone and listens. Resolves with the bound port. */
  async start(): Promise<{ port: number }> {
    if (this.started) throw new Error('gateway already started');
    this.started = true;
    await this.backbone.start({
      onPublication: (pub: Publication) => {
        if (pub.channel === NODES_CHANNEL) {
          const a = parseAnnouncement(pub.data);
          if (a) this.fleet.hear(a);
        } else if (pub.channel === REVOCATIONS_CHANNEL) {
          const r = parseRevocation(pub.data);
          if (r) this.applyRevocation(r.jti, r.until);
        } else {
          this.metrics.backboneTransit.observe(Math.max(0, nowMs() - pub.ts) / 1000);
          this.hub.onPublication(pub);
        }
      },
      onStateChange: (state, error) => {
        this.metrics.backboneStateChanges.inc({ state });
        this.backboneUpSince = state === 'up' ? (this.backboneUpSince ?? Date.now()) : undefined;
        if (state === 'down') this.log.warn({ err: error, backbone: this.backbone.kind }, 'backbone down');
        else if (state === 'up') this.log.info({ backbone: this.backbone.kind }, 'backbone up');
        this.hub.onStateChange(state);
      },
    });
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(this.options.port, this.options.host, () => {
          this.server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      // The port is taken (or not ours to bind): close the backbone we opened, or its connection
      // would keep a process that cannot serve alive.
      await this.backbone.close().catch(() => {});
      throw err;
    }
    await this.backbone.subscribe(NODES_CHANNEL).catch((err: unknown) => this.log.warn({ err }, 'cannot subscribe to fleet announcements'));
    await this.backbone.subscribe(REVOCATIONS_CHANNEL).catch((err: unknown) => this.log.warn({ err }, 'cannot subscribe to revocations'));
    await this.loadRevocations();
    this.lag.start();
    this.fleetTick();
    this.fleetTimer = setInterval(() => this.fleetTick(), this.options.announceIntervalMs);
    this.fleetTimer.unref();
    const tick = Math.max(1, Math.floor(this.options.heartbeatMs / HEARTBEAT_SLOTS));
    this.heartbeatTimer = setInterval(() => this.heartbeat(), tick);
    this.sweepTimer = setInterval(() => this.addressLimiter.sweep(), 10_000);
    this.sweepTimer.unref();
    const port = (this.server.address() as AddressInfo).port;
    this.log.info({ port, host: this.options.host, backbone: this.backbone.kind, tls: !!this.options.tlsCert }, 'gateway listening');
    return { port };
  }

  /** The bound port (after start). */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Open connections on this node. */
  get connections(): number {
    return this.sessionCount;
  }

  /** True while the node accepts connections and its backbone is up. */
  get ready(): boolean {
    return this.started && !this.closed && !this.drainPromise && this.backbone.state === 'up';
  }

  // ---- HTTP ----

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method === 'GET' && path === '/healthz') {
      sendJson(res, this.closed ? 503 : 200, { status: this.closed ? 'closed' : 'ok', node: this.options.nodeId });
      return;
    }
    if (req.method === 'GET' && path === '/readyz') {
      const ready = this.ready;
      sendJson(res, ready ? 200 : 503, {
        status: ready ? 'ready' : 'not ready',
        draining: this.drainPromise !== undefined,
        backbone: { kind: this.backbone.kind, state: this.backbone.state },
        connections: this.sessionCount,
      });
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      this.metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          this.log.error({ err }, 'metrics collection failed');
          sendError(res, new ApiError('internal', 'metrics collection failed'));
        },
      );
      return;
    }
    if (path === '/api/publish' || path === '/api/broadcast') {
      if (req.method !== 'POST') {
        sendJson(res, 405, { error: { code: 'bad_request', message: `${path} takes POST` } }, { allow: 'POST' });
        return;
      }
      this.handlePublish(req, res, path === '/api/broadcast').catch((err: unknown) => {
        if (err instanceof ApiError) {
          this.metrics.protocolErrors.inc({ code: err.code });
          sendError(res, err);
          if (err.code === 'payload_too_large') req.destroy();
        } else {
          this.log.error({ err }, 'publish API failed');
          sendError(res, new ApiError('internal', 'internal error'));
        }
      });
      return;
    }
    if (path?.startsWith('/admin/')) {
      handleAdmin(req, res, path, {
          apiKeys: this.apiKeys,
          node: this.options.nodeId,
          fleet: () => this.fleet.list(),
          slowest: (n) => this.slowest(n),
          preferredNode: (user) => this.fleet.preferredNode(user),
          drain: () => void this.drain(),
          draining: () => this.drainPromise !== undefined,
          revoke: (jti, until) => this.revoke(jti, until),
        }).catch((err: unknown) => {
          if (err instanceof ApiError) sendError(res, err);
          else {
            this.log.error({ err }, 'admin API failed');
            sendError(res, new ApiError('internal', 'internal error'));
          }
        });
      return;
    }
    if (path === '/ws') {
      sendJson(res, 426, { error: { code: 'bad_request', message: 'this endpoint takes WebSocket upgrades' } }, { upgrade: 'websocket' });
      return;
    }
    sendJson(res, 404, { error: { code: 'not_found', message: `no route ${req.method} ${path}` } });
  }

  private async handlePublish(req: IncomingMessage, res: ServerResponse, broadcast: boolean): Promise<void> {
    const allowed = this.apiKeys.authenticate(req.headers.authorization);
    const body = await readBody(req, this.options.maxPayloadBytes);
    const request = parsePublishBody(body, broadcast, (ns) => ns in this.options.namespaces, allowed, MAX_BROADCAST_CHANNELS);
    if (this.backbone.state !== 'up') throw new ApiError('unavailable', `backbone is ${this.backbone.state}`, 1);
    if (!broadcast) {
      const pub = await this.publish(request.channels[0] as string, request.data, 'api');
      sendJson(res, 200, { channel: pub.channel, epoch: pub.epoch, offset: pub.offset });
      return;
    }
    const results = await Promise.all(
      request.channels.map((channel) =>
        this.publish(channel, request.data, 'api').then(
          (pub) => ({ channel, epoch: pub.epoch, offset: pub.offset }),
          (err: unknown) => ({ channel, error: { code: 'unavailable', message: (err as Error).message } }),
        ),
      ),
    );
    sendJson(res, 200, { results });
  }

  /** Publishes JSON text to a channel through the backbone (the one delivery path). */
  async publish(channel: string, data: string, source: 'api' | 'client' = 'api'): Promise<Publication> {
    const ns = this.namespace(channel);
    if (!ns) throw new ApiError('unknown_namespace', `namespace "${namespaceOf(channel)}" is not configured`);
    try {
      const pub = await this.backbone.publish(channel, data, { historySize: ns.historySize, historyTtlSeconds: ns.historyTtlSeconds });
      this.metrics.publications.inc({ source });
      return pub;
    } catch (err) {
      this.metrics.backbonePublishErrors.inc();
      if (err instanceof BackboneUnavailableError) throw new ApiError('unavailable', err.message, 1);
      throw err;
    }
  }

  // ---- WebSocket upgrade and admission ----

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/ws') return rejectUpgrade(socket, 404, 'Not Found');
    if (this.closed || this.drainPromise) {
      this.metrics.admissionRejects.inc({ reason: 'draining' });
      return rejectUpgrade(socket, 503, 'Service Unavailable', { 'retry-after': '1' });
    }
    const origin = req.headers.origin;
    if (this.options.allowedOrigins.length > 0 && (!origin || !this.options.allowedOrigins.includes(origin))) {
      this.metrics.admissionRejects.inc({ reason: 'origin' });
      return rejectUpgrade(socket, 403, 'Forbidden');
    }
    const address = this.clientAddress(req);
    if (!this.addressLimiter.take(address)) {
      this.metrics.admissionRejects.inc({ reason: 'address_rate' });
      return rejectUpgrade(socket, 429, 'Too Many Requests', { 'retry-after': '2' });
    }
    // Node-level refusals go through the upgrade so that browsers, which cannot read an HTTP
    // status, still get a close code and a retry delay the SDK obeys.
    let refusal: string | undefined;
    if (this.sessionCount >= this.options.maxConnections) refusal = 'capacity';
    else if (this.lag.lagMs > this.options.admissionLagMs) refusal = 'event_loop_lag';
    else if (this.pendingTotal > this.options.admissionQueueBytes) refusal = 'queue_pressure';
    else if (!this.connectBucket.take()) refusal = 'connect_rate';
    // Refused clients are spread over a window as long as the admitted rate needs to absorb them.
    const backlog = refusal ? this.refusals.add(this.options.connectRate) : 0;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (refusal) {
        this.metrics.admissionRejects.inc({ reason: refusal });
        ws.close(CloseCode.Overloaded, formatCloseReason(`overloaded (${refusal})`, retryDelay(backlog)));
        return;
      }
      this.onConnection(ws, address);
    });
  }

  private clientAddress(req: IncomingMessage): string {
    if (this.options.trustProxy) {
      const fwd = req.headers['x-forwarded-for'];
      const first = (Array.isArray(fwd) ? fwd[0] : fwd)?.split(',', 1)[0]?.trim();
      if (first) return first.slice(0, 64);
    }
    return req.socket.remoteAddress ?? 'unknown';
  }

  private onConnection(ws: WebSocket, address: string): void {
    const socket = (ws as unknown as { _socket: Duplex & { writableLength: number } })._socket;
    const s = new Session(ws, socket, address);
    s.slot = this.nextSlot;
    this.nextSlot = (this.nextSlot + 1) % HEARTBEAT_SLOTS;
    (this.slots[s.slot] as Set<Session>).add(s);
    this.sessionCount++;
    s.authTimer = setTimeout(() => {
      this.metrics.authFailures.inc({ reason: 'timeout' });
      this.closeSession(s, CloseCode.AuthTimeout, `no connect frame within ${this.options.authTimeoutMs} ms`);
    }, this.options.authTimeoutMs);
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(s, data as Buffer, isBinary));
    ws.on('pong', () => {
      s.alive = true;
    });
    ws.on('ping', (data: Buffer) => this.onPing(s, data));
    ws.on('error', (err: Error & { code?: string }) => {
      this.metrics.protocolErrors.inc({ code: err.code ?? 'ws_error' });
      this.log.debug({ client: s.id, code: err.code, msg: err.message }, 'websocket error');
    });
    ws.on('close', (code: number) => this.onClose(s, code));
  }

  private onPing(s: Session, data: Buffer): void {
    s.alive = true;
    const second = Math.floor(Date.now() / 1000);
    if (s.pingWindow !== second) {
      s.pingWindow = second;
      s.pingCount = 0;
    }
    if (++s.pingCount > this.options.maxPingsPerSecond) {
      this.closeSession(s, CloseCode.PolicyViolation, 'ping rate above the limit');
      return;
    }
    // Pongs never pile up: a socket that is not reading gets none.
    if (s.state !== SessionState.Closing && s.socket.writableLength < HEARTBEAT_SKIP_BYTES) s.ws.pong(data);
  }

  private onClose(s: Session, code: number): void {
    if (s.authTimer) clearTimeout(s.authTimer);
    const wasOpen = s.grant !== undefined;
    s.state = SessionState.Closing;
    this.hub.removeSession(s);
    if ((this.slots[s.slot] as Set<Session>).delete(s)) this.sessionCount--;
    if (wasOpen && s.grant && s.grant.user !== '') {
      const n = (this.userConnections.get(s.grant.user) ?? 1) - 1;
      if (n <= 0) this.userConnections.delete(s.grant.user);
      else this.userConnections.set(s.grant.user, n);
    }
    this.metrics.disconnectsTotal.inc({ code: String(code) });
  }

  /** Starts a close with `code`; the socket is destroyed if the peer does not finish it in time. */
  closeSession(s: Session, code: number, reason: string, retryMs?: number): void {
    if (s.state === SessionState.Closing) return;
    s.state = SessionState.Closing;
    if (s.authTimer) clearTimeout(s.authTimer);
    s.queue.length = 0;
    s.queuedBytes = 0;
    // Reasons can quote client input (an unknown op) and formatCloseReason counts characters, not
    // bytes: non-ASCII could pass 123 bytes, and ws throws on that (abuse case 27).
    s.ws.close(code, formatCloseReason(reason.replace(/[^\x20-\x7e]/g, '?'), retryMs));
  }

  private onSlowConsumer(s: Session): void {
    if (s.state === SessionState.Closing) return;
    this.metrics.slowConsumerDisconnects.inc();
    this.log.info({ client: s.id, pendingBytes: s.pendingBytes }, 'slow consumer disconnected');
    this.closeSession(s, CloseCode.SlowConsumer, 'slow consumer: outbound queue full', 500 + Math.floor(Math.random() * 1000));
    // The close frame waits behind unsent data; do not hold the memory for the full close timeout.
    const timer = setTimeout(() => s.ws.terminate(), Math.min(this.options.closeTimeoutMs, 1000));
    timer.unref();
  }

  // ---- inbound frames ----

  private onMessage(s: Session, data: Buffer, isBinary: boolean): void {
    if (s.state === SessionState.Closing) return;
    s.alive = true;
    const second = Math.floor(Date.now() / 1000);
    if (s.msgWindow !== second) {
      s.msgWindow = second;
      s.msgCount = 0;
    }
    const count = ++s.msgCount;
    if (count > this.options.maxMessagesPerSecond * 2) {
      this.metrics.protocolErrors.inc({ code: 'rate_limited' });
      this.closeSession(s, CloseCode.PolicyViolation, 'message rate above the limit');
      return;
    }
    if (count > this.options.maxMessagesPerSecond) {
      this.replyError(s, undefined, 'rate_limited', `more than ${this.options.maxMessagesPerSecond} messages per second; slow down`);
      return;
    }
    if (isBinary) {
      if (s.state === SessionState.Authenticating) {
        this.closeSession(s, CloseCode.BadRequest, 'binary frames are not part of protocol v1');
      } else {
        this.replyError(s, undefined, 'bad_request', 'binary frames are not part of protocol v1; send JSON text');
      }
      return;
    }
    let frame: ClientFrame;
    try {
      frame = decodeClientFrame(data.toString('utf8'));
    } catch (err) {
      const e = err as DecodeError;
      if (s.state === SessionState.Authenticating) {
        this.metrics.protocolErrors.inc({ code: e.code });
        this.closeSession(s, CloseCode.BadRequest, `first frame must be connect: ${e.message}`);
      } else {
        this.replyError(s, e.id, e.code, e.message);
      }
      return;
    }
    if (frame.op === 'pong') return;
    if (s.state === SessionState.Authenticating) {
      if (frame.op !== 'connect') {
        this.metrics.protocolErrors.inc({ code: 'bad_request' });
        this.closeSession(s, CloseCode.BadRequest, `first frame must be connect, got ${frame.op}`);
        return;
      }
      void this.onConnect(s, frame);
      return;
    }
    switch (frame.op) {
      case 'connect':
        this.replyError(s, frame.id, 'bad_request', 'already connected');
        return;
      case 'subscribe':
        this.onSubscribe(s, frame);
        return;
      case 'unsubscribe':
        if (this.hub.unsubscribe(s, frame.channel)) this.hub.send(s, encodeServerFrame({ op: 'ok', id: frame.id }));
        else this.replyError(s, frame.id, 'not_subscribed', `not subscribed to ${frame.channel}`);
        return;
      case 'publish':
        this.onPublish(s, frame);
        return;
      case 'refresh':
        void this.onRefresh(s, frame);
        return;
    }
  }

  private replyError(s: Session, id: number | undefined, code: ErrorCode, message: string): void {
    this.metrics.protocolErrors.inc({ code });
    this.hub.send(s, encodeServerFrame(id === undefined ? { op: 'error', code, message } : { op: 'error', id, code, message }));
  }

  private async onConnect(s: Session, frame: ConnectFrame): Promise<void> {
    if (frame.v !== PROTOCOL_VERSION) {
      this.metrics.authFailures.inc({ reason: 'version' });
      this.closeSession(s, CloseCode.UnsupportedVersion, `protocol v${frame.v} is not supported; this server speaks v${PROTOCOL_VERSION}`);
      return;
    }
    // Further frames before the reply would be refused; mark the session busy authenticating.
    if (s.authTimer) clearTimeout(s.authTimer);
    s.authTimer = undefined;
    let grant = ANONYMOUS;
    if (frame.token !== undefined) {
      try {
        grant = await this.verifier.verify(frame.token);
      } catch (err) {
        const reason = err instanceof AuthError ? err.message : 'token could not be verified';
        this.metrics.authFailures.inc({ reason: err instanceof AuthError && err.expired ? 'expired' : 'invalid' });
        this.log.info({ address: s.address, reason }, 'connect refused');
        this.closeSession(s, CloseCode.Unauthorized, reason);
        return;
      }
    } else if (!this.anonymousAllowed) {
      this.metrics.authFailures.inc({ reason: 'missing' });
      this.closeSession(s, CloseCode.Unauthorized, 'a token is required');
      return;
    }
    if (s.state === SessionState.Closing) return;
    if (grant.user !== '') {
      const n = this.userConnections.get(grant.user) ?? 0;
      if (n >= this.options.maxConnectionsPerUser) {
        this.metrics.admissionRejects.inc({ reason: 'user_limit' });
        this.closeSession(s, CloseCode.UserConnectionLimit, `user holds ${n} connections; the limit is ${this.options.maxConnectionsPerUser}`, retryDelay(5));
        return;
      }
      this.userConnections.set(grant.user, n + 1);
    }
    s.grant = grant;
    s.state = SessionState.Open;
    s.id = `${this.options.nodeId}-${++this.seq}`;
    this.metrics.connectsTotal.inc();
    if (frame.reconnect) this.metrics.reconnectsTotal.inc();
    this.hub.send(
      s,
      encodeServerFrame({
        op: 'connected',
        id: frame.id,
        client: s.id,
        node: this.options.nodeId,
        heartbeat: this.options.heartbeatMs,
        ...(grant.expiresAt !== undefined ? { expires: grant.expiresAt } : {}),
      }),
    );
  }

  private namespace(channel: string): NamespaceOptions | undefined {
    const name = namespaceOf(channel);
    return Object.hasOwn(this.options.namespaces, name) ? this.options.namespaces[name] : undefined;
  }

  private onSubscribe(s: Session, frame: SubscribeFrame): void {
    const ns = this.namespace(frame.channel);
    const grant = s.grant as typeof ANONYMOUS;
    if (!ns) return this.replyError(s, frame.id, 'unknown_namespace', `namespace "${namespaceOf(frame.channel)}" is not configured`);
    const allowed =
      matchAny(grant.subscribe, frame.channel) || ns.anonymous || (ns.subscribe === 'authenticated' && grant.user !== '');
    if (!allowed) return this.replyError(s, frame.id, 'forbidden', `not allowed to subscribe to ${frame.channel}`);
    if (s.channels.includes(frame.channel)) {
      return this.replyError(s, frame.id, 'already_subscribed', `already subscribed to ${frame.channel}`);
    }
    if (s.channels.length >= this.options.maxSubscriptions) {
      return this.replyError(s, frame.id, 'limit_exceeded', `at most ${this.options.maxSubscriptions} subscriptions per connection`);
    }
    this.hub.subscribe(s, frame.channel, frame.id, frame.since).catch((err: unknown) => {
      this.log.warn({ err, channel: frame.channel }, 'subscribe failed');
      if (s.state !== SessionState.Closing) this.replyError(s, frame.id, 'unavailable', 'backbone unavailable; retry');
    });
  }

  private onPublish(s: Session, frame: PublishFrame): void {
    const grant = s.grant as typeof ANONYMOUS;
    if (!this.namespace(frame.channel)) {
      return this.replyError(s, frame.id, 'unknown_namespace', `namespace "${namespaceOf(frame.channel)}" is not configured`);
    }
    if (!matchAny(grant.publish, frame.channel)) {
      return this.replyError(s, frame.id, 'forbidden', `not allowed to publish to ${frame.channel}`);
    }
    let data: string;
    try {
      data = JSON.stringify(frame.data);
    } catch {
      // JSON.parse accepts nesting that JSON.stringify overflows the stack on (abuse case 27).
      return this.replyError(s, frame.id, 'bad_request', '"data" is nested too deeply');
    }
    this.publish(frame.channel, data, 'client').then(
      (pub) => {
        if (s.state !== SessionState.Closing) {
          this.hub.send(s, encodeServerFrame({ op: 'published', id: frame.id, channel: pub.channel, epoch: pub.epoch, offset: pub.offset }));
        }
      },
      (err: unknown) => {
        if (s.state === SessionState.Closing) return;
        if (err instanceof ApiError) this.replyError(s, frame.id, err.code, err.message);
        else this.replyError(s, frame.id, 'internal', 'publish failed');
      },
    );
  }

  private async onRefresh(s: Session, frame: RefreshFrame): Promise<void> {
    try {
      const grant = await this.verifier.verify(frame.token);
      if (s.state === SessionState.Closing) return;
      if (grant.user !== (s.grant as typeof ANONYMOUS).user) {
        this.replyError(s, frame.id, 'forbidden', 'a refreshed token must be for the same user');
        return;
      }
      s.grant = grant;
      s.refreshAsked = false;
      this.hub.send(s, encodeServerFrame({ op: 'ok', id: frame.id }));
    } catch (err) {
      if (s.state === SessionState.Closing) return;
      this.replyError(s, frame.id, 'unauthorized', err instanceof AuthError ? err.message : 'token could not be verified');
    }
  }

  // ---- heartbeats, token expiry ----

  private heartbeat(): void {
    const slot = this.slots[this.heartbeatSlot] as Set<Session>;
    this.heartbeatSlot = (this.heartbeatSlot + 1) % HEARTBEAT_SLOTS;
    const now = Date.now();
    for (const s of slot) {
      // Closing at the peer's request: no heartbeat may follow the close echo (RFC 6455 5.5.1).
      if (s.state !== SessionState.Open || s.ws.readyState !== s.ws.OPEN) continue;
      if (!s.alive) {
        // Nothing came back since the last beat: a half-open peer, or a path that drops traffic.
        this.log.debug({ client: s.id }, 'heartbeat missed');
        this.closeSession(s, CloseCode.HeartbeatTimeout, 'heartbeat missed');
        const timer = setTimeout(() => s.ws.terminate(), Math.min(this.options.closeTimeoutMs, 1000));
        timer.unref();
        continue;
      }
      s.alive = false;
      if (s.socket.writableLength < HEARTBEAT_SKIP_BYTES) s.socket.write(HEARTBEAT_FRAMES);
      const exp = s.grant?.expiresAt;
      if (exp !== undefined) {
        if (now >= exp + this.options.tokenGraceMs) {
          this.closeSession(s, CloseCode.TokenExpired, 'token expired and was not refreshed');
        } else if (!s.refreshAsked && now >= exp - this.options.refreshLeadMs) {
          s.refreshAsked = true;
          this.hub.send(s, encodeServerFrame({ op: 'refresh', in: Math.max(0, exp - now) }));
        }
      }
    }
  }

  private *queueDepths(): Iterable<number> {
    for (const slot of this.slots) for (const s of slot) yield s.pendingBytes;
  }

  // ---- fleet: announcements, rebalancing, the slowest connections ----

  private fleetTick(): void {
    let pending = 0;
    for (const slot of this.slots) for (const s of slot) pending += s.pendingBytes;
    this.pendingTotal = pending;
    const me: NodeAnnouncement = {
      node: this.options.nodeId,
      connections: this.sessionCount,
      lagMs: Math.round(this.lag.lagMs * 10) / 10,
      ready: this.ready,
      draining: this.drainPromise !== undefined,
      ts: Date.now(),
    };
    this.fleet.hear(me);
    if (this.backbone.state === 'up') {
      this.backbone.publish(NODES_CHANNEL, JSON.stringify(me), { historySize: 0, historyTtlSeconds: 0 }).catch(() => {});
    }
    // Rebalance only on a settled view: after an outage, announcements come back at different
    // times and a node would shed clients against a fleet it only half sees.
    const settled = this.backboneUpSince !== undefined && Date.now() - this.backboneUpSince >= 3 * this.options.announceIntervalMs;
    if (this.options.rebalancePerRound > 0 && me.ready && settled) {
      const excess = this.fleet.excess(me.node, this.sessionCount, this.options.rebalanceTolerance, this.options.rebalancePerRound);
      if (excess > 0) this.shed(excess);
    }
  }

  /** Hands `n` random open connections to the rest of the fleet, each with a jittered retry delay. */
  private shed(n: number): void {
    const open: Session[] = [];
    for (const slot of this.slots) for (const s of slot) if (s.state === SessionState.Open) open.push(s);
    this.log.info({ shed: Math.min(n, open.length), connections: this.sessionCount }, 'rebalancing: handing connections to the fleet');
    for (let i = 0; i < n && open.length > 0; i++) {
      const j = Math.floor(Math.random() * open.length);
      const s = open[j] as Session;
      open[j] = open[open.length - 1] as Session;
      open.pop();
      this.metrics.rebalanceClosed.inc();
      this.closeSession(s, CloseCode.Rebalance, 'rebalancing; reconnect elsewhere', Math.floor(Math.random() * 2000));
    }
  }

  /**
   * Revokes a token id on every node: the revocation travels on the backbone like any
   * publication (this node applies it when it comes back), and stays in history for a day so a
   * node that starts later still learns it where the backbone keeps history.
   */
  async revoke(jti: string, until = Date.now() + 24 * 3600 * 1000): Promise<void> {
    this.applyRevocation(jti, until);
    await this.backbone.publish(REVOCATIONS_CHANNEL, JSON.stringify({ jti, until }), { historySize: 10_000, historyTtlSeconds: 86_400 });
  }

  private applyRevocation(jti: string, until: number): void {
    this.verifier.revoke(jti, until);
    for (const slot of this.slots) {
      for (const s of slot) {
        if (s.grant?.jti === jti) {
          this.metrics.authFailures.inc({ reason: 'revoked' });
          this.closeSession(s, CloseCode.Unauthorized, 'token revoked');
        }
      }
    }
  }

  /** Learns the revocations made before this node started, where the backbone keeps history. */
  private async loadRevocations(): Promise<void> {
    if (!this.backbone.capabilities.history) return;
    try {
      const head = await this.backbone.history(REVOCATIONS_CHANNEL, undefined, 1);
      if (head.offset === 0) return;
      const all = await this.backbone.history(REVOCATIONS_CHANNEL, { epoch: head.epoch, offset: 0 }, 10_000);
      for (const p of all.publications) {
        const r = parseRevocation(p.data);
        if (r && r.until > Date.now()) this.verifier.revoke(r.jti, r.until);
      }
    } catch (err) {
      this.log.warn({ err }, 'cannot read earlier revocations');
    }
  }

  private slowest(n: number): SlowConnection[] {
    const all: SlowConnection[] = [];
    for (const slot of this.slots) {
      for (const s of slot) {
        if (s.state !== SessionState.Open) continue;
        all.push({ client: s.id, user: s.grant?.user ?? '', address: s.address, pendingBytes: s.pendingBytes, channels: s.channels.length });
      }
    }
    return all.sort((a, b) => b.pendingBytes - a.pendingBytes).slice(0, n);
  }

  // ---- drain and shutdown ----

  /**
   * Turns the node unready, stops accepting, and closes every connection with the drain code,
   * spread evenly over `windowMs` in small batches, each client with a jittered retry delay.
   * Resolves when every connection is gone.
   */
  drain(windowMs = this.options.drainWindowMs): Promise<void> {
    if (this.drainPromise) return this.drainPromise;
    const sessions: Session[] = [];
    for (const slot of this.slots) for (const s of slot) sessions.push(s);
    // Shuffle so each batch mixes clients from every slot and connect time.
    for (let i = sessions.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [sessions[i], sessions[j]] = [sessions[j] as Session, sessions[i] as Session];
    }
    const stepMs = 100;
    const steps = Math.max(1, Math.floor(windowMs / stepMs));
    const perStep = Math.max(1, Math.ceil(sessions.length / steps));
    this.log.info({ connections: sessions.length, windowMs, perStep }, 'drain started');
    this.drainPromise = new Promise<void>((resolve) => {
      let i = 0;
      const step = () => {
        const end = Math.min(sessions.length, i + perStep);
        for (; i < end; i++) {
          const s = sessions[i] as Session;
          if (s.state === SessionState.Closing) continue;
          this.metrics.drainClosed.inc();
          this.closeSession(s, CloseCode.Drain, 'node draining; reconnect elsewhere', Math.floor(Math.random() * 1000));
        }
        if (i < sessions.length) {
          setTimeout(step, stepMs);
          return;
        }
        // Everyone was asked; wait for the closes (bounded by the close timeout).
        const deadline = Date.now() + this.options.closeTimeoutMs + 1000;
        const wait = () => {
          if (this.sessionCount === 0 || Date.now() > deadline) {
            this.log.info({ remaining: this.sessionCount }, 'drain finished');
            resolve();
          } else setTimeout(wait, 50);
        };
        wait();
      };
      step();
    });
    return this.drainPromise;
  }

  /** Stops everything: remaining connections get 1001, the backbone is closed. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.fleetTimer) clearInterval(this.fleetTimer);
    this.lag.stop();
    for (const slot of this.slots) {
      for (const s of slot) {
        this.closeSession(s, CloseCode.GoingAway, 'server shutting down');
        s.ws.terminate();
      }
    }
    this.hub.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.backbone.close();
  }
}

function rejectUpgrade(socket: Duplex, status: number, text: string, headers: Record<string, string> = {}): void {
  if (socket.writable) {
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-length: 0\r\n${extra}\r\n`);
  }
  socket.destroy();
}
