/**
 * The gateway node: wires the parts together, starts them and closes them. One HTTP(S) server
 * carries the WebSocket door (`/ws`, upgrade.ts) and the plain routes (http-routes.ts); sessions
 * live in the registry, speak protocol v1 (client-protocol.ts) and receive through the hub;
 * heartbeats, the fleet agent and revocations run beside them. The backbone is handed in (the
 * registry package or the CLI picks it), so this file never names a concrete adapter.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';
import { CloseCode, encodeServerFrame } from '@gatehouse/protocol';
import { LagMonitor } from './admission.js';
import { slowestSessions, wireServerApi } from './api-wiring.js';
import { TokenVerifier } from './auth.js';
import { nowMs, type Backbone, type Publication } from './backbone.js';
import { ClientProtocol } from './client-protocol.js';
import { ControlPlane } from './control.js';
import { pacedDrain } from './drain.js';
import { Presence } from './presence.js';
import { FleetAgent } from './fleet.js';
import { Heartbeats } from './heartbeat.js';
import type { Clock } from './heartbeat.js';
import { ApiKeys } from './http-api.js';
import { HttpRoutes } from './http-routes.js';
import { Hub } from './hub.js';
import { MemoryBackbone } from './memory-backbone.js';
import { GatewayMetrics } from './metrics.js';
import { resolveOptions, type GatewayOptions } from './options.js';
import { Publisher } from './publish.js';
import { wirePusher } from './pusher-wiring.js';
import { SessionRegistry } from './registry.js';
import { Revocations } from './revocations.js';
import { SessionState } from './session.js';
import type { Session } from './session.js';
import { loadNativeSend, nativeSendFor } from './native-send.js';
import type { NativeSend } from './native-send.js';
import { StreamDoor } from './stream-door.js';
import { WebSocketDoor } from './upgrade.js';

/** Encoded replay frames shared between recovering clients, bytes. */
const REPLAY_CACHE_BYTES = 32 * 1024 * 1024;

/** What a gateway is built from besides its options. */
export interface GatewayDeps {
  /** The backbone; default a fresh MemoryBackbone. */
  backbone?: Backbone;
  /** Logger; default pino to stdout at GATEHOUSE_LOG_LEVEL (info). */
  logger?: Logger;
  /** Where heartbeats take time from; default the process clock. */
  clock?: Clock;
}

/** A running gateway node. */
export class Gateway {
  readonly options: GatewayOptions;
  readonly backbone: Backbone;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  private readonly registry = new SessionRegistry();
  private readonly hub: Hub;
  /** The batched send fan-outs use (native-send.ts), or undefined for net.Socket writes. */
  private batchedSend: NativeSend | undefined;
  private readonly verifier: TokenVerifier;
  private readonly publisher: Publisher;
  private readonly protocol: ClientProtocol;
  private readonly control: ControlPlane;
  private readonly fleet: FleetAgent;
  private readonly revocations: Revocations;
  readonly presence: Presence;
  private readonly heartbeats: Heartbeats;
  private readonly door: WebSocketDoor;
  private readonly streams: StreamDoor;
  private readonly server: Server;
  private readonly lag = new LagMonitor();
  private started = false;
  private closed = false;
  private drainPromise: Promise<void> | undefined;
  /** Bytes waiting in every outbound queue, as of the last fleet tick. */
  private pendingTotal = 0;

