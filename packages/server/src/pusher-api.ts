/**
 * Pusher's server HTTP API under `/apps/{app_id}/...`, with Pusher's request signing: trigger and
 * batch trigger, channel list and info, presence users, terminating a user's connections. Triggers
 * go through the backbone like any publish; channel info and terminate ask the fleet (issue 14's
 * fleet requests), so answers cover every node. Errors answer as Pusher does: a status and a line
 * of text.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { FleetRequests } from './fleet-requests.js';
import { ApiError, readBody } from './http-api.js';
import type { Publisher } from './publish.js';
import { PUSHER_CHANNEL_RE, gatehouseChannel, md5, pusherChannel, sameSignature, sign } from './pusher-apps.js';
import type { PusherApp, PusherApps } from './pusher-apps.js';
import { eventPublication } from './pusher-framing.js';

/** How far `auth_timestamp` may be from this server's clock, seconds (Pusher's window). */
export const SIGNATURE_WINDOW_S = 600;
/** Channels one trigger may name, and events one batch may carry. */
export const MAX_TRIGGER_CHANNELS = 100;
export const MAX_BATCH_EVENTS = 100;
const FLEET_TIMEOUT_MS = 2000;
const SOCKET_ID_RE = /^\d{1,12}\.\d{1,16}$/;

/** What the API reads besides its apps. */
export interface PusherApiDeps {
  apps: PusherApps;
  publisher: Publisher;
  requests: FleetRequests;
  log: Logger;
  maxBodyBytes: number;
  /** Presence members' user ids of a Gatehouse channel, fleet-wide (absent: presence is off). */
  users?(channel: string): string[];
}

class PusherError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Obj = Record<string, unknown>;

/** Answers `/apps/...`. */
export class PusherApi {
  constructor(private readonly d: PusherApiDeps) {}

  /** Handles `req` if its path is Pusher's (`/apps/`); false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = req.url ?? '/';
    if (!url.startsWith('/apps/')) return false;
    this.route(req, url).then(
      (body) => answer(res, 200, JSON.stringify(body), 'application/json'),
      (err: unknown) => {
        if (err instanceof PusherError) return answer(res, err.status, err.message + '\n', 'text/plain');
        if (err instanceof ApiError)
          return answer(
            res,
            err.code === 'payload_too_large' ? 413 : err.code === 'unavailable' ? 503 : 400,
            err.message + '\n',
            'text/plain',
          );
        this.d.log.error({ err }, 'Pusher API failed');
        answer(res, 500, 'internal error\n', 'text/plain');
      },
    );
    return true;
  }

  private async route(req: IncomingMessage, url: string): Promise<unknown> {
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const parts = path.split('/'); // ['', 'apps', id, ...]
    const app = this.d.apps.id(parts[2] ?? '');
    if (!app) throw new PusherError(404, `Unknown app ${String(parts[2]).slice(0, 64)}`);
    const method = req.method ?? 'GET';
    const body = method === 'POST' ? await readBody(req, this.d.maxBodyBytes) : Buffer.alloc(0);
    verifySignature(app, method, path, q < 0 ? '' : url.slice(q + 1), body);
    const rest = parts.slice(3).map((p) => safeDecode(p));
    const [what, name, tail] = rest;
    const n = rest.length;
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    if (method === 'POST' && n === 1 && what === 'events') return this.events(app, parseBody(body));
    if (method === 'POST' && n === 1 && what === 'batch_events') return this.batch(app, parseBody(body));
    if (method === 'GET' && what === 'channels' && n === 1) return this.channels(app, query);
    if (method === 'GET' && what === 'channels' && n === 2) return this.channel(app, name as string, query);
    if (method === 'GET' && what === 'channels' && n === 3 && tail === 'users')
      return { users: this.users(app, name as string).map((id) => ({ id })) };
    if (method === 'POST' && what === 'users' && n === 3 && tail === 'terminate_connections') return this.terminate(app, name as string);
    throw new PusherError(404, `no route ${method} ${path.slice(0, 200)}`);
  }

  private async events(app: PusherApp, b: Obj): Promise<unknown> {
    const channels = b['channels'] ?? (b['channel'] === undefined ? undefined : [b['channel']]);
    if (!Array.isArray(channels) || channels.length === 0 || channels.length > MAX_TRIGGER_CHANNELS) {
      throw new PusherError(400, `give "channels" (1-${MAX_TRIGGER_CHANNELS} names) or "channel"`);
    }
    await Promise.all(channels.map((c: unknown) => this.trigger(app, { ...b, channel: c })));
    return {};
  }

  private async batch(app: PusherApp, b: Obj): Promise<unknown> {
    const batch = b['batch'];
    if (!Array.isArray(batch) || batch.length > MAX_BATCH_EVENTS)
      throw new PusherError(400, `"batch" must be a list of at most ${MAX_BATCH_EVENTS} events`);
    for (const e of batch) if (typeof e !== 'object' || e === null) throw new PusherError(400, 'each batch entry is an object');
    await Promise.all(batch.map((e: Obj) => this.trigger(app, e)));
    return { batch: batch.map(() => ({})) };
  }

  private async trigger(app: PusherApp, e: Obj): Promise<void> {
    const { channel, name, data } = e;
    const socketId = e['socket_id'] ?? '';
    if (typeof channel !== 'string' || !PUSHER_CHANNEL_RE.test(channel))
      throw new PusherError(400, `invalid channel name ${JSON.stringify(channel)}`.slice(0, 240));
    if (typeof name !== 'string' || name.length === 0 || name.length > 200) throw new PusherError(400, '"name" must be 1-200 characters');
    if (typeof data !== 'string') throw new PusherError(400, '"data" must be a string (JSON-encode objects)');
    if (typeof socketId !== 'string' || (socketId !== '' && !SOCKET_ID_RE.test(socketId)))
      throw new PusherError(400, '"socket_id" must look like 123.456');
    await this.d.publisher.publish(gatehouseChannel(app, channel), eventPublication(socketId, name, channel, JSON.stringify(data)), 'api');
  }

  /** Local subscriber counts of the app's channels starting with `prefix`, summed over the fleet. */
  private async counts(app: PusherApp, prefix: string, exact: boolean): Promise<Map<string, number>> {
    const pattern = gatehouseChannel(app, prefix) + (exact ? '' : '*');
    const answer = await this.d.requests.ask('channels', { pattern, limit: 1000 }, FLEET_TIMEOUT_MS);
    const counts = new Map<string, number>();
    for (const r of answer.replies) {
      const list = (r.result as { channels?: unknown } | undefined)?.channels;
      if (!Array.isArray(list)) continue;
      for (const e of list as unknown[]) {
        if (Array.isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'number') {
          const name = pusherChannel(e[0]);
          counts.set(name, (counts.get(name) ?? 0) + e[1]);
        }
      }
    }
    return counts;
  }

