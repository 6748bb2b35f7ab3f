/**
 * The Pusher Channels client protocol (version 7) on `GET /app/{key}`: one handler for every Pusher
 * connection of the node, beside protocol v1 (client-protocol.ts) on the same transport, sessions,
 * hub, heartbeats, drain and admission. Wire shapes and choices are in docs/pusher.md.
 */
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, Gauge } from 'prom-client';
import { CloseCode } from '@gatehouse/protocol';
import type { ClientProtocol } from './client-protocol.js';
import { ApiError } from './http-api.js';
import type { Hub } from './hub.js';
import type { GatewayMetrics } from './metrics.js';
import type { GatewayOptions } from './options.js';
import type { Publisher } from './publish.js';
import { PUSHER_CHANNEL_RE, gatehouseChannel, sameSignature, sign } from './pusher-apps.js';
import type { PusherApp, PusherApps } from './pusher-apps.js';
import { PUSHER_RECOVERY, eventPublication, pusherFrame } from './pusher-framing.js';
import { PusherSession } from './pusher-session.js';
import type { SessionRegistry } from './registry.js';
import { SessionState } from './session.js';
import type { Session, SessionHandler } from './session.js';
import type { Framing, Transport } from './transport.js';

/** Client events one connection may send per second (Pusher's limit); more are refused with 4301. */
export const CLIENT_EVENTS_PER_SECOND = 10;
/** Seconds of silence after which pusher-js pings (what `connection_established` announces). */
export const ACTIVITY_TIMEOUT_S = 120;
const NO_APP: PusherApp = { id: '', key: '', secret: '' };

/** Presence as the Pusher handler uses it (presence-bridge.ts adapts Gatehouse presence). */
export interface PusherPresence {
  /** `s` joined `channel` (a Gatehouse channel) as `userId` with `info`: the `presence` member object to answer with. */
  join(s: PusherSession, channel: string, userId: string, info: unknown): unknown;
  /** `s` left `channel`. */
  leave(s: PusherSession, channel: string): void;
}

/** What the Pusher handler works with. */
export interface PusherProtocolDeps {
  options: GatewayOptions;
  apps: PusherApps;
  hub: Hub;
  registry: SessionRegistry;
  publisher: Publisher;
  /** Protocol v1's handler: the closes every session shares (drain, slow consumer, limits). */
  protocol: ClientProtocol;
  metrics: GatewayMetrics;
  log: Logger;
  presence?: PusherPresence;
  /** Webhooks (pusher-webhooks.ts): occupancy of channels and client events. */
  webhooks?: {
    enabled(app: PusherApp): boolean;
    occupied(s: Session, channel: string): void;
    left(s: Session, channel: string): void;
    clientEvent(app: PusherApp, channel: string, event: string, data: string, socketId: string, userId: string): void;
  };
}

type Obj = Record<string, unknown>;

/** Pusher's protocol for every Pusher session of the node. */
export class PusherProtocol implements SessionHandler {
  /** Socket ids are `<node part>.<n>`: unique across the fleet with overwhelming odds. */
  private readonly prefix = randomInt(1, 2 ** 31);
  private seq = 0;
  private open = 0;
  private readonly clientEvents: Counter;

  constructor(private readonly d: PusherProtocolDeps) {
    const registers = [d.metrics.registry];
    const open = () => this.open;
    new Gauge({
      name: 'gatehouse_protocol_connections',
      help: 'Open connections on this node by client protocol (gatehouse: protocol v1, pusher: Pusher Channels v7)',
      labelNames: ['protocol'],
      registers,
      collect() {
        this.set({ protocol: 'pusher' }, open());
        this.set({ protocol: 'gatehouse' }, Math.max(0, d.registry.size - open()));
      },
    });
    this.clientEvents = new Counter({ name: 'gatehouse_pusher_client_events_total', help: 'Pusher client events published', registers });
  }

