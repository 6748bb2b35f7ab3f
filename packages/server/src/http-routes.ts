/**
 * The node's plain HTTP routes: health, readiness, metrics, the publish API, the rest of the server
 * API (server-api.ts), the admin API, the admin UI when enabled (admin-ui.ts), and the browser SDK
 * with its demo page (static.ts).
 * WebSocket upgrades never come here (upgrade.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { handleAdmin } from './admin.js';
import type { AdminContext } from './admin.js';
import type { AdminUi } from './admin-ui.js';
import type { Backbone } from './backbone.js';
import { ApiError, parsePublishBody, readBody, sendError, sendJson } from './http-api.js';
import type { Idempotency } from './idempotency.js';
import type { GatewayMetrics } from './metrics.js';
import type { GatewayOptions } from './options.js';
import { handlePresenceApi } from './presence-api.js';
import type { Presence } from './presence.js';
import type { Publisher } from './publish.js';
import { SERVER_API_ROUTES, respond } from './server-api.js';
import type { ServerApi } from './server-api.js';
import { StaticRoutes } from './static.js';

/** Channels one broadcast may name. */
const MAX_BROADCAST_CHANNELS = 1000;

/** What the routes read about the node. */
export interface NodeStatus {
  closed(): boolean;
  ready(): boolean;
  draining(): boolean;
  connections(): number;
}

/** What the routes work with. */
export interface HttpRoutesDeps {
  options: GatewayOptions;
  backbone: Backbone;
  metrics: GatewayMetrics;
  log: Logger;
  publisher: Publisher;
  status: NodeStatus;
  admin: AdminContext;
  /** The server API beyond publish (server-api.ts), idempotent publish, and the admin UI when enabled. */
  api: ServerApi;
  idempotency: Idempotency;
  adminUi: AdminUi | undefined;
  /** The stream doors (`/sse`, `/stream`, stream-door.ts). */
  streams?: { handle(req: IncomingMessage, res: ServerResponse, path: string): boolean };
  /** Pusher's HTTP API under `/apps/` when Pusher apps are configured (pusher-api.ts). */
  pusher?: { handle(req: IncomingMessage, res: ServerResponse): boolean } | undefined;
  /** Presence queries (`POST /api/presence`, `/api/presence_stats`). */
  presence?: Presence;
}

/** Answers every HTTP request that is not a WebSocket upgrade. */
export class HttpRoutes {
  private readonly statics = new StaticRoutes();

  constructor(private readonly d: HttpRoutesDeps) {}

  /** The HTTP server's request handler. */
  onRequest(req: IncomingMessage, res: ServerResponse): void {
    const { status, backbone, options } = this.d;
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method === 'GET' && path === '/healthz') {
      sendJson(res, status.closed() ? 503 : 200, { status: status.closed() ? 'closed' : 'ok', node: options.nodeId });
      return;
    }
    if (req.method === 'GET' && path === '/readyz') {
      const ready = status.ready();
      sendJson(res, ready ? 200 : 503, {
        status: ready ? 'ready' : 'not ready',
        draining: status.draining(),
        backbone: { kind: backbone.kind, state: backbone.state },
        connections: status.connections(),
      });
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      this.metrics(res);
      return;
    }
    if (path?.startsWith('/apps/') && this.d.pusher?.handle(req, res)) return;
    if (path !== undefined && SERVER_API_ROUTES.has(path)) return respond(req, res, this.d, this.d.api.handle(req, res, path));
    if (path?.startsWith('/admin/') && this.d.adminUi?.handle(req, res, path, (r, w) => this.onRequest(r, w))) return;
    if (path === '/api/publish' || path === '/api/broadcast') {
      if (req.method !== 'POST') {
        sendJson(res, 405, { error: { code: 'bad_request', message: `${path} takes POST` } }, { allow: 'POST' });
        return;
      }
      this.publish(req, res, path === '/api/broadcast').catch((err: unknown) => {
        if (err instanceof ApiError) {
          this.d.metrics.protocolErrors.inc({ code: err.code });
          sendError(res, err);
          if (err.code === 'payload_too_large') res.once('finish', () => req.destroy());
        } else {
          this.d.log.error({ err }, 'publish API failed');
          sendError(res, new ApiError('internal', 'internal error'));
        }
      });
      return;
    }
    if (this.d.presence && (path === '/api/presence' || path === '/api/presence_stats')) {
      const deps = { apiKeys: this.d.admin.apiKeys, presence: this.d.presence, maxBodyBytes: options.maxPayloadBytes };
      handlePresenceApi(req, res, path === '/api/presence_stats', { ...deps, knownNamespace: (ns) => ns in options.namespaces }).catch(
        (err: unknown) => sendError(res, err instanceof ApiError ? err : new ApiError('internal', 'internal error')),
      );
      return;
    }
    if (path?.startsWith('/admin/')) {
      // The key-guessing brake first (server-api.ts), then the admin API's own checks.
      Promise.resolve()
        .then(() => this.d.api.authenticate(req))
        .then(() => handleAdmin(req, res, path, this.d.admin))
        .catch((err: unknown) => {
          if (err instanceof ApiError) sendError(res, err);
          else {
            this.d.log.error({ err }, 'admin API failed');
            sendError(res, new ApiError('internal', 'internal error'));
          }
        });
      return;
    }
    if (path !== undefined && this.d.streams?.handle(req, res, path)) return;
    if (path !== undefined && this.statics.handle(req, res, path)) return;
    if (path === '/ws') {
      sendJson(res, 426, { error: { code: 'bad_request', message: 'this endpoint takes WebSocket upgrades' } }, { upgrade: 'websocket' });
      return;
    }
    sendJson(res, 404, { error: { code: 'not_found', message: `no route ${req.method} ${path}` } });
  }

  private metrics(res: ServerResponse): void {
    const registry = this.d.metrics.registry;
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
      },
      (err: unknown) => {
        this.d.log.error({ err }, 'metrics collection failed');
        sendError(res, new ApiError('internal', 'metrics collection failed'));
      },
    );
  }

  private async publish(req: IncomingMessage, res: ServerResponse, broadcast: boolean): Promise<void> {
    const { options, backbone, idempotency } = this.d;
    const allowed = this.d.api.authenticate(req);
    const body = await readBody(req, options.maxPayloadBytes);
    const request = parsePublishBody(body, broadcast, (ns) => ns in options.namespaces, allowed, MAX_BROADCAST_CHANNELS);
    if (backbone.state !== 'up') throw new ApiError('unavailable', `backbone is ${backbone.state}`, 1);
    if (!broadcast) {
      const pub = await idempotency.publish(request.channels[0] as string, request.data, request.idempotencyKey);
      sendJson(
        res,
        200,
        { channel: pub.channel, epoch: pub.epoch, offset: pub.offset },
        pub.replayed ? { 'idempotent-replayed': 'true' } : {},
      );
      return;
    }
    const results = await Promise.all(
      request.channels.map((channel) =>
        idempotency.publish(channel, request.data, request.idempotencyKey).then(
          (pub) => ({ channel, epoch: pub.epoch, offset: pub.offset }),
          (err: unknown) => ({ channel, error: { code: 'unavailable', message: (err as Error).message } }),
        ),
      ),
    );
    sendJson(res, 200, { results });
  }
}
