/**
 * The connections a load worker holds, in two flavours:
 *
 * - lean: a raw TCP socket speaking WebSocket through ./wire.ts. One small object per connection
 *   plus the socket; handlers are shared functions, so there is no closure per connection. Pongs
 *   answer protocol pings and `{"op":"pong"}` answers application pings, as the SDK does.
 * - sdk: a real `GatehouseClient` over `ws`, with its reconnect backoff, for realism and storms.
 *
 * Both report into one `LoadStats`: counts, latencies from the publish stamp, close codes.
 */
import { connect as tcpConnect } from 'node:net';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { GatehouseClient } from '@gatehouse/client';
import type { Subscription, WebSocketConstructor } from '@gatehouse/client';
import { Histogram } from './histogram.js';
import type { HistogramSnapshot } from './histogram.js';
import {
  OP_CLOSE,
  OP_PING,
  OP_PONG,
  OP_TEXT,
  clientCloseFrame,
  clientFrame,
  handshakeKey,
  isPub,
  pubOffset,
  pubTs,
  readFrames,
  readHandshake,
  upgradeRequest,
} from './wire.js';
import type { ReaderState } from './wire.js';

/** Where a connection goes. */
export interface Endpoint {
  host: string;
  port: number;
  path: string;
}

/** What a worker has counted so far (cumulative except `latency`, which is since the last report). */
export interface LoadReport {
  /** Connection attempts started. */
  started: number;
  /** Sockets currently open. */
  open: number;
  /** Connections whose subscription is confirmed right now. */
  subscribed: number;
  /** Confirmed subscriptions per plan entry (channel), right now. */
  subscribedByChannel: number[];
  /** Attempts that failed before their subscription was confirmed (after their retries). */
  failed: number;
  /** Lean attempts that failed and were tried again. */
  retries: number;
  /** Subscribed connections the server or the network closed while we did not ask. */
  dropped: number;
  /** `pub` frames received. */
  received: number;
  /** Publications that arrived with an offset other than the next one on that connection. */
  outOfOrder: number;
  /** Failure reasons with counts (first 20 distinct). */
  failures: Record<string, number>;
  /** Close codes received, with counts. */
  closeCodes: Record<string, number>;
  /** Latencies (publish stamp to arrival) since the last report. */
  latency: HistogramSnapshot;
  /** Storm only: connections back and resubscribed after the drop, and how long each took. */
  back: number;
  backLatency: HistogramSnapshot;
  /** Storm only: reconnect attempts refused by admission (4100-4199, 1013, HTTP 429/503). */
  refusals: number;
  /** Storm only: disconnect events seen after the drop (every failed attempt counts one). */
  disconnects: number;
  /** Only when asked for: connections by state. */
  states?: Record<string, number>;
}

/** Counters shared by every connection of a worker. */
export class LoadStats {
  started = 0;
  open = 0;
  subscribed = 0;
  subscribedByChannel: number[];
  failed = 0;
  /** Lean attempts that failed and were tried again. */
  retries = 0;
  /** Set by the worker: opens a new attempt in place of a failed one. */
  retry: ((failed: LeanConnection) => void) | undefined;
  dropped = 0;
  received = 0;
  outOfOrder = 0;
  readonly failures = new Map<string, number>();
  readonly closeCodes = new Map<number, number>();
  latency = new Histogram();
  back = 0;
  backLatency = new Histogram();
  refusals = 0;
  disconnects = 0;
  /** Set when a storm starts (performance.now()), 0 otherwise. */
  stormAt = 0;
  /** True once the worker is stopping: closes from now on are expected. */
  stopping = false;

  constructor(channels: number) {
    this.subscribedByChannel = new Array<number>(channels).fill(0);
  }

  /** A subscription on plan entry `channel` was confirmed (+1) or ended (-1). */
  subscribedTo(channel: number, delta: 1 | -1): void {
    this.subscribed += delta;
    this.subscribedByChannel[channel] = (this.subscribedByChannel[channel] ?? 0) + delta;
  }

