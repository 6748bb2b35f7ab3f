/**
 * The WebSocket door: checks an upgrade request (path, drain, origin, per-address rate), decides
 * admission (capacity, event-loop lag, queue pressure, node connect rate), completes the handshake
 * and hands the connection to the protocol handler as a transport.
 *
 * Node-level refusals go through the upgrade so that browsers, which cannot read an HTTP status,
 * still get a close code and a retry delay the SDK obeys.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { ServerOptions } from 'ws';
import { CloseCode, formatCloseReason } from '@gatehouse/protocol';
import { AddressLimiter, RefusalBacklog, TokenBucket, retryDelay } from './admission.js';
import type { LagMonitor } from './admission.js';
import type { GatewayMetrics } from './metrics.js';
import type { GatewayOptions } from './options.js';
import type { Transport } from './transport.js';
import { WebSocketTransport, probeFastPath } from './ws-transport.js';
import type { WsVariant } from './ws-transport.js';

/** A second protocol behind the same door (Pusher on `/app/{key}`): its paths, framing and handler. */
export interface ProtocolDoor {
  /** Paths that start with this go to `accept`. */
  readonly prefix: string;
  readonly variant: WsVariant;
  accept(transport: Transport, url: string): void;
}

/** What admission reads about the node. */
export interface AdmissionView {
  /** Draining or closed: no new connections. */
  closing(): boolean;
  connections(): number;
  /** Bytes waiting in every outbound queue, as of the last fleet tick. */
  pendingBytes(): number;
}

/** Accepts WebSocket upgrades on `/ws`. */
export class WebSocketDoor {
  private readonly wss: WebSocketServer;
  private readonly connectBucket: TokenBucket;
  private readonly addressLimiter: AddressLimiter;
  private readonly refusals = new RefusalBacklog();
  private sweepTimer: NodeJS.Timeout | undefined;
  /** Another protocol's door on this port (set once, before start). */
  extra: ProtocolDoor | undefined;

  constructor(
    private readonly options: GatewayOptions,
    private readonly view: AdmissionView,
    private readonly lag: LagMonitor,
    private readonly metrics: GatewayMetrics,
    private readonly accept: (transport: Transport) => void,
  ) {
    this.connectBucket = new TokenBucket(options.connectRate, options.connectRate * 2);
    this.addressLimiter = new AddressLimiter(options.connectRatePerAddress);
    const wsOptions = {
      noServer: true,
      maxPayload: options.maxPayloadBytes,
      // Explicit and low: a flood of tiny fragments must not grow the heap (ws defaults are far higher).
      maxFragments: options.maxFragments,
      maxBufferedChunks: options.maxFragments * 4,
      perMessageDeflate: false,
      clientTracking: false,
      autoPong: false,
      closeTimeout: options.closeTimeoutMs,
      skipUTF8Validation: false,
    };
    // maxFragments, maxBufferedChunks and closeTimeout are newer than @types/ws.
    this.wss = new WebSocketServer(wsOptions as ServerOptions);
    probeFastPath();
  }

  /** Starts the per-address limiter's sweep. */
  start(): void {
    this.sweepTimer = setInterval(() => this.addressLimiter.sweep(), 10_000);
    this.sweepTimer.unref();
  }

  /** Stops the sweep. */
  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
  }

  /** Handles the HTTP server's `upgrade` event. */
  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', destroyOnError);
    const path = (req.url ?? '/').split('?', 1)[0];
    const extra = this.extra !== undefined && path?.startsWith(this.extra.prefix) === true ? this.extra : undefined;
    if (path !== '/ws' && extra === undefined) return rejectUpgrade(socket, 404, 'Not Found');
    if (this.view.closing()) {
      this.metrics.admissionRejects.inc({ reason: 'draining' });
      return rejectUpgrade(socket, 503, 'Service Unavailable', { 'retry-after': '1' });
    }
    const origin = req.headers.origin;
    const origins = this.options.allowedOrigins;
    if (origins.length > 0 && (!origin || !origins.includes(origin))) {
      this.metrics.admissionRejects.inc({ reason: 'origin' });
      return rejectUpgrade(socket, 403, 'Forbidden');
    }
    const address = this.clientAddress(req);
    if (!this.addressLimiter.take(address)) {
      this.metrics.admissionRejects.inc({ reason: 'address_rate' });
      return rejectUpgrade(socket, 429, 'Too Many Requests', { 'retry-after': '2' });
    }
    const refusal = this.refusal();
    // Refused clients are spread over a window as long as the admitted rate needs to absorb them.
    const backlog = refusal ? this.refusals.add(this.options.connectRate) : 0;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const transport = new WebSocketTransport(ws, address, extra?.variant);
      if (refusal) {
        this.metrics.admissionRejects.inc({ reason: refusal });
        const code = transport.framing.closeCode?.(CloseCode.Overloaded) ?? CloseCode.Overloaded;
        transport.close(code, formatCloseReason(`overloaded (${refusal})`, retryDelay(backlog)));
        return;
      }
      // ws handles the socket's errors from here on: an open connection keeps no listener of ours.
      socket.removeListener('error', destroyOnError);
      if (extra) extra.accept(transport, req.url ?? '');
      else this.accept(transport);
    });
  }

  /**
   * The checks every door shares, for a stream opened over plain HTTP (stream-door.ts): the HTTP
   * status that refuses it outright, or the admission refusal (reason and retry delay) it is closed
   * with once open, or nothing. `address` is the client's, as `clientAddress` reads it.
   */
  check(req: IncomingMessage, address: string): { status: number; reason: string } | { refusal: string; retryMs: number } | undefined {
    const origin = req.headers.origin;
    const origins = this.options.allowedOrigins;
    if (origins.length > 0 && origin !== undefined && !origins.includes(origin)) {
      this.metrics.admissionRejects.inc({ reason: 'origin' });
      return { status: 403, reason: 'origin not allowed' };
    }
    if (!this.addressLimiter.take(address)) {
      this.metrics.admissionRejects.inc({ reason: 'address_rate' });
      return { status: 429, reason: 'too many connections from this address; slow down' };
    }
    const refusal = this.view.closing() ? 'draining' : this.refusal();
    if (!refusal) return undefined;
    this.metrics.admissionRejects.inc({ reason: refusal });
    return { refusal, retryMs: retryDelay(refusal === 'draining' ? 1 : this.refusals.add(this.options.connectRate)) };
  }

  /** Why the node refuses a new connection now, if it does. */
  private refusal(): string | undefined {
    if (this.view.connections() >= this.options.maxConnections) return 'capacity';
    if (this.lag.lagMs > this.options.admissionLagMs) return 'event_loop_lag';
    if (this.view.pendingBytes() > this.options.admissionQueueBytes) return 'queue_pressure';
    if (!this.connectBucket.take()) return 'connect_rate';
    return undefined;
  }

  /** The client's address: the socket's, or the first X-Forwarded-For entry behind a trusted proxy. */
  clientAddress(req: IncomingMessage): string {
    if (this.options.trustProxy) {
      const fwd = req.headers['x-forwarded-for'];
      const first = (Array.isArray(fwd) ? fwd[0] : fwd)?.split(',', 1)[0]?.trim();
      if (first) return first.slice(0, 64);
    }
    return req.socket.remoteAddress ?? 'unknown';
  }
}

/** Until ws takes the socket, an error on it destroys it (one function for every socket). */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

function rejectUpgrade(socket: Duplex, status: number, text: string, headers: Record<string, string> = {}): void {
  if (socket.writable) {
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-length: 0\r\n${extra}\r\n`);
  }
  socket.destroy();
}
