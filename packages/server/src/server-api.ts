/**
 * The server API beyond publish (docs/api.md): history, channels, disconnect, server-side
 * subscribe and unsubscribe, fleet info and drain, all `POST` with a JSON body and
 * `Authorization: apikey <key>`, all answering JSON with stable error codes. Fleet-wide calls go
 * to every node over the control plane (fleet-requests.ts) and answer with what arrived before the
 * deadline, naming the nodes that did not answer (`missing`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isValidChannel, matchAny, namespaceOf } from '@gatehouse/protocol';
import type { Backbone, Publication } from './backbone.js';
import type { FailureLimiter } from './failure-limiter.js';
import type { FleetAnswer, FleetRequests } from './fleet-requests.js';
import { ApiError, readBody, sendError, sendJson } from './http-api.js';
import type { GatewayMetrics } from './metrics.js';
import type { ApiKeys } from './http-api.js';
import type { Publisher } from './publish.js';
import { MAX_LISTED_CHANNELS } from './session-commands.js';

/** Largest body of these calls, bytes: they carry names, never payloads. */
export const MAX_API_BODY_BYTES = 4096;
/** Publications one history call answers at most. */
export const MAX_HISTORY_LIMIT = 1000;
/** How long a fleet-wide call waits for the nodes, ms. */
export const FLEET_TIMEOUT_MS = 2000;
/** Pattern and name lengths. */
const MAX_NAME = 256;

type Obj = Record<string, unknown>;

/** What the server API works with. */
export interface ServerApiDeps {
  backbone: Backbone;
  publisher: Publisher;
  apiKeys: ApiKeys;
  limiter: FailureLimiter;
  requests: FleetRequests;
  clientAddress(req: IncomingMessage): string;
}

/** The routes this file answers. */
export const SERVER_API_ROUTES = new Set([
  '/api/history',
  '/api/channels',
  '/api/disconnect',
  '/api/subscribe',
  '/api/unsubscribe',
  '/api/info',
  '/api/drain',
]);

/** Answers the server API's calls. */
export class ServerApi {
  constructor(private readonly d: ServerApiDeps) {}

  /** Authenticates with the brute-force brake; answers the key's channel patterns (undefined: all). */
  authenticate(req: IncomingMessage): string[] | undefined {
    return this.d.limiter.guard(this.d.clientAddress(req), () => this.d.apiKeys.authenticate(req.headers.authorization));
  }