  fail(reason: string): void {
    this.failed++;
    this.note(reason);
  }

  note(reason: string): void {
    const n = this.failures.get(reason);
    if (n !== undefined) this.failures.set(reason, n + 1);
    else if (this.failures.size < 20) this.failures.set(reason, 1);
  }

  closeCode(code: number): void {
    this.closeCodes.set(code, (this.closeCodes.get(code) ?? 0) + 1);
  }

  /** A report; resets the interval histograms. */
  report(): LoadReport {
    const r: LoadReport = {
      started: this.started,
      open: this.open,
      subscribed: this.subscribed,
      subscribedByChannel: this.subscribedByChannel.slice(),
      failed: this.failed,
      retries: this.retries,
      dropped: this.dropped,
      received: this.received,
      outOfOrder: this.outOfOrder,
      failures: Object.fromEntries(this.failures),
      closeCodes: Object.fromEntries([...this.closeCodes].map(([k, v]) => [String(k), v])),
      latency: this.latency.snapshot(),
      back: this.back,
      backLatency: this.backLatency.snapshot(),
      refusals: this.refusals,
      disconnects: this.disconnects,
    };
    this.latency.reset();
    this.backLatency.reset();
    return r;
  }
}

/** What every load connection can do. */
export interface LoadConnection {
  /** Closes cleanly (close handshake, then the socket). */
  stop(): void;
  /** Drops the connection without a close handshake (storm). */
  drop(): void;
  /** True once the socket is gone. */
  readonly gone: boolean;
  /** Where the connection stands, for diagnosing a stuck ramp. */
  readonly stateName: string;
}

const CONNECT_FRAME = Buffer.from('{"op":"connect","id":1,"v":1}');
const PONG_FRAME = Buffer.from('{"op":"pong"}');
/** Silence that fails an attempt, from TCP connect until the subscription is confirmed. */
const HANDSHAKE_TIMEOUT_MS = 15_000;
/** Attempts per lean connection before it counts as failed. */
const MAX_ATTEMPTS = 3;

/** Where a lean connection stands (a Pusher connection uses Authenticating until it can subscribe). */
export const enum LeanState {
  Connecting = 0,
  Upgrading = 1,
  Authenticating = 2,
  Subscribing = 3,
  Subscribed = 4,
  Closed = 5,
}

const LEAN_STATE_NAMES = ['connecting', 'upgrading', 'authenticating', 'subscribing', 'subscribed', 'closed'];

const kConn = Symbol('leanConnection');
type TaggedSocket = Socket & { [kConn]: LeanConnection };

/** A lean connection: raw TCP, hand-framed WebSocket, one channel. */
export class LeanConnection implements ReaderState, LoadConnection {
  rest: Buffer | null = null;
  fragOpcode = 0;
  frags: Buffer[] | null = null;
  state = LeanState.Connecting;
  /** The handshake nonce, dropped once the upgrade is done. */
  key: string | null;
  lastOffset = 0;
  /** Arrival time of the chunk being parsed. */
  now = 0;
  readonly socket: TaggedSocket;

  /** Socket open (counted in `stats.open`). */
  private counted = false;

  constructor(
    readonly stats: LoadStats,
    readonly channelIndex: number,
    readonly subscribeFrame: Buffer,
    readonly endpoint: Endpoint,
    readonly localAddress: string | undefined,
    /** 1 for the first attempt; a failed attempt is retried up to MAX_ATTEMPTS. */
    readonly attempt = 1,
  ) {
    this.key = handshakeKey();
    stats.started++;
    const socket = tcpConnect({ host: endpoint.host, port: endpoint.port, ...(localAddress ? { localAddress } : {}) }) as TaggedSocket;
    socket[kConn] = this;
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setTimeout(HANDSHAKE_TIMEOUT_MS);
    socket.once('connect', onSocketConnect);
    socket.on('data', onSocketData);
    socket.on('timeout', onSocketTimeout);
    socket.on('error', onSocketError);
    socket.once('close', onSocketClose);
    this.request = upgradeRequest(endpoint.host, endpoint.port, endpoint.path, this.key);
  }

