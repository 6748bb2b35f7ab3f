/**
 * The admin API, behind the same API keys as the publish API (a key limited to channels is not an
 * admin key):
 *
 * - `GET /admin/nodes`: the fleet as this node hears it (load, readiness, lag per node).
 * - `GET /admin/slowest?n=10`: this node's connections with the most bytes waiting, the ones
 *   that will be cut as slow consumers first.
 * - `GET /admin/preferred-node?user=<id>`: the node rendezvous hashing prefers for a user.
 * - `POST /admin/drain`: start a drain (as SIGTERM does, without exiting); answers 202.
 * - `POST /admin/revoke` with `{"jti": "...", "until"?: ms}`: revoke a token on every node (its
 *   connections are closed with 4001, and it is refused until `until`, default its day); 202.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, readBody, sendJson } from './http-api.js';
import type { ApiKeys } from './http-api.js';
import type { FleetMember } from './fleet.js';

/** One connection in the slowest list. */
export interface SlowConnection {
  client: string;
  user: string;
  address: string;
  pendingBytes: number;
  channels: number;
}

/** What the admin API reads and does. */
export interface AdminContext {
  apiKeys: ApiKeys;
  node: string;
  fleet(): FleetMember[];
  slowest(n: number): SlowConnection[];
  preferredNode(user: string): string | undefined;
  drain(): void;
  draining(): boolean;
  revoke(jti: string, until: number | undefined): Promise<void>;
}

/** Answers an `/admin/...` request. */
export async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string, ctx: AdminContext): Promise<void> {
  const scope = ctx.apiKeys.authenticate(req.headers.authorization);
  if (scope !== undefined) throw new ApiError('forbidden', 'this API key is limited to channels; the admin API needs an unrestricted key');
  const url = new URL(req.url ?? '/', 'http://x');
  if (req.method === 'GET' && path === '/admin/nodes') {
    sendJson(res, 200, { node: ctx.node, nodes: ctx.fleet() });
    return;
  }
  if (req.method === 'GET' && path === '/admin/slowest') {
    const n = Number(url.searchParams.get('n') ?? 10);
    if (!Number.isInteger(n) || n < 1 || n > 1000) throw new ApiError('bad_request', 'n must be an integer from 1 to 1000');
    sendJson(res, 200, { node: ctx.node, connections: ctx.slowest(n) });
    return;
  }
  if (req.method === 'GET' && path === '/admin/preferred-node') {
    const user = url.searchParams.get('user');
    if (!user || user.length > 256) throw new ApiError('bad_request', 'user is required (at most 256 characters)');
    sendJson(res, 200, { user, node: ctx.preferredNode(user) ?? null });
    return;
  }
  if (req.method === 'POST' && path === '/admin/drain') {
    const already = ctx.draining();
    ctx.drain();
    sendJson(res, 202, { node: ctx.node, draining: true, alreadyDraining: already });
    return;
  }
  if (req.method === 'POST' && path === '/admin/revoke') {
    let body: unknown;
    try {
      body = JSON.parse((await readBody(req, 4096)).toString('utf8'));
    } catch (err) {
      if (err instanceof ApiError) throw err;
      throw new ApiError('bad_request', 'body is not valid JSON');
    }
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const jti = b['jti'];
    const until = b['until'];
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256)
      throw new ApiError('bad_request', '"jti" must be the token id (1-256 characters)');
    if (until !== undefined && (typeof until !== 'number' || !Number.isFinite(until)))
      throw new ApiError('bad_request', '"until" must be ms since the epoch');
    await ctx.revoke(jti, until as number | undefined);
    sendJson(res, 202, { jti, revoked: true });
    return;
  }
  throw new ApiError('not_found', `no admin route ${req.method} ${path}`);
}
