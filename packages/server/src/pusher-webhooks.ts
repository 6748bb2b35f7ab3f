/**
 * Pusher-format webhooks for apps with a webhook URL: `channel_occupied`, `channel_vacated`,
 * `member_added`, `member_removed` (decided by issue 12's Lifecycle from the fleet-wide presence
 * book, so each is sent once for the fleet, by the node rendezvous hashing picks for the channel)
 * and `client_event` (sent by the node that took the client event). Bodies and signatures are
 * Pusher's: `{"time_ms", "events":[...]}`, `X-Pusher-Key`, and `X-Pusher-Signature` = HMAC-SHA256
 * hex of the body with the app secret, so the `pusher` library's `webhook().isValid()` accepts them.
 *
 * Occupancy needs every subscription in the book, not only presence members: for an app with a
 * webhook, each Pusher subscription joins the book as a connection without a user.
 */
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import type { GatewayMetrics } from './metrics.js';
import type { Presence } from './presence.js';
import { PUSHER_NAMESPACE_PREFIX, pusherChannel, sign } from './pusher-apps.js';
import type { PusherApp } from './pusher-apps.js';
import type { Session } from './session.js';
import { Lifecycle } from './webhooks.js';
import type { WebhookEvent } from './webhooks.js';

/** Events waiting per app at most; the oldest goes past it. */
const MAX_QUEUE = 10_000;
const BATCH = 100;
const ATTEMPTS = 6;

type PusherEvent = Record<string, string>;

/** Posts one app's events, batched per tick, retried with backoff, bounded. */
class AppHook {
  private queue: PusherEvent[] = [];
  private scheduled = false;
  private sending = 0;

  constructor(
    private readonly app: PusherApp & { webhookUrl: string },
    private readonly outcomes: Counter<'outcome'>,
    private readonly log: Logger,
  ) {}

  push(e: PusherEvent): void {
    if (this.queue.length >= MAX_QUEUE) {
      this.queue.shift();
      this.outcomes.inc({ outcome: 'dropped' });
    }
    this.queue.push(e);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    while (this.queue.length > 0 && this.sending < 2) {
      const events = this.queue.splice(0, BATCH);
      this.sending++;
      void this.post(events, 1);
    }
    if (this.queue.length > 0 && !this.scheduled) {
      this.scheduled = true;
      setTimeout(() => this.flush(), 50).unref();
    }
  }

  private async post(events: PusherEvent[], attempt: number): Promise<void> {
    const body = JSON.stringify({ time_ms: Date.now(), events });
    const headers = { 'content-type': 'application/json', 'x-pusher-key': this.app.key, 'x-pusher-signature': sign(this.app.secret, body) };
    const ok = await fetch(this.app.webhookUrl, { method: 'POST', headers, body, signal: AbortSignal.timeout(5000) }).then(
      async (res) => (await res.arrayBuffer().catch(() => undefined), res.status >= 200 && res.status < 300),
      () => false,
    );
    if (!ok && attempt < ATTEMPTS) {
      const delay = Math.min(30_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
      setTimeout(() => void this.post(events, attempt + 1), delay).unref();
      return;
    }
    this.outcomes.inc({ outcome: ok ? 'delivered' : 'failed' }, events.length);
    if (!ok) this.log.warn({ app: this.app.id, events: events.length }, 'Pusher webhook delivery failed; events dropped');
    this.sending--;
    this.flush();
  }
}

/** What the Pusher webhooks read. */
export interface PusherWebhooksDeps {
  apps: readonly PusherApp[];
  presence: Presence;
  /** Connections of `user` in a presence channel, fleet-wide (after the change being reported). */
  connections(channel: string, user: string): number;
  /** The lease tag presence uses (the Gatehouse webhook's, or ''). */
  tag: string;
  reachable(): boolean;
  metrics: GatewayMetrics;
  log: Logger;
}

/** Pusher webhooks of every app that has a URL. */
export class PusherWebhooks {
  private readonly hooks = new Map<string, AppHook>();

  constructor(private readonly d: PusherWebhooksDeps) {
    const outcomes = new Counter({
      name: 'gatehouse_pusher_webhook_events_total',
      help: 'Pusher webhook events by outcome: delivered, failed (attempts ran out), dropped (queue full)',
      labelNames: ['outcome'],
      registers: [d.metrics.registry],
    });
    for (const app of d.apps) {
      if (app.webhookUrl) this.hooks.set(app.id, new AppHook({ ...app, webhookUrl: app.webhookUrl }, outcomes, d.log));
    }
    if (this.hooks.size === 0) return;
    d.presence.book.start();
    // Registered after the presence bridge, so `connections` already counts the change.
    new Lifecycle({
      book: d.presence.book,
      sender: { push: (e) => this.fromLifecycle(e) },
      tag: d.tag,
      graceMs: 0,
      reachable: d.reachable,
    });
  }

  /** True when `app` sends webhooks (its subscriptions then count for occupancy). */
  enabled(app: PusherApp): boolean {
    return this.hooks.has(app.id);
  }

  /** `s` subscribed to a non-presence channel of an app with a webhook: it occupies the channel. */
  occupied(s: Session, channel: string): void {
    this.d.presence.book.join(channel, { client: s.id, user: '' });
  }

  /** `s` left `channel`. Idempotent. */
  left(s: Session, channel: string): void {
    this.d.presence.book.leave(channel, s.id);
  }

  /** A client event was published on this node. */
  clientEvent(app: PusherApp, channel: string, event: string, data: string, socketId: string, userId: string): void {
    const e: PusherEvent = { name: 'client_event', channel, event, data, socket_id: socketId };
    if (userId !== '') e['user_id'] = userId;
    this.hooks.get(app.id)?.push(e);
  }

  private fromLifecycle(e: WebhookEvent): void {
    const channel = e.channel;
    if (channel === undefined || !channel.startsWith(PUSHER_NAMESPACE_PREFIX)) return;
    const hook = this.hooks.get(channel.slice(PUSHER_NAMESPACE_PREFIX.length, channel.indexOf(':')));
    if (!hook) return;
    const name = pusherChannel(channel);
    if (e.name === 'channel_occupied' || e.name === 'channel_vacated') return hook.push({ name: e.name, channel: name });
    if (!name.startsWith('presence-') || !e.user_id) return;
    // Pusher speaks of users: a user's first connection in, and its last one out.
    const n = this.d.connections(channel, e.user_id);
    if ((e.name === 'member_added' && n === 1) || (e.name === 'member_removed' && n === 0)) {
      hook.push({ name: e.name, channel: name, user_id: e.user_id });
    }
  }
}