  constructor(options: Partial<GatewayOptions> = {}, deps: GatewayDeps = {}) {
    const o = (this.options = resolveOptions(options));
    this.log = (deps.logger ?? pino({ level: process.env['GATEHOUSE_LOG_LEVEL'] ?? 'info' })).child({ node: o.nodeId });
    const backbone: Backbone = (this.backbone = deps.backbone ?? new MemoryBackbone());
    const log = this.log;
    const metrics = (this.metrics = new GatewayMetrics(o.nodeId, {
      connectionCount: () => this.registry.size,
      connectionsByTransport: () => this.registry.byTransport(),
      queueDepths: () => this.queueDepths(),
      backboneUp: () => backbone.state === 'up',
      channelCount: () => this.hub.channelCount,
      tokenCacheEntries: () => this.verifier.cacheEntries,
      draining: () => this.drainPromise !== undefined,
      backboneStats: () => backbone.stats?.(),
    }));
    this.verifier = new TokenVerifier({
      tokenSecret: o.tokenSecret,
      jwks: o.jwks,
      issuer: o.tokenIssuer,
      audience: o.tokenAudience,
      cacheSize: o.tokenCacheSize,
      onLookup: (cached) => (cached ? metrics.authCacheHits : metrics.authCacheMisses).inc(),
    });
    const publisher = (this.publisher = new Publisher(backbone, o.namespaces, metrics));
    this.hub = new Hub({
      backbone,
      metrics,
      log,
      maxQueueBytes: o.maxQueueBytes,
      maxQueueMessages: o.maxQueueMessages,
      channelLingerMs: o.channelLingerMs,
      coalesceMs: o.coalesceMs,
      maxBatchDelayMs: o.maxBatchDelayMs,
      send: (this.batchedSend = nativeSendFor(o.nativeWrites)),
      replayCacheBytes: REPLAY_CACHE_BYTES,
      historyLimit: (channel) => Math.max(1, publisher.namespace(channel)?.historySize ?? 1),
      onSlowConsumer: (s) => this.protocol.onSlowConsumer(s),
      presence: { joined: (s, ch) => this.presence.joined(s, ch), left: (s, ch) => this.presence.left(s, ch) },
    });
    const protocol = (this.protocol = new ClientProtocol({
      options: o,
      hub: this.hub,
      registry: this.registry,
      verifier: this.verifier,
      publisher,
      metrics,
      log,
      presence: { query: (s, f, error) => this.presence.query(s, f, error) },
    }));
    this.heartbeats = new Heartbeats({
      registry: this.registry,
      clock: deps.clock,
      intervalMs: o.heartbeatMs,
      refreshLeadMs: o.refreshLeadMs,
      tokenGraceMs: o.tokenGraceMs,
      onMissed: (s) => {
        log.debug({ client: s.id }, 'heartbeat missed');
        protocol.closeAndDrop(s, CloseCode.HeartbeatTimeout, 'heartbeat missed');
      },
      onExpired: (s) => protocol.closeSession(s, CloseCode.TokenExpired, 'token expired and was not refreshed'),
      askRefresh: (s, inMs) => this.hub.send(s, encodeServerFrame({ op: 'refresh', in: inMs })),
    });
    this.control = new ControlPlane(backbone, o.nodeId, log);
    this.presence = new Presence({ options: o, control: this.control, backbone, hub: this.hub, metrics, log, publisher });
    this.fleet = new FleetAgent({
      node: o.nodeId,
      control: this.control,
      backbone,
      log,
      announceIntervalMs: o.announceIntervalMs,
      rebalanceTolerance: o.rebalanceTolerance,
      rebalancePerRound: o.rebalancePerRound,
      rebalanceMinFleetConnections: o.rebalanceMinFleetConnections,
      self: () => this.announcement(),
      shed: (n) => this.shed(n),
    });
    this.revocations = new Revocations({
      backbone,
      control: this.control,
      verifier: this.verifier,
      log,
      closeToken: (jti) => this.closeToken(jti),
    });
    this.door = new WebSocketDoor(
      o,
      {
        closing: () => this.closed || this.drainPromise !== undefined,
        connections: () => this.registry.size,
        pendingBytes: () => this.pendingTotal,
      },
      this.lag,
      metrics,
      (transport) => protocol.accept(transport),
    );
    const apiKeys = new ApiKeys(o.apiKeys);
    const [control, registry, hub, view] = [this.control, this.registry, this.hub, this.fleet.view];
    const node = {
      lag: this.lag,
      ready: () => this.ready,
      draining: () => this.drainPromise !== undefined,
      drain: () => void this.drain(),
    };
    const apiParts = wireServerApi(o, { backbone, control, view, registry, hub, protocol, publisher, apiKeys, metrics, log }, node);
    const streamParts = { door: this.door, control: this.control, fleet: this.fleet.view, verifier: this.verifier };
    this.streams = new StreamDoor({ options: o, log, protocol, requests: apiParts.requests, ...streamParts });
    const pusherDeps = { hub, registry, publisher, protocol, requests: apiParts.requests, metrics, log, backbone };
    const pusher = wirePusher(o, { ...pusherDeps, presence: this.presence });
    this.door.extra = pusher?.door;
    const routes = new HttpRoutes({
      ...apiParts,
      pusher: pusher?.api,
      options: o,
      backbone,
      metrics,
      log,
      publisher,
      streams: this.streams,
      status: {
        closed: () => this.closed,
        ready: () => this.ready,
        draining: () => this.drainPromise !== undefined,
        connections: () => this.registry.size,
      },
      admin: {
        apiKeys,
        node: o.nodeId,
        fleet: () => this.fleet.view.list(),
        slowest: (n) => slowestSessions(this.registry, n),
        preferredNode: (user) => this.fleet.view.preferredNode(user),
        drain: () => void this.drain(),
        draining: () => this.drainPromise !== undefined,
        revoke: (jti, until) => this.revoke(jti, until),
      },
      presence: this.presence,
    });
    this.server = this.createServer((req, res) => routes.onRequest(req, res));
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.door.onUpgrade(req, socket, head));
  }

  private createServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Server {
    const o = this.options;
    const serverOptions = {
      maxHeaderSize: o.maxHeaderBytes,
      headersTimeout: o.headersTimeoutMs,
      requestTimeout: o.headersTimeoutMs * 3,
      connectionsCheckingInterval: Math.min(1000, o.headersTimeoutMs),
      keepAliveTimeout: 5000,
    };
    const server = o.tlsCert
      ? createHttpsServer({ ...serverOptions, cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey as string) }, handler)
      : createHttpServer(serverOptions, handler);
    server.maxHeadersCount = 100;
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      // Malformed requests, oversized headers, header timeouts: answer if we still can, never crash.
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      const text = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
      // Counted by the HTTP parser's code, as WebSocket errors are by ws's (abuse cases 7 and 9).
      this.metrics.protocolErrors.inc({ code: err.code ?? 'http_client_error' });
      if (socket.writable) socket.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      socket.destroy();
    });
    return server;
  }

  /** Starts the backbone and listens. Resolves with the bound port. */
  async start(): Promise<{ port: number }> {
    if (this.started) throw new Error('gateway already started');
    this.started = true;
    await this.backbone.start({
      onPublication: (pub: Publication) => {
        this.metrics.backboneTransit.observe(Math.max(0, nowMs() - pub.ts) / 1000);
        this.hub.onPublication(pub);
      },
      onStateChange: (state, error) => {
        this.metrics.backboneStateChanges.inc({ state });
        this.fleet.onBackboneState(state);
        if (state === 'down') this.log.warn({ err: error, backbone: this.backbone.kind }, 'backbone down');
        else if (state === 'up') this.log.info({ backbone: this.backbone.kind }, 'backbone up');
        this.hub.onStateChange(state);
      },
      onControl: (msg) => this.control.dispatch(msg),
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
    await this.revocations.load(Math.min(1000, this.options.announceIntervalMs));
    this.lag.start();
    this.fleet.start();
    this.heartbeats.start();
    this.door.start();
    this.streams.start();
    const port = (this.server.address() as AddressInfo).port;
    // Which write path fan-outs take, and why not the batched send where it is not used.
    const writes =
      this.batchedSend !== undefined
        ? 'batched send'
        : this.options.nativeWrites === 'off'
          ? 'net.Socket (nativeWrites off)'
          : `net.Socket (batched send unavailable: ${loadNativeSend().error ?? 'unknown'})`;
    // A line of its own: the terminal format keeps `gateway listening` on one line.
    this.log.info({ port, host: this.options.host, backbone: this.backbone.kind, tls: !!this.options.tlsCert }, 'gateway listening');
    this.log.info({ writes }, 'fan-out write path');
    return { port };
  }

  /** The bound port (after start). */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Open connections on this node. */
  get connections(): number {
    return this.registry.size;
  }

  /** True while the node accepts connections and its backbone is up. */
  get ready(): boolean {
    return this.started && !this.closed && !this.drainPromise && this.backbone.state === 'up';
  }

  /** Publishes JSON text to a channel through the backbone (the one delivery path). */
  publish(channel: string, data: string, source: 'api' | 'client' = 'api'): Promise<Publication> {
    return this.publisher.publish(channel, data, source);
  }

  /** Revokes a token id on every node of the fleet (see revocations.ts). */
  revoke(jti: string, until?: number): Promise<void> {
    return this.revocations.revoke(jti, until);
  }

  private closeToken(jti: string): void {
    for (const s of this.registry) {
      if (s.grant?.jti === jti && s.state !== SessionState.Closing) {
        this.metrics.authFailures.inc({ reason: 'revoked' });
        this.protocol.closeSession(s, CloseCode.Unauthorized, 'token revoked');
      }
    }
  }

  private *queueDepths(): Iterable<number> {
    for (const s of this.registry) yield s.pendingBytes;
  }

  private announcement() {
    let pending = 0;
    for (const s of this.registry) pending += s.pendingBytes;
    // Replayed frames count too: a recovery storm after a deploy is when admission must hold.
    this.pendingTotal = pending + this.hub.replayBytes;
    return {
      connections: this.registry.size,
      lagMs: Math.round(this.lag.lagMs * 10) / 10,
      ready: this.ready,
      draining: this.drainPromise !== undefined,
    };
  }

  /**
   * Hands `n` random open connections to the rest of the fleet, each with a jittered retry delay.
   * Connections younger than rebalanceMinAgeMs stay: they may have just been placed here.
   */
  private shed(n: number): void {
    const open: Session[] = [];
    const oldest = Date.now() - this.options.rebalanceMinAgeMs;
    for (const s of this.registry) if (s.state === SessionState.Open && s.openedAt <= oldest) open.push(s);
    if (open.length === 0) return;
    this.log.info({ shed: Math.min(n, open.length), connections: this.registry.size }, 'rebalancing: handing connections to the fleet');
    for (let i = 0; i < n && open.length > 0; i++) {
      const j = Math.floor(Math.random() * open.length);
      const s = open[j] as Session;
      open[j] = open[open.length - 1] as Session;
      open.pop();
      this.metrics.rebalanceClosed.inc();
      this.protocol.closeSession(s, CloseCode.Rebalance, 'rebalancing; reconnect elsewhere', Math.floor(Math.random() * 2000));
    }
  }

  /**
   * Turns the node unready, stops accepting, and closes every connection with the drain code,
   * spread evenly over `windowMs` (drain.ts). Resolves when every connection is gone.
   */
  drain(windowMs = this.options.drainWindowMs): Promise<void> {
    this.drainPromise ??= pacedDrain(
      {
        registry: this.registry,
        protocol: this.protocol,
        metrics: this.metrics,
        log: this.log,
        closeTimeoutMs: this.options.closeTimeoutMs,
      },
      windowMs,
    );
    return this.drainPromise;
  }

  /** Stops everything: remaining connections get 1001, the backbone is closed. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.presence.retire();
    this.heartbeats.stop();
    this.door.stop();
    this.streams.stop();
    this.fleet.stop();
    this.lag.stop();
    for (const s of this.registry) {
      this.protocol.closeSession(s, CloseCode.GoingAway, 'server shutting down');
      s.transport.terminate();
    }
    this.hub.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.backbone.close();
  }
}