  /** Handles one call (its path is in SERVER_API_ROUTES). */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (req.method !== 'POST') throw new ApiError('bad_request', `${path} takes POST`);
    const scope = this.authenticate(req);
    const body = await readJson(req);
    const name = path.slice('/api/'.length);
    if (name === 'history') return sendJson(res, 200, await this.history(body, scope));
    if (name === 'channels') return sendJson(res, 200, await this.channels(body, scope));
    if (name === 'subscribe' || name === 'unsubscribe') return sendJson(res, 200, await this.subscription(name, body, scope));
    if (scope !== undefined) throw new ApiError('forbidden', `this API key is limited to channels; ${path} needs an unrestricted key`);
    if (name === 'disconnect') return sendJson(res, 200, await this.disconnect(body));
    if (name === 'info') return sendJson(res, 200, await this.info(body));
    if (name === 'drain') return sendJson(res, 202, await this.drain(body));
    throw new ApiError('not_found', `no route ${path}`);
  }

  private channel(body: Obj, scope: string[] | undefined, verb: string): string {
    const channel = body['channel'];
    if (!isValidChannel(channel)) throw new ApiError('invalid_channel', '"channel" must look like "namespace:name"');
    if (!this.d.publisher.namespace(channel))
      throw new ApiError('unknown_namespace', `namespace "${namespaceOf(channel)}" is not configured`);
    if (scope && !matchAny(scope, channel)) throw new ApiError('forbidden', `this API key may not ${verb} "${channel}"`);
    return channel;
  }

  private async history(body: Obj, scope: string[] | undefined): Promise<unknown> {
    const channel = this.channel(body, scope, 'read');
    const limit = body['limit'] ?? 100;
    if (!Number.isInteger(limit) || (limit as number) < 1 || (limit as number) > MAX_HISTORY_LIMIT) {
      throw new ApiError('bad_request', `"limit" must be an integer from 1 to ${MAX_HISTORY_LIMIT}`);
    }
    const since = body['since'];
    if (since !== undefined && !isPosition(since))
      throw new ApiError('bad_request', '"since" must be {"epoch": string, "offset": integer >= 0}');
    if (body['reverse'] !== undefined && typeof body['reverse'] !== 'boolean')
      throw new ApiError('bad_request', '"reverse" must be true or false');
    const { backbone } = this.d;
    if (!backbone.capabilities.history) {
      throw new ApiError('not_supported', `the ${backbone.kind} backbone keeps no history; use redis, jetstream or kafka`);
    }
    if (backbone.state !== 'up') throw new ApiError('unavailable', `backbone is ${backbone.state}`, 1);
    const kept = Math.max(1, this.d.publisher.namespace(channel)?.historySize ?? 1);
    const n = Math.min(limit as number, kept);
    let pubs: readonly Publication[];
    let complete = true;
    const read = async (after: { epoch: string; offset: number } | undefined, max: number) => {
      try {
        return await backbone.history(channel, after, max);
      } catch (err) {
        throw new ApiError('unavailable', `history read failed: ${(err as Error).message}`, 1);
      }
    };
    const head = await read(undefined, 1);
    if (since) {
      const r = await read(since, n);
      pubs = r.publications;
      complete = r.complete;
    } else if (head.offset === 0) {
      pubs = [];
    } else if (backbone.capabilities.contiguousOffsets) {
      pubs = (await read({ epoch: head.epoch, offset: Math.max(0, head.offset - n) }, n)).publications;
    } else {
      // Offsets skip: read what the namespace keeps and keep the newest n.
      pubs = (await read({ epoch: head.epoch, offset: 0 }, Math.min(kept, 10_000))).publications.slice(-n);
    }
    const publications = pubs.map((p) => ({ epoch: p.epoch, offset: p.offset, ts: Math.round(p.ts), data: JSON.parse(p.data) as unknown }));
    if (body['reverse'] === true) publications.reverse();
    return { channel, epoch: head.epoch, offset: head.offset, publications, ...(since ? { complete } : {}) };
  }

  private async channels(body: Obj, scope: string[] | undefined): Promise<unknown> {
    const pattern = body['pattern'] ?? '*';
    if (
      typeof pattern !== 'string' ||
      pattern.length === 0 ||
      pattern.length > MAX_NAME ||
      (pattern.indexOf('*') !== pattern.length - 1 && pattern.includes('*'))
    ) {
      throw new ApiError('bad_request', '"pattern" must be a channel name or a prefix ending in * (at most 256 characters)');
    }
    const limit = body['limit'] ?? 100;
    if (!Number.isInteger(limit) || (limit as number) < 1 || (limit as number) > MAX_LISTED_CHANNELS) {
      throw new ApiError('bad_request', `"limit" must be an integer from 1 to ${MAX_LISTED_CHANNELS}`);
    }
    const answer = await this.d.requests.ask('channels', { pattern, limit }, FLEET_TIMEOUT_MS);
    const counts = new Map<string, number>();
    let truncated = false;
    for (const r of answer.replies) {
      const res = r.result as { channels?: unknown; matched?: unknown } | undefined;
      if (!Array.isArray(res?.channels)) continue;
      if (typeof res.matched === 'number' && res.matched > res.channels.length) truncated = true;
      for (const e of res.channels as unknown[]) {
        if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number') continue;
        if (scope && !matchAny(scope, e[0])) continue;
        counts.set(e[0], (counts.get(e[0]) ?? 0) + e[1]);
      }
    }
    const all = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    if (all.length > (limit as number)) truncated = true;
    const channels = all.slice(0, limit as number).map(([channel, subscribers]) => ({ channel, subscribers }));
    return { channels, truncated, ...fleetMeta(answer) };
  }

  private target(body: Obj): { user?: string; client?: string } {
    const { user, client } = body;
    if (user === undefined && client === undefined)
      throw new ApiError('bad_request', 'give "user" (every connection of a user) or "client" (one connection)');
    const t: { user?: string; client?: string } = {};
    for (const [k, v] of [
      ['user', user],
      ['client', client],
    ] as const) {
      if (v === undefined) continue;
      if (typeof v !== 'string' || v.length === 0 || v.length > MAX_NAME)
        throw new ApiError('bad_request', `"${k}" must be a string of 1-${MAX_NAME} characters`);
      t[k] = v;
    }
    return t;
  }

  private async subscription(name: 'subscribe' | 'unsubscribe', body: Obj, scope: string[] | undefined): Promise<unknown> {
    const target = this.target(body);
    const channel = this.channel(body, scope, name === 'subscribe' ? 'subscribe users to' : 'unsubscribe users from');
    const answer = await this.d.requests.ask(name, { ...target, channel }, FLEET_TIMEOUT_MS);
    return {
      channel,
      ...sum(answer, name === 'subscribe' ? ['subscribed', 'alreadySubscribed', 'refused'] : ['unsubscribed']),
      ...fleetMeta(answer),
    };
  }

  private async disconnect(body: Obj): Promise<unknown> {
    const target = this.target(body);
    const reconnect = body['reconnect'] ?? false;
    if (typeof reconnect !== 'boolean') throw new ApiError('bad_request', '"reconnect" must be true or false');
    const reason = body['reason'] ?? '';
    if (typeof reason !== 'string' || reason.length > 100 || /[^\x20-\x7e]/.test(reason)) {
      throw new ApiError('bad_request', '"reason" must be printable ASCII of at most 100 characters');
    }
    const answer = await this.d.requests.ask('disconnect', { ...target, reconnect, reason }, FLEET_TIMEOUT_MS);
    return { ...sum(answer, ['disconnected']), code: reconnect ? 4202 : 4006, ...fleetMeta(answer) };
  }

  private async info(body: Obj): Promise<unknown> {
    const slowest = body['slowest'] ?? 0;
    if (!Number.isInteger(slowest) || (slowest as number) < 0 || (slowest as number) > 100) {
      throw new ApiError('bad_request', '"slowest" must be an integer from 0 to 100');
    }
    const answer = await this.d.requests.ask('info', { slowest }, FLEET_TIMEOUT_MS);
    const nodes = answer.replies.filter((r) => r.result !== undefined).map((r) => r.result as Obj);
    const total = (k: string) => nodes.reduce((n, x) => n + (typeof x[k] === 'number' ? (x[k] as number) : 0), 0);
    return {
      nodes,
      connections: total('connections'),
      // Summed over nodes: a channel with subscribers on two nodes counts twice.
      channels: total('channels'),
      ...fleetMeta(answer),
    };
  }

  private async drain(body: Obj): Promise<unknown> {
    const node = body['node'];
    if (typeof node !== 'string' || node.length === 0 || node.length > 64)
      throw new ApiError('bad_request', '"node" must name the node to drain');
    const answer = await this.d.requests.ask('drain', {}, FLEET_TIMEOUT_MS, node);
    const reply = answer.replies[0];
    if (!reply) throw new ApiError('unavailable', `node ${node} did not answer`, 1);
    return { node, ...(reply.result as Obj) };
  }
}

