/**
 * Pusher apps and how their channels map onto Gatehouse channels. Each app (id, key, secret) gets
 * its own namespace, `pusher-<id>`, so apps are isolated from each other and from Gatehouse's own
 * namespaces: the Pusher channel `private-chat` of app `42` is the Gatehouse channel
 * `pusher-42:private-chat`. Signatures (channel auth, user sign-in, the HTTP API, webhooks) are
 * HMAC-SHA256 in lowercase hex with the app's secret, as Pusher defines them.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** One Pusher app. */
export interface PusherApp {
  /** The app id in the HTTP API's paths (`/apps/{id}/events`). */
  id: string;
  /** The public key clients connect with (`/app/{key}`) and the HTTP API signs with. */
  key: string;
  /** Signs channel auth, sign-in, the HTTP API and webhooks. Never leaves the server. */
  secret: string;
  /** Where Pusher-format webhooks go (`--pusher-webhook <id>=<url>`); absent: none are sent. */
  webhookUrl?: string;
}

/** Namespace prefix of every Pusher app's channels. */
export const PUSHER_NAMESPACE_PREFIX = 'pusher-';
const APP_ID_RE = /^[A-Za-z0-9_-]{1,57}$/;
const APP_KEY_RE = /^[A-Za-z0-9_.-]{1,64}$/;
/** Pusher's channel names (`#` starts the server-to-user channel pusher-js subscribes after sign-in). */
export const PUSHER_CHANNEL_RE = /^#?[A-Za-z0-9_\-=@,.;]{1,164}$/;

/** Checks apps given as `id:key:secret` strings or objects; throws an Error naming the bad one. */
export function parsePusherApps(raw: unknown): PusherApp[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new Error('pusherApps must be a list of "id:key:secret" or {id, key, secret}');
  const apps = raw.map((a: unknown, i): PusherApp => {
    let app: Partial<PusherApp>;
    if (typeof a === 'string') {
      const first = a.indexOf(':');
      const second = a.indexOf(':', first + 1);
      app = first < 0 || second < 0 ? {} : { id: a.slice(0, first), key: a.slice(first + 1, second), secret: a.slice(second + 1) };
    } else app = (a ?? {}) as Partial<PusherApp>;
    if (typeof app.id !== 'string' || !APP_ID_RE.test(app.id)) {
      throw new Error(`pusherApps[${i}]: id must be 1-57 characters from A-Z a-z 0-9 _ - (give "id:key:secret")`);
    }
    if (typeof app.key !== 'string' || !APP_KEY_RE.test(app.key))
      throw new Error(`pusherApps[${i}]: key must be 1-64 characters from A-Z a-z 0-9 _ . -`);
    if (typeof app.secret !== 'string' || app.secret.length < 8) throw new Error(`pusherApps[${i}]: secret must be at least 8 characters`);
    if (app.webhookUrl !== undefined && (typeof app.webhookUrl !== 'string' || !/^https?:\/\/\S+$/.test(app.webhookUrl)))
      throw new Error(`pusherApps[${i}]: webhookUrl must be an http(s) URL`);
    return { id: app.id, key: app.key, secret: app.secret, ...(typeof app.webhookUrl === 'string' ? { webhookUrl: app.webhookUrl } : {}) };
  });
  for (const field of ['id', 'key'] as const) {
    const seen = new Set<string>();
    for (const a of apps) {
      if (seen.has(a[field])) throw new Error(`pusherApps: two apps share the ${field} "${a[field]}"`);
      seen.add(a[field]);
    }
  }
  return apps;
}

/** Sets apps' webhook URLs from `<app id>=<url>` entries; throws an Error naming a bad one. */
export function applyPusherWebhooks(apps: PusherApp[], raw: unknown): void {
  if (raw === undefined) return;
  if (!Array.isArray(raw)) throw new Error('pusherWebhooks must be a list of "<app id>=<url>"');
  for (const [i, entry] of raw.entries()) {
    const text = String(entry);
    const eq = text.indexOf('=');
    const app = apps.find((a) => a.id === text.slice(0, eq));
    const url = text.slice(eq + 1);
    if (eq < 0 || !app) throw new Error(`pusherWebhooks[${i}]: give "<app id>=<url>" for a configured Pusher app`);
    if (!/^https?:\/\/\S+$/.test(url)) throw new Error(`pusherWebhooks[${i}]: the URL must be http(s)`);
    app.webhookUrl = url;
  }
}

/** The namespace of an app's channels. */
export function pusherNamespace(app: PusherApp): string {
  return PUSHER_NAMESPACE_PREFIX + app.id;
}

/** The Gatehouse channel of an app's Pusher channel. */
export function gatehouseChannel(app: PusherApp, channel: string): string {
  return `${PUSHER_NAMESPACE_PREFIX}${app.id}:${channel}`;
}

/** The Pusher channel name of a Gatehouse channel in an app's namespace. */
export function pusherChannel(channel: string): string {
  return channel.slice(channel.indexOf(':') + 1);
}

/** HMAC-SHA256 of `text` with `secret`, lowercase hex. */
export function sign(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text).digest('hex');
}

/** MD5 of a body, lowercase hex (the HTTP API's `body_md5`). */
export function md5(body: Buffer | string): string {
  return createHash('md5').update(body).digest('hex');
}

/** Compares two signatures in constant time. */
export function sameSignature(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The apps by key and by id. */
export class PusherApps {
  private readonly byKey = new Map<string, PusherApp>();
  private readonly byId = new Map<string, PusherApp>();

  constructor(apps: readonly PusherApp[]) {
    for (const a of apps) {
      this.byKey.set(a.key, a);
      this.byId.set(a.id, a);
    }
  }

  get size(): number {
    return this.byId.size;
  }

  key(key: string): PusherApp | undefined {
    return this.byKey.get(key);
  }

  id(id: string): PusherApp | undefined {
    return this.byId.get(id);
  }
}