  /** Takes a new connection on `/app/{key}?protocol=7...`. */
  accept(transport: Transport, url: string): PusherSession {
    const q = url.indexOf('?');
    // Keys are plain ASCII: a key that needs percent-decoding is not one of ours, and is never decoded.
    const key = url.slice('/app/'.length, q < 0 ? undefined : q);
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    const app = this.d.apps.key(key);
    const s = new PusherSession(transport, this, app ?? NO_APP);
    this.d.registry.add(s);
    this.open++;
    transport.listen(s);
    if (!app) return (this.refuse(s, 4001, `App key ${key.replace(/[^A-Za-z0-9_.-]/g, '?').slice(0, 64)} not in this cluster`), s);
    const version = query.get('protocol');
    if (version === null) return (this.refuse(s, 4008, 'No protocol version supplied'), s);
    if (!/^[5-7]$/.test(version)) return (this.refuse(s, 4007, `Unsupported protocol version ${version.slice(0, 8)}`), s);
    s.id = `${this.prefix}.${++this.seq}`;
    s.state = SessionState.Open;
    s.openedAt = Date.now();
    this.d.metrics.connectsTotal.inc({ transport: 'websocket', protocol: 'pusher' });
    this.send(s, pusherFrame('pusher:connection_established', { socket_id: s.id, activity_timeout: ACTIVITY_TIMEOUT_S }));
    return s;
  }

  /** Sends `pusher:error` and closes with a Pusher code (not mapped: it is Pusher's already). */
  private refuse(s: Session, code: number, message: string): void {
    if (s.state === SessionState.Closing) return;
    this.error(s, code, message);
    s.state = SessionState.Closing;
    s.closeCode = code;
    s.writeQueued();
    s.transport.close(code, message);
  }

  private send(s: Session, json: string): void {
    this.d.hub.send(s, json);
  }

  private error(s: Session, code: number | null, message: string): void {
    this.d.metrics.protocolErrors.inc({ code: code === null ? 'pusher_error' : `pusher_${code}` });
    this.send(s, `{"event":"pusher:error","data":${JSON.stringify({ code, message })}}`);
  }

  private subscriptionError(s: Session, channel: string, status: number, message: string): void {
    this.d.metrics.protocolErrors.inc({ code: 'pusher_subscription_error' });
    this.send(
      s,
      `{"event":"pusher:subscription_error","channel":${JSON.stringify(channel)},"data":${JSON.stringify({ type: 'AuthError', error: message, status })}}`,
    );
  }

  // ---- transport events ----

  onPing(s: Session, data: Buffer): void {
    this.d.protocol.onPing(s, data);
  }

  onError(s: Session, err: Error & { code?: string }): void {
    this.d.protocol.onError(s, err);
  }

  onClose(s: Session, code: number): void {
    const p = s as PusherSession;
    s.state = SessionState.Closing;
    if (p.members && this.d.presence) for (const channel of p.members.keys()) this.d.presence.leave(p, channel);
    p.members = undefined;
    if (this.d.webhooks?.enabled(p.app)) for (const channel of s.channels) this.d.webhooks.left(s, channel);
    this.d.hub.removeSession(s);
    if (this.d.registry.delete(s)) this.open--;
    if (s.grant && s.grant.user !== '') this.d.registry.removeUser(s.grant.user);
    this.d.metrics.disconnectsTotal.inc({ code: String(s.closeCode || code), transport: 'websocket', protocol: 'pusher' });
  }

  onMessage(s: Session, data: Buffer, isBinary: boolean): void {
    if (s.state !== SessionState.Open || s.closeAfter) return;
    s.alive = true;
    const p = s as PusherSession;
    const max = this.d.options.maxMessagesPerSecond;
    const count = p.countMessage();
    if (count > max * 2) {
      this.d.metrics.protocolErrors.inc({ code: 'rate_limited' });
      return this.d.protocol.closeAfterReplies(s, CloseCode.PolicyViolation, 'message rate above the limit');
    }
    if (count > max) return this.error(s, 4301, `more than ${max} messages per second; slow down`);
    if (isBinary) return this.error(s, null, 'binary frames are not part of the Pusher protocol; send JSON text');
    let msg: Obj;
    try {
      msg = JSON.parse(data.toString('utf8')) as Obj;
    } catch {
      return this.error(s, null, 'message is not valid JSON');
    }
    if (typeof msg !== 'object' || msg === null || typeof msg['event'] !== 'string') {
      return this.error(s, null, 'a message is a JSON object with an "event" string');
    }
    this.handle(p, msg['event'], msg);
  }