/** Answers `work`'s failure as JSON: an ApiError with its code, anything else as 500 (logged). */
export function respond(req: IncomingMessage, res: ServerResponse, d: { log: Logger; metrics: GatewayMetrics }, work: Promise<void>): void {
  work.catch((err: unknown) => {
    if (err instanceof ApiError) {
      d.metrics.protocolErrors.inc({ code: err.code });
      sendError(res, err);
      if (err.code === 'payload_too_large') res.once('finish', () => req.destroy());
    } else {
      d.log.error({ err }, 'server API failed');
      sendError(res, new ApiError('internal', 'internal error'));
    }
  });
}

/** Reads a small JSON object body. */
export async function readJson(req: IncomingMessage): Promise<Obj> {
  const raw = await readBody(req, MAX_API_BODY_BYTES);
  let v: unknown;
  try {
    v = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
  } catch {
    throw new ApiError('bad_request', 'body is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ApiError('bad_request', 'body must be a JSON object');
  return v as Obj;
}

function isPosition(v: unknown): v is { epoch: string; offset: number } {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Obj;
  return typeof p['epoch'] === 'string' && p['epoch'].length <= 64 && Number.isSafeInteger(p['offset']) && (p['offset'] as number) >= 0;
}

/** Adds the named counters over every node's answer. */
function sum(answer: FleetAnswer, keys: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) out[k] = 0;
  for (const r of answer.replies) {
    const res = r.result as Obj | undefined;
    for (const k of keys) if (typeof res?.[k] === 'number') out[k] = (out[k] as number) + (res[k] as number);
  }
  return out;
}

/** Which nodes answered, failed or stayed silent. */
function fleetMeta(answer: FleetAnswer): { answered: string[]; failed: { node: string; error: unknown }[]; missing: string[] } {
  return {
    answered: answer.replies.filter((r) => !r.error).map((r) => r.node),
    failed: answer.replies.filter((r) => r.error).map((r) => ({ node: r.node, error: r.error })),
    missing: answer.missing,
  };
}
