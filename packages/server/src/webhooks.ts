/**
 * Lifecycle webhooks (docs/presence.md): `member_added`/`member_removed`, `channel_occupied`/
 * `channel_vacated` and `user_online`/`user_offline` (after a grace period, so a page refresh sends
 * nothing), posted to the application's endpoint, HMAC-SHA256 signed, retried with backoff.
 *
 * Every node sees every presence change (the book), and exactly one node sends each event: the
 * node picked for the event's key (the channel, or the user) by rendezvous hashing over the live
 * nodes that share this endpoint, which every node computes alike from its own book. A node that
 * does not hear itself on the control plane (cut off), or only just does again, sends nothing:
 * the rest of the fleet speaks for its members meanwhile.
 *
 * Delivery is at least once: a batch is retried until the endpoint answers 2xx or the attempts run
 * out. The queue is bounded: past the cap the oldest event is dropped and counted, so a dead
 * endpoint costs a fixed amount of memory and never holds up anything else.
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram } from 'prom-client';
import { RendezvousHash } from './backbone.js';
import type { PresenceBook, PresenceChange } from './backbone.js';
import type { GatewayMetrics } from './metrics.js';

/** One lifecycle event as the endpoint receives it. */
export interface WebhookEvent {
  /** Unique per event: receivers dedupe retried deliveries by it. */
  id: string;
  name: 'member_added' | 'member_removed' | 'channel_occupied' | 'channel_vacated' | 'user_online' | 'user_offline';
  /** When the gateway decided the event, ms since the epoch. */
  time_ms: number;
  channel?: string;
  user_id?: string;
  client_id?: string;
  info?: Record<string, unknown>;
}

/** Signature header: `sha256=<hex HMAC-SHA256 of the raw body with the secret>`. */
export const SIGNATURE_HEADER = 'x-gatehouse-signature';

/** Signs a webhook body. */
export function signWebhook(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** The tag nodes sharing an endpoint carry in their leases (no secret in it). */
export function webhookTag(url: string): string {
  return createHash('sha256').update(url).digest('hex').slice(0, 16);
}

/** Delivery knobs. */
export interface WebhookSenderOptions {
  url: string;
  secret: string;
  /** Events kept waiting at most; the oldest goes past it. Default 10000. */
  maxQueue?: number;
  /** Events per request, at most. Default 100. */
  batch?: number;
  /** Requests in flight, at most. Default 2. */
  concurrency?: number;
  /** Attempts per batch. Default 8 (about a minute of backoff). */
  attempts?: number;
  /** First retry delay, ms (doubles, capped at 30 s, with jitter). Default 250. */
  retryMs?: number;
  /** Per-request timeout, ms. Default 5000. */
  timeoutMs?: number;
}

/** Posts events to one endpoint, bounded and retried. */
export class WebhookSender {
  private readonly queue: WebhookEvent[] = [];
  private head = 0;
  private inflight = 0;
  private closed = false;
  private readonly deliveries: Counter<'outcome'>;
  private readonly latency: Histogram;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly o: WebhookSenderOptions,
    metrics: GatewayMetrics,
    private readonly log: Logger,
  ) {
    const registers = [metrics.registry];
    this.deliveries = new Counter({
      name: 'gatehouse_webhook_events_total',
      help: 'Webhook events by outcome: delivered, failed (attempts ran out), dropped (queue full)',
      labelNames: ['outcome'],
      registers,
    });
    this.latency = new Histogram({
      name: 'gatehouse_webhook_request_seconds',
      help: 'Webhook request duration (each attempt)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    const waiting = (): number => this.waiting;
    new Gauge({
      name: 'gatehouse_webhook_queue',
      help: 'Webhook events waiting to be sent',
      registers,
      collect() {
        this.set(waiting());
      },
    });
  }

  /** Events waiting. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** Queues an event; drops the oldest past the cap. */
  push(e: WebhookEvent): void {
    if (this.closed) return;
    if (this.waiting >= (this.o.maxQueue ?? 10_000)) {
      this.head++;
      this.deliveries.inc({ outcome: 'dropped' });
    }
    this.queue.push(e);
    this.pump();
  }

  private pump(): void {
    while (!this.closed && this.inflight < (this.o.concurrency ?? 2) && this.waiting > 0) {
      const n = Math.min(this.waiting, this.o.batch ?? 100);
      const events = this.queue.slice(this.head, this.head + n);
      this.head += n;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.inflight++;
      void this.deliver(events, 1);
    }
  }

  private async deliver(events: WebhookEvent[], attempt: number): Promise<void> {
    const body = JSON.stringify({ time_ms: Date.now(), events });
    const started = performance.now();
    let ok: boolean;
    try {
      const res = await fetch(this.o.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signWebhook(this.o.secret, body) },
        body,
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 5000),
      });
      await res.arrayBuffer().catch(() => undefined);
      ok = res.status >= 200 && res.status < 300;
    } catch {
      ok = false;
    }
    this.latency.observe((performance.now() - started) / 1000);
    if (ok) {
      this.deliveries.inc({ outcome: 'delivered' }, events.length);
    } else if (attempt < (this.o.attempts ?? 8) && !this.closed) {
      const base = Math.min(30_000, (this.o.retryMs ?? 250) * 2 ** (attempt - 1));
      const timer = setTimeout(
        () => {
          this.timers.delete(timer);
          void this.deliver(events, attempt + 1);
        },
        base / 2 + Math.random() * (base / 2),
      );
      this.timers.add(timer);
      timer.unref();
      return;
    } else {
      this.deliveries.inc({ outcome: 'failed' }, events.length);
      this.log.warn({ events: events.length, attempts: attempt }, 'webhook delivery failed; events dropped');
    }
    this.inflight--;
    this.pump();
  }

  /** Stops sending; what waits is dropped. */
  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

