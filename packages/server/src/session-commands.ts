/**
 * What each node does for the server API's fleet requests (fleet-requests.ts): disconnect a user's
 * (or one client's) connections, subscribe or unsubscribe them on the server's initiative, list
 * its channels with subscriber counts, and report its own figures. Every node runs these on the
 * sessions it holds; the asker adds the answers up.
 */
import { CloseCode, encodeServerFrame, matchChannel } from '@gatehouse/protocol';
import type { SlowConnection } from './admin.js';
import type { Backbone } from './backbone.js';
import type { ClientProtocol } from './client-protocol.js';
import type { FleetRequests } from './fleet-requests.js';
import type { Hub } from './hub.js';
import type { NodeStats } from './node-stats.js';
import type { SessionRegistry } from './registry.js';
import { SessionState } from './session.js';
import type { Session } from './session.js';

/** Channels one node lists at most in one answer (the asker merges and cuts again). */
export const MAX_LISTED_CHANNELS = 1000;
/** Bytes of channel names one node lists at most (a control message holds 64 KiB). */
const LISTED_BYTES = 48 * 1024;

/** What the commands work with. */
export interface SessionCommandsDeps {
  node: string;
  registry: SessionRegistry;
  hub: Hub;
  protocol: ClientProtocol;
  backbone: Backbone;
  stats: NodeStats;
  maxSubscriptions: number;
  lagMs(): number;
  ready(): boolean;
  draining(): boolean;
  drain(): void;
  slowest(n: number): SlowConnection[];
}

/** Whom a command is for: every connection of `user`, or the one connection `client`. */
export interface Target {
  user?: string;
  client?: string;
}

function readTarget(d: Record<string, unknown>): Target {
  const t: Target = {};
  if (typeof d['user'] === 'string') t.user = d['user'];
  if (typeof d['client'] === 'string') t.client = d['client'];
  return t;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** Registers this node's handlers for the server API's fleet requests. */
export function registerSessionCommands(requests: FleetRequests, d: SessionCommandsDeps): void {
  const targets = (t: Target): Session[] => {
    const out: Session[] = [];
    if (t.user === undefined && t.client === undefined) return out;
    for (const s of d.registry) {
      if (s.state !== SessionState.Open) continue;
      if (t.client !== undefined && s.id !== t.client) continue;
      if (t.user !== undefined && s.grant?.user !== t.user) continue;
      out.push(s);
    }
    return out;
  };

  requests.handle('disconnect', (data) => {
    const reconnect = data['reconnect'] === true;
    const reason = str(data['reason']) || (reconnect ? 'disconnected by the server; reconnect' : 'disconnected by the server');
    const found = targets(readTarget(data));
    for (const s of found) {
      const code = reconnect ? CloseCode.DisconnectedReconnect : CloseCode.Disconnected;
      // A reconnect is spread over a second, so a user's many devices do not come back at once.
      d.protocol.closeAndDrop(s, code, reason, reconnect ? Math.floor(Math.random() * 1000) : undefined);
    }
    return { disconnected: found.length };
  });

  requests.handle('subscribe', async (data) => {
    const channel = str(data['channel']);
    let subscribed = 0;
    let already = 0;
    let refused = 0;
    const work: Promise<void>[] = [];
    for (const s of targets(readTarget(data))) {
      if (s.channels.includes(channel)) already++;
      else if (s.channels.length >= d.maxSubscriptions) refused++;
      // Request id 0: the hub answers with `server_subscribed` instead of a reply.
      else
        work.push(
          d.hub.subscribe(s, channel, 0, undefined).then(
            () => void subscribed++,
            () => void refused++,
          ),
        );
    }
    await Promise.all(work);
    return { subscribed, alreadySubscribed: already, refused };
  });

  requests.handle('unsubscribe', (data) => {
    const channel = str(data['channel']);
    let unsubscribed = 0;
    for (const s of targets(readTarget(data))) {
      if (!d.hub.unsubscribe(s, channel)) continue;
      unsubscribed++;
      d.hub.send(s, encodeServerFrame({ op: 'server_unsubscribed', channel }));
    }
    return { unsubscribed };
  });

  requests.handle('channels', (data) => {
    const pattern = str(data['pattern']) || '*';
    const limit = Math.min(MAX_LISTED_CHANNELS, Math.max(1, Number(data['limit']) || MAX_LISTED_CHANNELS));
    const matched: [string, number][] = [];
    for (const entry of d.hub.channelSubscribers()) if (matchChannel(pattern, entry[0])) matched.push(entry);
    matched.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const channels: [string, number][] = [];
    let bytes = 0;
    for (const entry of matched) {
      if (channels.length >= limit || (bytes += entry[0].length + 16) > LISTED_BYTES) break;
      channels.push(entry);
    }
    return { channels, matched: matched.length };
  });

  requests.handle('info', async (data) => {
    const n = Math.min(100, Math.max(0, Math.floor(Number(data['slowest']) || 0)));
    let queueMax = 0;
    for (const s of d.registry) if (s.pendingBytes > queueMax) queueMax = s.pendingBytes;
    return {
      node: d.node,
      connections: d.registry.size,
      users: d.registry.userCount,
      channels: d.hub.channelCount,
      ...(await d.stats.rates()),
      outboundQueueMaxBytes: queueMax,
      lagMs: Math.round(d.lagMs() * 10) / 10,
      ready: d.ready(),
      draining: d.draining(),
      backbone: { kind: d.backbone.kind, state: d.backbone.state },
      uptimeSeconds: Math.round(process.uptime()),
      ...(n > 0 ? { slowest: d.slowest(n) } : {}),
    };
  });

  requests.handle('drain', () => {
    const already = d.draining();
    d.drain();
    return { draining: true, alreadyDraining: already };
  });
}