  /** The upgrade request, dropped once written. */
  private request: string | null;

  get gone(): boolean {
    return this.state === LeanState.Closed;
  }

  get stateName(): string {
    return LEAN_STATE_NAMES[this.state] ?? String(this.state);
  }

  /** @internal */
  connected(): void {
    this.stats.open++;
    this.counted = true;
    this.socket.write(this.request as string);
    this.request = null;
    this.state = LeanState.Upgrading;
  }

  /** @internal */
  data(chunk: Buffer): void {
    this.now = performance.timeOrigin + performance.now();
    if (this.state === LeanState.Upgrading) {
      const buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
      this.rest = null;
      const hs = readHandshake(buf, this.key as string);
      if (hs === undefined) {
        this.rest = Buffer.from(buf);
        return;
      }
      if (!hs.ok) return this.failed(hs.error);
      this.key = null;
      this.state = LeanState.Authenticating;
      this.upgraded();
      if (hs.bodyStart >= buf.length) return;
      chunk = buf.subarray(hs.bodyStart);
    }
    if (this.state === LeanState.Closed) return;
    const err = readFrames(this, chunk, onFrame);
    if (err !== undefined) {
      this.stats.note(`protocol error: ${err}`);
      this.socket.destroy();
    }
  }

  /** The upgrade is done: say hello (v1: the connect frame). */
  protected upgraded(): void {
    this.socket.write(clientFrame(OP_TEXT, CONNECT_FRAME));
  }

  /** @internal A complete message or control frame. */
  frame(opcode: number, data: Buffer, start: number, end: number): void {
    if (opcode === OP_TEXT) return this.text(data, start, end);
    if (opcode === OP_PING) {
      this.socket.write(clientFrame(OP_PONG, Buffer.from(data.subarray(start, end))));
      return;
    }
    if (opcode === OP_CLOSE) {
      const code = end - start >= 2 ? data.readUInt16BE(start) : 1005;
      this.stats.closeCode(code);
      if (this.state !== LeanState.Subscribed) this.stats.note(`closed ${code} ${data.toString('utf8', start + 2, end).slice(0, 60)}`);
      if (!this.socket.destroyed) this.socket.end(clientCloseFrame(code === 1005 ? 1000 : code));
    }
  }

  /** A text message: a `pub` counted by its stamp and offset, anything else read as a reply. */
  protected text(data: Buffer, start: number, end: number): void {
    if (isPub(data, start, end)) this.delivered(pubTs(data, start, end), pubOffset(data, start, end));
    else this.reply(data.toString('utf8', start, end));
  }

  /** A publication arrived: stamped `ts` when accepted, at stream `offset` (0: not sequenced). */
  protected delivered(ts: number, offset: number): void {
    const stats = this.stats;
    stats.received++;
    stats.latency.record(this.now - ts);
    if (offset > 0) {
      if (this.lastOffset !== 0 && offset !== this.lastOffset + 1) stats.outOfOrder++;
      this.lastOffset = offset;
    }
  }

  /** The subscription is confirmed at `offset` (0: none given). */
  protected subscribed(offset: number): void {
    this.state = LeanState.Subscribed;
    // Until now a silent server was a failed attempt; from here silence is just idle.
    this.socket.setTimeout(0);
    if (offset > 0) this.lastOffset = offset;
    this.stats.subscribedTo(this.channelIndex, 1);
  }

