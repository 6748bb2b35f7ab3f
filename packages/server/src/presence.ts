/**
 * Presence on this node: who is in each channel of a namespace with `presence: true`, kept for
 * the whole fleet by the PresenceBook (backbone-kit: leases and deltas over the control plane).
 *
 * A subscriber of a presence channel is a member (its connection id, user id and the token's
 * `info` claim) from its `subscribed` reply until it unsubscribes or its connection ends. Queries
 * answer from this node's book (no fan-in); `join`/`leave` frames go to this node's subscribers
 * of a `joinLeave` namespace; other modules (webhooks, the admin UI, other protocols) use
 * `members`, `stats` and `onChange`.
 */
import type { Logger } from 'pino';
import { encodeServerFrame } from '@gatehouse/protocol';
import type { ClientFrame, PresenceInfo } from '@gatehouse/protocol';
import { PresenceBook, PresenceControl } from './backbone.js';
import type { PresenceChange, PresenceMember } from './backbone.js';
import type { Backbone } from './backbone.js';
import type { ControlPlane } from './control.js';
import type { Hub } from './hub.js';
import type { GatewayMetrics } from './metrics.js';
import type { GatewayOptions } from './options.js';
import type { Publisher } from './publish.js';
import { Gauge } from 'prom-client';
import type { Session } from './session.js';
import { Lifecycle, WebhookSender, webhookTag } from './webhooks.js';

export type { PresenceChange, PresenceMember };

/** What presence works with. */
export interface PresenceDeps {
  /** Namespaces, the announce interval (the lease interval) and the webhook settings. */
  options: GatewayOptions;
  control: ControlPlane;
  backbone: Backbone;
  hub: Pick<Hub, 'send'>;
  metrics: GatewayMetrics;
  log: Logger;
  /** The namespace of a channel, if configured. */
  publisher: Pick<Publisher, 'namespace'>;
}

/** Channels whose encoded member list is kept. */
const ENCODED_CHANNELS = 1000;

/** The wire shape of a member. */
export function presenceInfo(m: PresenceMember): PresenceInfo {
  return m.info === undefined ? { client: m.client, user: m.user } : { client: m.client, user: m.user, info: { ...m.info } };
}

/** Fleet-wide presence as this node serves it. */
export class Presence {
  readonly book: PresenceBook;
  /** Presence channel -> this node's member sessions. */
  private readonly local = new Map<string, Set<Session>>();
  /** Encoded member lists by channel (see `membersJson`), at most ENCODED_CHANNELS. */
  private readonly encoded = new Map<string, string>();
  private readonly webhooks: { sender: WebhookSender; lifecycle: Lifecycle } | undefined;
  /** Off when no namespace keeps presence, no webhook is configured and no Pusher app exists: nothing is sent. */
  readonly active: boolean;

  /**
   * Starts at once when any namespace keeps presence or a webhook is configured: leases go out
   * while the backbone is up, and everything stops when it is closed (the gateway closed).
   */
  constructor(private readonly d: PresenceDeps) {
    const o = d.options;
    const webhook = o.webhookUrl ? { url: o.webhookUrl, secret: o.webhookSecret as string } : undefined;
    const tag = webhook ? webhookTag(webhook.url) : '';
    // Pusher apps keep presence channels and occupancy in the book too (pusher-presence.ts).
    this.active = webhook !== undefined || o.pusherApps.length > 0 || Object.values(o.namespaces).some((ns) => ns.presence === true);
    this.book = new PresenceBook({
      node: o.nodeId,
      intervalMs: o.announceIntervalMs,
      tag,
      send: (type, data) => {
        if (d.backbone.state === 'closed') this.stop();
        if (d.backbone.state !== 'up') return Promise.resolve();
        return d.backbone.sendControl({ type, from: o.nodeId, data });
      },
    });
    if (this.active) {
      // A node without presence keeps nobody's members: it could not answer for them anyway.
      d.control.on(PresenceControl.Delta, (msg) => this.book.onControl(msg));
      d.control.on(PresenceControl.Lease, (msg) => this.book.onControl(msg));
    }
    this.book.onChange((c) => this.sendJoinLeave(c));
    const book = this.book;
    new Gauge({
      name: 'gatehouse_presence_members',
      help: 'Presence memberships this node knows of, fleet-wide',
      registers: [d.metrics.registry],
      collect() {
        this.set(book.memberCount);
      },
    });
    new Gauge({
      name: 'gatehouse_presence_settled_nodes',
      help: 'Nodes (this one included while it reaches the fleet) whose leases this node has held for a full lease period',
      registers: [d.metrics.registry],
      collect() {
        this.set(book.settledNodes(tag).length);
      },
    });
    if (webhook) {
      const sender = new WebhookSender(webhook, d.metrics, d.log);
      this.webhooks = {
        sender,
        lifecycle: new Lifecycle({ book, sender, tag, graceMs: o.webhookGraceMs, reachable: () => d.backbone.state === 'up' }),
      };
    }
    if (this.active) this.book.start();
  }

