/**
 * Pusher presence channels on Gatehouse presence (presence.ts, issue 12's fleet-wide book): a
 * Pusher member is the connection with the `user_id` and `user_info` of its signed `channel_data`.
 * Pusher counts users, not connections: `member_added` goes out when a user's first connection
 * joins the channel anywhere in the fleet, `member_removed` when its last one leaves (a node that
 * dies takes its members with it once its lease runs out).
 */
import type { PresenceChange } from './backbone.js';
import type { Hub } from './hub.js';
import type { Presence } from './presence.js';
import { pusherChannel } from './pusher-apps.js';
import { pusherFrame } from './pusher-framing.js';
import type { PusherPresence } from './pusher-protocol.js';
import type { PusherSession } from './pusher-session.js';

/** Pusher's member list in `subscription_succeeded`. */
export interface PusherMembers {
  ids: string[];
  hash: Record<string, unknown>;
  count: number;
}

function isPusherPresence(channel: string): boolean {
  return channel.startsWith('pusher-') && channel.includes(':presence-');
}

/** Presence for the Pusher handler. */
export class PusherPresenceBridge implements PusherPresence {
  /** This node's Pusher subscribers of each presence channel. */
  private readonly local = new Map<string, Set<PusherSession>>();
  /** Connections per user in each Pusher presence channel, fleet-wide (bounded by the book). */
  private readonly counts = new Map<string, Map<string, number>>();

  constructor(
    private readonly presence: Presence,
    private readonly hub: Pick<Hub, 'send'>,
  ) {
    // The book runs only where a namespace keeps presence; Pusher presence channels need it too.
    presence.book.start();
    presence.onChange((c) => this.onChange(c));
  }

  join(s: PusherSession, channel: string, userId: string, info: unknown): PusherMembers {
    const plain = typeof info === 'object' && info !== null && !Array.isArray(info) ? (info as Record<string, unknown>) : undefined;
    this.presence.book.join(channel, plain === undefined ? { client: s.id, user: userId } : { client: s.id, user: userId, info: plain });
    let set = this.local.get(channel);
    if (!set) this.local.set(channel, (set = new Set()));
    set.add(s);
    return this.members(channel);
  }

  leave(s: PusherSession, channel: string): void {
    const set = this.local.get(channel);
    if (set?.delete(s) && set.size === 0) this.local.delete(channel);
    this.presence.book.leave(channel, s.id);
  }

  /** Connections of `user` in `channel`, fleet-wide. */
  connections(channel: string, user: string): number {
    return this.counts.get(channel)?.get(user) ?? 0;
  }

  /** Distinct user ids in `channel`, fleet-wide. */
  users(channel: string): string[] {
    return [...(this.counts.get(channel)?.keys() ?? [])];
  }

  /** The channel's members as Pusher lists them: one entry per user. */
  members(channel: string): PusherMembers {
    const hash: Record<string, unknown> = {};
    for (const m of this.presence.book.members(channel)) hash[m.user] ??= m.info ?? null;
    const ids = Object.keys(hash);
    return { ids, hash, count: ids.length };
  }

  private onChange(c: PresenceChange): void {
    if (!isPusherPresence(c.channel)) return;
    let users = this.counts.get(c.channel);
    if (!users) this.counts.set(c.channel, (users = new Map()));
    const user = c.member.user;
    const n = (users.get(user) ?? 0) + (c.kind === 'join' ? 1 : -1);
    if (n > 0) users.set(user, n);
    else users.delete(user);
    if (users.size === 0) this.counts.delete(c.channel);
    // Pusher speaks of users: only a user's first connection in and last one out count.
    if ((c.kind === 'join' && n !== 1) || (c.kind === 'leave' && n > 0)) return;
    const set = this.local.get(c.channel);
    if (!set) return;
    const name = pusherChannel(c.channel);
    const json =
      c.kind === 'join'
        ? pusherFrame('pusher_internal:member_added', { user_id: user, user_info: c.member.info ?? null }, name)
        : pusherFrame('pusher_internal:member_removed', { user_id: user }, name);
    for (const s of set) if (s.id !== c.member.client) this.hub.send(s, json);
  }
}