  private handle(s: PusherSession, event: string, msg: Obj): void {
    const data = typeof msg['data'] === 'string' ? tryParse(msg['data']) : msg['data'];
    const body = (typeof data === 'object' && data !== null ? data : {}) as Obj;
    switch (event) {
      case 'pusher:ping':
        return this.send(s, pusherFrame('pusher:pong', '{}'));
      case 'pusher:pong':
        return;
      case 'pusher:subscribe':
        return this.subscribe(s, body);
      case 'pusher:unsubscribe':
        return this.unsubscribe(s, body);
      case 'pusher:signin':
        return this.signin(s, body);
      case 'gatehouse:recovery':
        return this.optInRecovery(s);
    }
    if (event.startsWith('client-')) return this.clientEvent(s, event, msg);
    this.error(s, null, `unknown event ${event.slice(0, 64)}`);
  }

  // ---- operations ----

  private subscribe(s: PusherSession, body: Obj): void {
    const channel = body['channel'];
    if (typeof channel !== 'string' || !PUSHER_CHANNEL_RE.test(channel)) {
      return this.error(s, null, 'pusher:subscribe needs a "channel": 1-164 characters from A-Z a-z 0-9 _ - = @ , . ;');
    }
    const app = s.app;
    const presence = channel.startsWith('presence-');
    let member: { id: string; info: unknown } | undefined;
    if (presence || channel.startsWith('private-')) {
      const channelData = typeof body['channel_data'] === 'string' ? body['channel_data'] : '';
      const signed = presence ? `${s.id}:${channel}:${channelData}` : `${s.id}:${channel}`;
      const auth = typeof body['auth'] === 'string' ? body['auth'] : '';
      if (!sameSignature(auth, `${app.key}:${sign(app.secret, signed)}`)) {
        return this.subscriptionError(s, channel, 401, `Invalid signature: expected HMAC SHA256 hex digest of ${signed}`);
      }
      if (presence) {
        member = parseMember(channelData);
        if (!member)
          return this.subscriptionError(s, channel, 400, 'channel_data must be JSON with a "user_id" and at most 1 KiB of "user_info"');
        if (!this.d.presence) return this.subscriptionError(s, channel, 501, 'presence channels are not enabled on this server');
      }
    } else if (channel.startsWith('#')) {
      if (channel !== `#server-to-user-${s.userId}` || s.userId === '') {
        return this.subscriptionError(s, channel, 403, 'sign in as this user first (pusher:signin)');
      }
    }
    const gh = gatehouseChannel(app, channel);
    // pusher-js subscribes again after a lost subscription_succeeded: answer it again, do not fail.
    if (s.channels.includes(gh)) {
      if (!presence) this.send(s, pusherFrame('pusher_internal:subscription_succeeded', '{}', channel));
      return;
    }
    const max = this.d.options.maxSubscriptions;
    if (s.channels.length >= max) return this.subscriptionError(s, channel, 429, `at most ${max} subscriptions per connection`);
    const since = isPosition(body['gatehouse_since']) && s.transport.framing.id >= 4 ? body['gatehouse_since'] : undefined;
    s.inflight++;
    this.d.hub
      .subscribe(s, gh, 1, since)
      .then(() => {
        if (!member && this.d.webhooks?.enabled(app) && s.state === SessionState.Open) this.d.webhooks.occupied(s, gh);
        if (!member || !this.d.presence || s.state !== SessionState.Open || !s.channels.includes(gh)) return;
        (s.members ??= new Map()).set(gh, member.id);
        const presenceData = this.d.presence.join(s, gh, member.id, member.info);
        this.send(s, pusherFrame('pusher_internal:subscription_succeeded', { presence: presenceData }, channel));
      })
      .catch((err: unknown) => {
        this.d.log.warn({ err, channel: gh }, 'pusher subscribe failed');
        if (s.state === SessionState.Open) this.subscriptionError(s, channel, 503, 'backbone unavailable; retry');
      })
      .finally(() => s.inflight--);
  }

  /** The recovery extension (docs/pusher.md): this connection's events carry positions from now on. */
  private optInRecovery(s: PusherSession): void {
    const framing = PUSHER_RECOVERY[s.transport.framing.id];
    // The framing is the transport's and fixed for a plain connection; this is the one place that
    // swaps it (between two framings of the same transport, so the bytes stay valid).
    if (framing) (s.transport as { framing: Framing }).framing = framing;
    this.send(s, pusherFrame('gatehouse:recovery_enabled', '{}'));
  }

