/**
 * A Pusher connection: a Session (so the hub, registry, heartbeats, drain and the server API treat
 * it like any other) plus what the Pusher protocol needs per connection.
 */
import type { PusherApp } from './pusher-apps.js';
import { Session } from './session.js';
import type { SessionHandler } from './session.js';
import type { Transport } from './transport.js';

/** One Pusher client. */
export class PusherSession extends Session {
  /** The signed-in user id (`pusher:signin`), '' before. */
  userId = '';
  /** Presence channels joined, by Gatehouse channel: the member's user id (allocated on first join). */
  members: Map<string, string> | undefined;
  /** Client events in the current second (rate limit). */
  clientWindow = 0;
  clientCount = 0;

  constructor(
    transport: Transport,
    handler: SessionHandler,
    readonly app: PusherApp,
  ) {
    super(transport, handler);
  }

  override get protocol(): string {
    return 'pusher';
  }

  /** Counts an inbound message in this second's window (the node's message limit); returns the count. */
  countMessage(): number {
    const now = Math.floor(Date.now() / 1000);
    if (this.msgWindow === now) return ++this.msgCount;
    this.msgWindow = now;
    return (this.msgCount = 1);
  }

  /** Counts a client event in this second's window (Pusher's client event limit); returns the count. */
  countClientEvent(): number {
    const now = Math.floor(Date.now() / 1000);
    if (this.clientWindow === now) return ++this.clientCount;
    this.clientWindow = now;
    return (this.clientCount = 1);
  }
}
