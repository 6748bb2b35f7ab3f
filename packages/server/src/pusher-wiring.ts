/**
 * Builds the Pusher door for a gateway when Pusher apps are configured: the `/app/{key}` WebSocket
 * handler (pusher-protocol.ts) and the `/apps/{id}` HTTP API (pusher-api.ts). Keeps gateway.ts to
 * a few lines of wiring.
 */
import type { Logger } from 'pino';
import type { Backbone } from './backbone.js';
import type { ClientProtocol } from './client-protocol.js';
import type { FleetRequests } from './fleet-requests.js';
import type { Hub } from './hub.js';
import type { GatewayMetrics } from './metrics.js';
import type { GatewayOptions } from './options.js';
import type { Publisher } from './publish.js';
import { PusherApi } from './pusher-api.js';
import { PusherApps } from './pusher-apps.js';
import { PUSHER_WS } from './pusher-framing.js';
import type { Presence } from './presence.js';
import { PusherPresenceBridge } from './pusher-presence.js';
import { PusherProtocol } from './pusher-protocol.js';
import { PusherWebhooks } from './pusher-webhooks.js';
import { webhookTag } from './webhooks.js';
import type { SessionRegistry } from './registry.js';
import type { ProtocolDoor } from './upgrade.js';

/** What the Pusher door is built from. */
export interface PusherWiringDeps {
  hub: Hub;
  registry: SessionRegistry;
  publisher: Publisher;
  protocol: ClientProtocol;
  requests: FleetRequests;
  metrics: GatewayMetrics;
  log: Logger;
  presence: Presence;
  /** Webhooks are left to the rest of the fleet while it is not up. */
  backbone: Backbone;
}

/** The Pusher door's parts. */
export interface PusherParts {
  door: ProtocolDoor;
  api: PusherApi;
  protocol: PusherProtocol;
}

/** The Pusher door, or undefined when no Pusher app is configured. */
export function wirePusher(o: GatewayOptions, d: PusherWiringDeps): PusherParts | undefined {
  if (o.pusherApps.length === 0) return undefined;
  const apps = new PusherApps(o.pusherApps);
  const log = d.log.child({ protocol: 'pusher' });
  const presence = new PusherPresenceBridge(d.presence, d.hub);
  const webhooks = new PusherWebhooks({
    apps: o.pusherApps,
    presence: d.presence,
    connections: (channel, user) => presence.connections(channel, user),
    tag: o.webhookUrl ? webhookTag(o.webhookUrl) : '',
    reachable: () => d.backbone.state === 'up',
    metrics: d.metrics,
    log,
  });
  const protocol = new PusherProtocol({ options: o, apps, ...d, log, presence, webhooks });
  const api = new PusherApi({
    apps,
    publisher: d.publisher,
    requests: d.requests,
    log,
    maxBodyBytes: o.maxPayloadBytes,
    users: (channel) => presence.users(channel),
  });
  const door: ProtocolDoor = { prefix: '/app/', variant: PUSHER_WS, accept: (t, url) => protocol.accept(t, url) };
  return { door, api, protocol };
}