  private async channels(app: PusherApp, q: URLSearchParams): Promise<unknown> {
    const prefix = q.get('filter_by_prefix') ?? '';
    const info = (q.get('info') ?? '').split(',');
    if (info.includes('user_count') && !prefix.startsWith('presence-')) {
      throw new PusherError(400, 'user_count needs filter_by_prefix=presence-');
    }
    const out: Record<string, Obj> = {};
    for (const name of (await this.counts(app, prefix, false)).keys()) {
      out[name] = info.includes('user_count') ? { user_count: this.users(app, name).length } : {};
    }
    return { channels: out };
  }

  private async channel(app: PusherApp, name: string, q: URLSearchParams): Promise<unknown> {
    if (!PUSHER_CHANNEL_RE.test(name)) throw new PusherError(400, 'invalid channel name');
    const info = (q.get('info') ?? '').split(',');
    const presence = name.startsWith('presence-');
    if (info.includes('user_count') && !presence) throw new PusherError(400, 'user_count is only for presence channels');
    const count = (await this.counts(app, name, true)).get(name) ?? 0;
    const out: Obj = { occupied: count > 0 };
    if (info.includes('subscription_count')) out['subscription_count'] = count;
    if (info.includes('user_count')) out['user_count'] = this.users(app, name).length;
    return out;
  }

  private users(app: PusherApp, name: string): string[] {
    if (!name.startsWith('presence-')) throw new PusherError(400, 'users are only listed for presence channels');
    if (!this.d.users) throw new PusherError(501, 'presence is not enabled on this server');
    return this.d.users(gatehouseChannel(app, name));
  }

  private async terminate(app: PusherApp, userId: string): Promise<unknown> {
    if (userId.length === 0 || userId.length > 200) throw new PusherError(400, 'user id must be 1-200 characters');
    await this.d.requests.ask(
      'disconnect',
      { user: `${app.id}:${userId}`, reason: 'connections terminated by the server' },
      FLEET_TIMEOUT_MS,
    );
    return {};
  }
}

/** Checks Pusher's request signature; throws 401 with the reason. */
export function verifySignature(
  app: PusherApp,
  method: string,
  path: string,
  rawQuery: string,
  body: Buffer,
  nowS = Date.now() / 1000,
): void {
  const params = new Map<string, string>();
  for (const [k, v] of new URLSearchParams(rawQuery)) {
    const key = k.toLowerCase();
    if (params.has(key)) throw new PusherError(400, `query parameter ${key.slice(0, 40)} given twice`);
    params.set(key, v);
  }
  if (params.get('auth_key') !== app.key) throw new PusherError(401, 'auth_key does not match the app');
  const ts = Number(params.get('auth_timestamp'));
  if (!Number.isFinite(ts) || Math.abs(nowS - ts) > SIGNATURE_WINDOW_S) {
    throw new PusherError(401, `auth_timestamp must be within ${SIGNATURE_WINDOW_S} s of the server's clock`);
  }
  if (params.get('auth_version') !== '1.0') throw new PusherError(401, 'auth_version must be 1.0');
  if (body.length > 0 && params.get('body_md5') !== md5(body)) throw new PusherError(401, 'body_md5 does not match the body');
  const given = params.get('auth_signature') ?? '';
  params.delete('auth_signature');
  const signed = [...params.keys()]
    .sort()
    .map((k) => `${k}=${params.get(k) as string}`)
    .join('&');
  if (!sameSignature(given, sign(app.secret, `${method}\n${path}\n${signed}`))) throw new PusherError(401, 'Invalid signature');
}

function parseBody(body: Buffer): Obj {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw new PusherError(400, 'body is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new PusherError(400, 'body must be a JSON object');
  return v as Obj;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function answer(res: ServerResponse, status: number, text: string, type: string): void {
  if (res.headersSent) return;
  res.writeHead(status, {
    'content-type': `${type}; charset=utf-8`,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}