  private unsubscribe(s: PusherSession, body: Obj): void {
    const channel = body['channel'];
    if (typeof channel !== 'string' || !PUSHER_CHANNEL_RE.test(channel)) return;
    const gh = gatehouseChannel(s.app, channel);
    this.d.hub.unsubscribe(s, gh);
    if (s.members?.delete(gh)) this.d.presence?.leave(s, gh);
    this.d.webhooks?.left(s, gh);
  }

  private signin(s: PusherSession, body: Obj): void {
    const userData = typeof body['user_data'] === 'string' ? body['user_data'] : '';
    const auth = typeof body['auth'] === 'string' ? body['auth'] : '';
    const app = s.app;
    if (!sameSignature(auth, `${app.key}:${sign(app.secret, `${s.id}::user::${userData}`)}`)) {
      return this.error(s, 4009, 'Invalid signature for pusher:signin');
    }
    const user = tryParse(userData) as Obj | undefined;
    const id = user?.['id'];
    if (typeof id !== 'string' || id.length === 0 || id.length > 200)
      return this.error(s, 4009, 'user_data must be JSON with a non-empty "id" string');
    if (s.userId !== '') return this.error(s, 4009, 'already signed in');
    const key = `${app.id}:${id}`;
    const n = this.d.registry.userConnections(key);
    if (n >= this.d.options.maxConnectionsPerUser) {
      return this.refuse(s, 4004, `user holds ${n} connections; the limit is ${this.d.options.maxConnectionsPerUser}`);
    }
    this.d.registry.addUser(key);
    s.userId = id;
    s.grant = { user: key, subscribe: [], publish: [], expiresAt: undefined, jti: undefined };
    this.send(s, pusherFrame('pusher:signin_success', { user_data: userData }));
  }

  private clientEvent(s: PusherSession, event: string, msg: Obj): void {
    const channel = msg['channel'];
    if (typeof channel !== 'string') return this.error(s, null, 'a client event needs a "channel"');
    const gh = gatehouseChannel(s.app, channel);
    const presence = channel.startsWith('presence-');
    if (!(presence || channel.startsWith('private-')) || channel.startsWith('private-encrypted-')) {
      return this.error(s, null, 'client events are only allowed on private and presence channels');
    }
    if (!s.channels.includes(gh)) return this.error(s, null, `not subscribed to ${channel}`);
    if (event.length > 200) return this.error(s, null, 'event names are at most 200 characters');
    if (s.countClientEvent() > CLIENT_EVENTS_PER_SECOND) return this.error(s, 4301, 'Client event rejected due to rate limit');
    let dataJson: string;
    try {
      dataJson = JSON.stringify(msg['data'] ?? null);
    } catch {
      return this.error(s, null, '"data" is nested too deeply');
    }
    const userId = presence ? s.members?.get(gh) : undefined;
    this.clientEvents.inc();
    this.d.webhooks?.clientEvent(s.app, channel, event, dataJson, s.id, userId ?? '');
    this.d.publisher.publish(gh, eventPublication(s.id, event, channel, dataJson, userId), 'client').catch((err: unknown) => {
      if (s.state !== SessionState.Open) return;
      this.error(s, null, err instanceof ApiError ? err.message : 'client event could not be published');
    });
  }
}

function isPosition(v: unknown): v is { epoch: string; offset: number } {
  const p = v as Obj | undefined;
  return typeof p?.['epoch'] === 'string' && p['epoch'].length <= 64 && Number.isSafeInteger(p['offset']) && (p['offset'] as number) >= 0;
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The member in a presence subscription's `channel_data`, or undefined when it has none. */
function parseMember(channelData: string): { id: string; info: unknown } | undefined {
  const d = tryParse(channelData) as Obj | undefined;
  const id = d?.['user_id'];
  if ((typeof id !== 'string' || id.length === 0 || id.length > 200) && typeof id !== 'number') return undefined;
  // The member travels in every node's presence lease: keep it small.
  if (JSON.stringify(d?.['user_info'] ?? null).length > 1024) return undefined;
  return { id: String(id), info: d?.['user_info'] ?? null };
}