  /** True when `channel`'s namespace keeps presence. */
  enabled(channel: string): boolean {
    return this.d.publisher.namespace(channel)?.presence === true;
  }

  /**
   * The node shuts down: the rest of the fleet drops its members at once and sends their webhook
   * events; this node sends no more. Call before closing the connections.
   */
  retire(): void {
    this.book.retire();
  }

  /** Stops sending leases and webhooks (the backbone closed). */
  stop(): void {
    this.book.stop();
    this.webhooks?.lifecycle.stop();
    this.webhooks?.sender.close();
  }

  /** The hub answered `s`'s subscribe to `channel`: it is a member from now on. */
  joined(s: Session, channel: string): void {
    if (!this.enabled(channel)) return;
    let set = this.local.get(channel);
    if (!set) this.local.set(channel, (set = new Set()));
    set.add(s);
    const grant = s.grant;
    const info = grant?.info;
    this.book.join(
      channel,
      info === undefined ? { client: s.id, user: grant?.user ?? '' } : { client: s.id, user: grant?.user ?? '', info },
    );
  }

  /** `s` left `channel` (unsubscribed, or its connection ended). Idempotent. */
  left(s: Session, channel: string): void {
    const set = this.local.get(channel);
    if (!set?.delete(s)) return;
    if (set.size === 0) this.local.delete(channel);
    this.book.leave(channel, s.id);
  }

  /** Members of `channel`, fleet-wide. */
  members(channel: string): PresenceInfo[] {
    return this.book.members(channel).map(presenceInfo);
  }

  /**
   * The members of `channel` as a JSON array, encoded once and kept until the channel's
   * membership changes (a large channel asked often is encoded once per change, not per query).
   */
  membersJson(channel: string): string {
    let json = this.encoded.get(channel);
    if (json === undefined) {
      json = JSON.stringify(this.members(channel));
      if (this.encoded.size >= ENCODED_CHANNELS) this.encoded.delete(this.encoded.keys().next().value as string);
      this.encoded.set(channel, json);
    }
    return json;
  }

  /** Connections and distinct users in `channel`, fleet-wide. */
  stats(channel: string): { clients: number; users: number } {
    return this.book.stats(channel);
  }

  /** Calls `fn` for every join and leave in any presence channel of the fleet. */
  onChange(fn: (c: PresenceChange) => void): void {
    this.book.onChange(fn);
  }

  private sendJoinLeave(arg: PresenceChange): void {
    this.encoded.delete(arg.channel);
    const set = this.local.get(arg.channel);
    if (!set || this.d.publisher.namespace(arg.channel)?.joinLeave !== true) return;
    // One JSON text for every local subscriber.
    const json = encodeServerFrame({ op: arg.kind, channel: arg.channel, info: presenceInfo(arg.member) });
    for (const s of set) this.d.hub.send(s, json);
  }

  /** Answers a client's `presence` or `presence_stats` request. */
  query(s: Session, frame: ClientFrame, error: (code: 'not_subscribed' | 'bad_request', message: string) => void): void {
    if (frame.op !== 'presence' && frame.op !== 'presence_stats') return;
    if (!this.enabled(frame.channel)) return error('bad_request', `presence is not enabled for ${frame.channel}`);
    if (!s.channels.includes(frame.channel)) return error('not_subscribed', `subscribe to ${frame.channel} to see its presence`);
    const json =
      frame.op === 'presence'
        ? `{"op":"presence","id":${frame.id},"channel":${JSON.stringify(frame.channel)},"members":${this.membersJson(frame.channel)}}`
        : encodeServerFrame({ op: 'presence_stats', id: frame.id, channel: frame.channel, ...this.stats(frame.channel) });
    this.d.hub.send(s, json);
  }
}
