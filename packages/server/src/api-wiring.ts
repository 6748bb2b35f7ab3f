/**
 * Builds the server API's parts for a gateway: fleet requests over the control plane, this node's
 * handlers for them, idempotent publish, the HTTP calls and (with `adminUi`) the admin UI. The
 * gateway hands in what they read; this keeps gateway.ts to a few lines of wiring.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { AdminUi } from './admin-ui.js';
import type { SlowConnection } from './admin.js';
import type { Backbone } from './backbone.js';
import type { ClientProtocol } from './client-protocol.js';
import type { ControlPlane } from './control.js';
import { FailureLimiter } from './failure-limiter.js';
import type { FleetView } from './fleet.js';
import { FleetRequests } from './fleet-requests.js';
import type { ApiKeys } from './http-api.js';
import type { Hub } from './hub.js';
import { Idempotency } from './idempotency.js';
import type { GatewayMetrics } from './metrics.js';
import { NodeStats } from './node-stats.js';
import type { GatewayOptions } from './options.js';
import type { Publisher } from './publish.js';
import type { SessionRegistry } from './registry.js';
import { ServerApi } from './server-api.js';
import { registerSessionCommands } from './session-commands.js';
import { SessionState } from './session.js';

/** What the server API reads about the node. */
export interface ApiWiringDeps {
  backbone: Backbone;
  control: ControlPlane;
  view: FleetView;
  registry: SessionRegistry;
  hub: Hub;
  protocol: ClientProtocol;
  publisher: Publisher;
  apiKeys: ApiKeys;
  metrics: GatewayMetrics;
  log: Logger;
}

/** What the server API reads about the node's state and may do to it. */
export interface NodeHooks {
  lag: { readonly lagMs: number };
  ready(): boolean;
  draining(): boolean;
  drain(): void;
}

/** The parts the HTTP routes use. */
export interface ApiParts {
  api: ServerApi;
  idempotency: Idempotency;
  adminUi: AdminUi | undefined;
  /** Fleet request/reply (the Pusher API asks the fleet through it too). */
  requests: FleetRequests;
}

/** The client's address as the node sees it (the first X-Forwarded-For hop behind a trusted proxy). */
export function requestAddress(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const fwd = req.headers['x-forwarded-for'];
    const first = (Array.isArray(fwd) ? fwd[0] : fwd)?.split(',', 1)[0]?.trim();
    if (first) return first.slice(0, 64);
  }
  return req.socket.remoteAddress ?? 'unknown';
}

/** The node's open connections with the most bytes waiting, most first (the ones cut first as slow consumers). */
export function slowestSessions(registry: SessionRegistry, n: number): SlowConnection[] {
  const all: SlowConnection[] = [];
  for (const s of registry) {
    if (s.state !== SessionState.Open) continue;
    all.push({ client: s.id, user: s.grant?.user ?? '', address: s.address, pendingBytes: s.pendingBytes, channels: s.channels.length });
  }
  return all.sort((a, b) => b.pendingBytes - a.pendingBytes).slice(0, n);
}

/** Creates the server API's parts and registers this node's fleet handlers. */
export function wireServerApi(o: GatewayOptions, d: ApiWiringDeps, node: NodeHooks): ApiParts {
  const requests = new FleetRequests(d.control, () => d.view.list().map((m) => m.node), d.log);
  registerSessionCommands(requests, {
    node: o.nodeId,
    registry: d.registry,
    hub: d.hub,
    protocol: d.protocol,
    backbone: d.backbone,
    stats: new NodeStats(d.metrics),
    maxSubscriptions: o.maxSubscriptions,
    lagMs: () => node.lag.lagMs,
    ready: node.ready,
    draining: node.draining,
    drain: node.drain,
    slowest: (n) => slowestSessions(d.registry, n),
  });
  const idempotency = new Idempotency({
    node: o.nodeId,
    backbone: d.backbone,
    requests,
    owner: (id) => d.view.preferredNode(id),
    windowMs: o.idempotencyWindowMs,
    publish: (channel, data) => d.publisher.publish(channel, data, 'api').then((p) => ({ channel, epoch: p.epoch, offset: p.offset })),
  });
  const limiter = new FailureLimiter(o.maxAuthFailures);
  const clientAddress = (req: IncomingMessage) => requestAddress(req, o.trustProxy);
  const api = new ServerApi({ backbone: d.backbone, publisher: d.publisher, apiKeys: d.apiKeys, limiter, requests, clientAddress });
  const adminUi = o.adminUi
    ? new AdminUi({
        apiKeys: o.apiKeys,
        limiter,
        clientAddress,
        secure: (req) => o.tlsCert !== undefined || (o.trustProxy && req.headers['x-forwarded-proto'] === 'https'),
      })
    : undefined;
  return { api, idempotency, adminUi, requests };
}