  private reply(text: string): void {
    let f: { op?: unknown; id?: unknown; code?: unknown; message?: unknown; offset?: unknown };
    try {
      f = JSON.parse(text) as typeof f;
    } catch {
      this.stats.note('server sent a frame that is not JSON');
      return;
    }
    switch (f.op) {
      case 'ping':
        this.socket.write(clientFrame(OP_TEXT, PONG_FRAME));
        return;
      case 'connected':
        if (this.state !== LeanState.Authenticating) return;
        this.state = LeanState.Subscribing;
        this.socket.write(clientFrame(OP_TEXT, this.subscribeFrame));
        return;
      case 'subscribed':
        if (this.state !== LeanState.Subscribing) return;
        this.subscribed(typeof f.offset === 'number' ? f.offset : 0);
        return;
      case 'error':
        if (this.state === LeanState.Subscribing || this.state === LeanState.Authenticating) {
          this.failed(`error ${String(f.code)}: ${String(f.message).slice(0, 80)}`);
        } else {
          this.stats.note(`error ${String(f.code)}`);
        }
        return;
      default:
        return;
    }
  }

  protected failed(reason: string): void {
    if (this.state === LeanState.Closed) return;
    if (this.state !== LeanState.Subscribed) {
      this.giveUpOrRetry(reason);
      this.state = LeanState.Closed;
    }
    this.socket.destroy();
  }

  /**
   * An attempt failed before its subscription: like a real client, try again after a pause (a
   * moment of overload on a shared machine should not fail a whole run), and count it as failed
   * only when the last attempt fails too.
   */
  private giveUpOrRetry(reason: string): void {
    const stats = this.stats;
    if (this.attempt < MAX_ATTEMPTS && !stats.stopping && stats.retry) {
      stats.retries++;
      stats.note(`${reason} (retried)`);
      stats.retry(this);
    } else {
      stats.fail(reason);
    }
  }

  /** @internal */
  timedOut(): void {
    const waiting = ['TCP connect', 'upgrade response', 'connected reply', 'subscribed reply'][this.state] ?? 'reply';
    this.failed(`no ${waiting} within ${HANDSHAKE_TIMEOUT_MS / 1000} s`);
  }

  /** @internal */
  errored(err: NodeJS.ErrnoException): void {
    if (this.state === LeanState.Subscribed) {
      this.stats.note(err.code ?? err.message);
      return;
    }
    this.failed(err.code ?? err.message);
  }

  /** @internal */
  closed(): void {
    if (this.counted) this.stats.open--;
    this.counted = false;
    if (this.state === LeanState.Subscribed) {
      this.stats.subscribedTo(this.channelIndex, -1);
      if (!this.stats.stopping) this.stats.dropped++;
    } else if (this.state !== LeanState.Closed && !this.stats.stopping) {
      this.giveUpOrRetry('closed before subscribed');
    }
    this.state = LeanState.Closed;
    this.rest = null;
    this.frags = null;
  }

  stop(): void {
    if (this.state === LeanState.Closed || this.socket.destroyed) return;
    if (this.state >= LeanState.Authenticating) this.socket.end(clientCloseFrame(1000));
    else this.socket.destroy();
  }

  drop(): void {
    this.socket.destroy();
  }
}

function onSocketConnect(this: TaggedSocket): void {
  this[kConn].connected();
}
function onSocketData(this: TaggedSocket, chunk: Buffer): void {
  this[kConn].data(chunk);
}
function onSocketTimeout(this: TaggedSocket): void {
  this[kConn].timedOut();
}
function onSocketError(this: TaggedSocket, err: NodeJS.ErrnoException): void {
  this[kConn].errored(err);
}
function onSocketClose(this: TaggedSocket): void {
  this[kConn].closed();
}
function onFrame(c: LeanConnection, opcode: number, data: Buffer, start: number, end: number): void {
  c.frame(opcode, data, start, end);
}

/** The subscribe frame for a channel (request id 2: the second request on every connection). */
export function subscribeFrameFor(channel: string): Buffer {
  return Buffer.from(JSON.stringify({ op: 'subscribe', id: 2, channel }));
}

/** Codes and HTTP answers that mean "admission refused you", for storms. */
function isRefusal(code: number, reason: string): boolean {
  return (code >= 4100 && code < 4200) || code === 1013 || /\b(429|503)\b/.test(reason);
}