/** What turns presence changes into webhook events. */
export interface LifecycleDeps {
  book: PresenceBook;
  sender: Pick<WebhookSender, 'push'>;
  /** This node's lease tag (the endpoint's). */
  tag: string;
  graceMs: number;
  /** False while this node's backbone is not up: it must not speak for the fleet then. */
  reachable(): boolean;
  /** Pending offline decisions kept at most (past it, offline is decided at once). Default 100000. */
  maxPending?: number;
}

/** Decides which lifecycle events exist and whether this node sends them. */
export class Lifecycle {
  /** User -> timer of the `user_offline` that fires unless the user comes back. */
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private ring: RendezvousHash | undefined;
  private ringKey = '';

  constructor(private readonly d: LifecycleDeps) {
    d.book.onChange((c) => this.onChange(c));
  }

  private onChange(c: PresenceChange): void {
    const now = Date.now();
    const m = c.member;
    if (c.kind === 'join') {
      if (c.clients === 1) this.emit({ name: 'channel_occupied', channel: c.channel }, c.channel, now);
      this.emit(
        { name: 'member_added', channel: c.channel, user_id: m.user, client_id: m.client, ...(m.info ? { info: { ...m.info } } : {}) },
        c.channel,
        now,
      );
      if (m.user !== '' && c.userMemberships === 1) {
        const timer = this.pending.get(m.user);
        if (timer) {
          // Back within the grace period: neither offline nor online.
          clearTimeout(timer);
          this.pending.delete(m.user);
        } else this.emit({ name: 'user_online', user_id: m.user }, m.user, now);
      }
      return;
    }
    this.emit({ name: 'member_removed', channel: c.channel, user_id: m.user, client_id: m.client }, c.channel, now);
    if (c.clients === 0) this.emit({ name: 'channel_vacated', channel: c.channel }, c.channel, now);
    if (m.user !== '' && c.userMemberships === 0 && !this.pending.has(m.user)) {
      if (this.pending.size >= (this.d.maxPending ?? 100_000)) {
        this.emit({ name: 'user_offline', user_id: m.user }, m.user, now);
        return;
      }
      const user = m.user;
      const timer = setTimeout(() => {
        this.pending.delete(user);
        if (this.d.book.userMemberships(user) === 0) this.emit({ name: 'user_offline', user_id: user }, user, Date.now());
      }, this.d.graceMs);
      timer.unref();
      this.pending.set(user, timer);
    }
  }

  /** Sends `e` when this node is the one picked for `key`. */
  private emit(e: Omit<WebhookEvent, 'id' | 'time_ms'>, key: string, now: number): void {
    if (this.sender(key) !== this.d.book.node) return;
    this.d.sender.push({ id: randomUUID(), time_ms: now, ...e } as WebhookEvent);
  }

  /**
   * The node that sends events for `key`, or undefined when this node must not decide: it has not
   * reached the fleet for a full lease period (cut off, starting, or just back).
   */
  sender(key: string): string | undefined {
    const names = this.d.book.settledNodes(this.d.tag);
    if (!this.d.reachable() || !names.includes(this.d.book.node)) return undefined;
    const ringKey = names.join('\n');
    if (ringKey !== this.ringKey) {
      this.ring = names.length > 0 ? new RendezvousHash(names) : undefined;
      this.ringKey = ringKey;
    }
    return this.ring?.pick(key);
  }

  stop(): void {
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
  }
}
