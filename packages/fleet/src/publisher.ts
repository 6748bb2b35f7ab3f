/**
 * A publisher at a steady rate. Each tick publishes the next sequence number of the next channel
 * through the next route: a gateway's HTTP publish API (rotating over the live nodes) or straight
 * into the backbone. Publications of one channel go out one after another (each waits for the
 * previous answer), so their sequence numbers follow the channel's order; an error is recorded,
 * never retried (a retry could duplicate a publication whose answer was lost).
 */
import { HttpPublisher } from '@gatehouse/publisher';
import type { SentRecord } from './accountant.js';
import type { Payload } from './clients.js';
import type { DirectPublisher } from './direct.js';

/** One way into the fleet. */
export interface Route {
  /** `http:<node id>` or `direct`. */
  readonly name: string;
  publish(channel: string, payload: Payload): Promise<{ epoch: string; offset: number }>;
}

/** A route through one gateway's HTTP API (no retries: at most once). */
export function httpRoute(nodeId: string, base: string, apiKey: string, timeoutMs = 3000): Route {
  const p = new HttpPublisher({ url: base, apiKey, retries: 0, timeoutMs });
  return { name: `http:${nodeId}`, publish: (channel, payload) => p.publish(channel, payload) };
}

/** A route straight into the backbone. */
export function directRoute(direct: DirectPublisher): Route {
  return { name: 'direct', publish: (channel, payload) => direct.publish(channel, JSON.stringify(payload)) };
}

/** Options of a steady publisher. */
export interface SteadyPublisherOptions {
  readonly channels: readonly string[];
  /** Publications per second, over all channels. */
  readonly ratePerSecond: number;
  /** The routes usable now (evaluated at every tick). */
  readonly routes: () => readonly Route[];
  /** Publications that may wait behind a slow one, per channel; more are skipped (counted). Default 200. */
  readonly maxQueuedPerChannel?: number;
}

/** Publishes at a steady rate until stopped; keeps a record of every attempt. */
export class SteadyPublisher {
  readonly sent: SentRecord[] = [];
  /** Ticks dropped because a channel's queue was full or no route was usable. */
  skipped = 0;
  readonly #o: SteadyPublisherOptions;
  readonly #seq = new Map<string, number>();
  readonly #tail = new Map<string, Promise<void>>();
  readonly #queued = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #ticks = 0;
  #routeTurn = 0;
  #startedAt = 0;

  constructor(o: SteadyPublisherOptions) {
    if (!(o.ratePerSecond > 0)) throw new TypeError(`ratePerSecond must be positive, got ${o.ratePerSecond}`);
    if (o.channels.length === 0) throw new TypeError('channels must not be empty');
    this.#o = o;
  }

  /** Attempts accepted so far. */
  get accepted(): number {
    let n = 0;
    for (const s of this.sent) if (s.outcome === 'accepted') n++;
    return n;
  }

  /** Attempts that failed so far. */
  get failed(): number {
    let n = 0;
    for (const s of this.sent) if (s.outcome === 'failed') n++;
    return n;
  }

  /** Starts ticking. */
  start(): void {
    if (this.#timer) return;
    this.#startedAt = performance.now();
    this.#ticks = 0;
    this.#timer = setInterval(() => this.#tick(), 10);
  }

  /** Stops ticking and resolves once every attempt has an answer. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.all(this.#tail.values());
  }

  /**
   * Publishes one more publication per channel through every route given and waits for the
   * answers. Each route delivers in order, so once a client received a route's marker it has
   * received (or lost for good) everything sent earlier on that route.
   */
  async markers(routes: readonly Route[]): Promise<SentRecord[]> {
    const out: SentRecord[] = [];
    for (const route of routes) {
      for (const channel of this.#o.channels) out.push(this.#enqueue(channel, route));
    }
    await Promise.all(this.#tail.values());
    return out;
  }

  #tick(): void {
    const due = Math.floor(((performance.now() - this.#startedAt) / 1000) * this.#o.ratePerSecond);
    while (this.#ticks < due) {
      const channel = this.#o.channels[this.#ticks % this.#o.channels.length] as string;
      this.#ticks++;
      const routes = this.#o.routes();
      if (routes.length === 0 || (this.#queued.get(channel) ?? 0) >= (this.#o.maxQueuedPerChannel ?? 200)) {
        this.skipped++;
        continue;
      }
      this.#enqueue(channel, routes[this.#routeTurn++ % routes.length] as Route);
    }
  }

  #enqueue(channel: string, route: Route): SentRecord {
    const seq = (this.#seq.get(channel) ?? 0) + 1;
    this.#seq.set(channel, seq);
    const rec: SentRecord = { channel, seq, route: route.name, sentAt: 0, outcome: 'pending' };
    this.sent.push(rec);
    this.#queued.set(channel, (this.#queued.get(channel) ?? 0) + 1);
    const prev = this.#tail.get(channel) ?? Promise.resolve();
    const next = prev.then(async () => {
      rec.sentAt = Date.now();
      try {
        const pos = await route.publish(channel, { s: seq, r: route.name });
        rec.outcome = 'accepted';
        rec.epoch = pos.epoch;
        rec.offset = pos.offset;
      } catch (err) {
        rec.outcome = 'failed';
        rec.error = (err as Error).message;
      }
      rec.ackAt = Date.now();
      this.#queued.set(channel, (this.#queued.get(channel) ?? 1) - 1);
    });
    this.#tail.set(channel, next);
    return rec;
  }
}
