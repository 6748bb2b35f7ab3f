/**
 * SDK clients (`@gatehouse/client`, Node entry) that record everything they see: connects,
 * disconnects, subscriptions, publications and gaps, each with the time it happened. The records
 * are what the accountant judges.
 */
import { GatehouseClient, type BackoffOptions, type TransportKind, type WebSocketConstructor } from '@gatehouse/client';
import type { ClientEvent, ClientLog } from './accountant.js';

/** What a publication's data carries: the publisher's sequence number and route. */
export interface Payload {
  readonly s: number;
  readonly r: string;
}

function isPayload(v: unknown): v is Payload {
  return typeof v === 'object' && v !== null && typeof (v as Payload).s === 'number' && typeof (v as Payload).r === 'string';
}

/** Options of one recording client. */
export interface RecordingClientOptions {
  readonly id: string;
  readonly url: string;
  readonly channels: readonly string[];
  readonly backoff?: BackoffOptions;
  readonly WebSocket?: WebSocketConstructor;
  /** The SDK's transport list (default: the SDK's, WebSocket first). */
  readonly transports?: TransportKind[];
}

/** One SDK client and its record. */
export class RecordingClient implements ClientLog {
  readonly id: string;
  readonly channels: readonly string[];
  readonly events: ClientEvent[] = [];
  readonly client: GatehouseClient;
  /** The node of the current connection, if connected. */
  node: string | undefined;
  /** Channels confirmed on the current connection. */
  readonly subscribedNow = new Set<string>();
  /** Highest sequence number received per channel and route. */
  readonly lastSeq = new Map<string, number>();
  /** Errors the SDK reported (for diagnostics). */
  readonly errors: string[] = [];

  constructor(o: RecordingClientOptions) {
    this.id = o.id;
    this.channels = o.channels;
    this.client = new GatehouseClient(o.url, {
      ...(o.backoff ? { backoff: o.backoff } : {}),
      ...(o.WebSocket ? { WebSocket: o.WebSocket } : {}),
      ...(o.transports ? { transports: o.transports } : {}),
    });
    const c = this.client;
    c.on('connected', (e) => {
      this.node = e.node;
      this.events.push({ t: Date.now(), type: 'connected', node: e.node, reconnect: e.reconnect });
    });
    c.on('disconnected', (e) => {
      this.node = undefined;
      this.subscribedNow.clear();
      this.events.push({ t: Date.now(), type: 'disconnected', code: e.code, reason: e.reason });
    });
    c.on('subscribed', (e) => {
      this.subscribedNow.add(e.channel);
      this.events.push(
        e.recovered === undefined
          ? { t: Date.now(), type: 'subscribed', channel: e.channel }
          : { t: Date.now(), type: 'subscribed', channel: e.channel, recovered: e.recovered },
      );
    });
    c.on('gap', (e) => {
      this.events.push({ t: Date.now(), type: 'gap', channel: e.channel, reason: e.reason });
    });
    c.on('publication', (p) => {
      if (!isPayload(p.data)) {
        this.errors.push(`unexpected data on ${p.channel}: ${JSON.stringify(p.data).slice(0, 80)}`);
        return;
      }
      this.events.push({
        t: Date.now(),
        type: 'pub',
        channel: p.channel,
        seq: p.data.s,
        route: p.data.r,
        epoch: p.epoch,
        offset: p.offset,
      });
      const k = `${p.channel}\u0000${p.data.r}`;
      this.lastSeq.set(k, Math.max(this.lastSeq.get(k) ?? 0, p.data.s));
    });
    c.on('error', (e) => {
      if (this.errors.length < 20) this.errors.push(`${e.code}: ${e.message}`);
    });
    for (const ch of o.channels) c.subscribe(ch);
  }

  /** Connected and every channel confirmed on this connection. */
  get settled(): boolean {
    return this.client.state === 'connected' && this.channels.every((ch) => this.subscribedNow.has(ch));
  }

  /** True when the client received publication `seq` sent on `route` to `channel`, or a later one there. */
  reached(channel: string, route: string, seq: number): boolean {
    return (this.lastSeq.get(`${channel}\u0000${route}`) ?? 0) >= seq;
  }

  connect(): void {
    this.client.connect();
  }

  close(): void {
    this.client.close();
  }
}

/** Options of a pool of clients. */
export interface ClientPoolOptions {
  readonly count: number;
  readonly url: string;
  /** Channels to spread over the clients. */
  readonly channels: readonly string[];
  /** Channels each client subscribes to (consecutive ones, wrapping). Default: all. */
  readonly perClient?: number;
  readonly backoff?: BackoffOptions;
  /** A prefix for client ids. */
  readonly prefix?: string;
  /** How many of the clients use HTTP streaming instead of WebSocket (spread evenly). Default 0. */
  readonly streams?: number;
}

/** M recording clients spread over the channels. */
export class ClientPool {
  readonly clients: RecordingClient[] = [];

  constructor(o: ClientPoolOptions) {
    const per = Math.min(o.channels.length, o.perClient ?? o.channels.length);
    for (let i = 0; i < o.count; i++) {
      const channels = Array.from({ length: per }, (_, k) => o.channels[(i + k) % o.channels.length] as string);
      // Client i streams when the running share of stream clients falls behind `streams / count`.
      const stream = Math.floor(((i + 1) * (o.streams ?? 0)) / o.count) > Math.floor((i * (o.streams ?? 0)) / o.count);
      this.clients.push(
        new RecordingClient({
          id: `${o.prefix ?? 'c'}${stream ? 's' : ''}${i}`,
          url: o.url,
          channels,
          ...(o.backoff ? { backoff: o.backoff } : {}),
          ...(stream ? { transports: ['http-stream'] as TransportKind[] } : {}),
        }),
      );
    }
  }

  connect(): void {
    for (const c of this.clients) c.connect();
  }

  /** Every client connected with every channel confirmed. */
  get settled(): boolean {
    return this.clients.every((c) => c.settled);
  }

  /** Clients by the node they are connected to. */
  byNode(): Map<string, RecordingClient[]> {
    const out = new Map<string, RecordingClient[]>();
    for (const c of this.clients) {
      if (c.node === undefined) continue;
      let list = out.get(c.node);
      if (!list) out.set(c.node, (list = []));
      list.push(c);
    }
    return out;
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}