/** `ws` bound to a local source address, shaped as the SDK's WebSocket constructor. */
export function boundWebSocket(localAddress: string | undefined): WebSocketConstructor {
  class BoundWebSocket extends WebSocket {
    constructor(url: string) {
      super(url, { perMessageDeflate: false, ...(localAddress ? { localAddress } : {}) });
    }
  }
  return BoundWebSocket as unknown as WebSocketConstructor;
}

/** An SDK connection: `GatehouseClient` with its own reconnects, one channel. */
export class SdkConnection implements LoadConnection {
  readonly client: GatehouseClient;
  private readonly sub: Subscription;
  private isSubscribed = false;
  private everSubscribed = false;
  private down = false;
  private ended = false;
  private lastOffset = 0;
  private sockets = new Set<WebSocket>();

  constructor(
    readonly stats: LoadStats,
    readonly channelIndex: number,
    channel: string,
    endpoint: Endpoint,
    localAddress: string | undefined,
  ) {
    stats.started++;
    const sockets = this.sockets;
    const Base = boundWebSocket(localAddress) as unknown as new (url: string) => WebSocket;
    // Track the live sockets so a storm can cut them the way a network would.
    class Tracked extends Base {
      constructor(url: string) {
        super(url);
        sockets.add(this);
        let opened = false;
        this.once('open', () => {
          opened = true;
          stats.open++;
        });
        this.once('close', () => {
          sockets.delete(this);
          if (opened) stats.open--;
        });
      }
    }
    const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
    this.client = new GatehouseClient(`ws://${host}:${endpoint.port}${endpoint.path}`, {
      WebSocket: Tracked as unknown as WebSocketConstructor,
    });
    this.client.on('disconnected', (e) => {
      if (this.ended) return;
      if (this.isSubscribed) {
        this.isSubscribed = false;
        stats.subscribedTo(channelIndex, -1);
        if (!stats.stopping && stats.stormAt === 0) stats.dropped++;
      }
      stats.closeCode(e.code);
      if (stats.stormAt !== 0) {
        stats.disconnects++;
        this.down = true;
        if (isRefusal(e.code, e.reason)) stats.refusals++;
      } else if (!this.everSubscribed) {
        stats.note(`disconnected ${e.code} ${e.reason.slice(0, 60)}`);
      }
      if (e.retryInMs === undefined && !this.everSubscribed) {
        this.ended = true;
        stats.fail(`gave up: ${e.code} ${e.reason.slice(0, 60)}`);
      }
    });
    this.sub = this.client.subscribe(channel);
    this.sub.on('subscribed', (e) => {
      if (this.isSubscribed) return;
      this.isSubscribed = true;
      this.everSubscribed = true;
      this.lastOffset = e.offset;
      stats.subscribedTo(channelIndex, 1);
      if (this.down && stats.stormAt !== 0) {
        this.down = false;
        stats.back++;
        stats.backLatency.record(performance.now() - stats.stormAt);
      }
    });
    this.sub.on('publication', (p) => {
      stats.received++;
      stats.latency.record(performance.timeOrigin + performance.now() - p.ts);
      if (p.offset !== 0) {
        if (this.lastOffset !== 0 && p.offset !== this.lastOffset + 1) stats.outOfOrder++;
        this.lastOffset = p.offset;
      }
    });
    this.sub.on('error', (err) => {
      if (!this.everSubscribed) stats.fail(`subscribe error: ${err.message.slice(0, 80)}`);
    });
    this.client.connect();
  }

  get gone(): boolean {
    return this.client.state === 'closed' && this.sockets.size === 0;
  }

  get stateName(): string {
    return this.isSubscribed ? 'subscribed' : this.client.state;
  }

  stop(): void {
    this.ended = true;
    if (this.isSubscribed) {
      this.isSubscribed = false;
      this.stats.subscribedTo(this.channelIndex, -1);
    }
    this.client.close();
  }

  drop(): void {
    for (const ws of this.sockets) ws.terminate();
  }
}
