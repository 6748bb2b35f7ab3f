/**
 * Gateway options: one plain object, every default in `DEFAULTS`, validated once at start with
 * messages that name the offending field. A zero or missing value means "use the default".
 */

import { DEFAULT_MAX_BATCH_DELAY_MS } from './batching.js';
import type { NativeWrites } from './native-send.js';
import { applyPusherWebhooks, parsePusherApps, pusherNamespace } from './pusher-apps.js';
import type { PusherApp } from './pusher-apps.js';

/** Per-namespace behaviour. Channels are `namespace:name`; unknown namespaces are refused. */
export interface NamespaceOptions {
  /** Publications kept per channel for recovery. Default 100; 0 keeps none. */
  historySize: number;
  /** Seconds a publication stays recoverable. Default 300; 0 means size alone decides. */
  historyTtlSeconds: number;
  /** Clients without a token may subscribe. Default false. */
  anonymous: boolean;
  /**
   * Who may subscribe: 'claims' (the token's `channels` patterns must match; the default) or
   * 'authenticated' (any valid token).
   */
  subscribe: 'claims' | 'authenticated';
  /** Keep who is in each channel, fleet-wide (docs/presence.md). Default false. */
  presence?: boolean;
  /** Send `join`/`leave` frames to subscribers (needs `presence`). Default false. */
  joinLeave?: boolean;
}

/** An HTTP API key, optionally limited to channel patterns (`chat:*`). */
export interface ApiKey {
  key: string;
  /** Channel patterns this key may publish to; absent means every channel. */
  channels?: string[];
}

/** Everything a gateway can be told. See `DEFAULTS` for each default. */
export interface GatewayOptions {
  /** TCP port. Default 8080; 0 picks a free one (tests). */
  port: number;
  /** Address to bind. Default '0.0.0.0'. */
  host: string;
  /** This node's name in logs, metrics and frames. Default: a random id. */
  nodeId: string;
  /** PEM files for TLS termination in the process; both or neither. */
  tlsCert?: string;
  tlsKey?: string;

  /** HS256 secret for tokens. */
  tokenSecret?: string;
  /** JWKS (RS256/ES256) as a file path or an http(s) URL. */
  jwks?: string;
  /** Required `iss`/`aud` claims, if set. */
  tokenIssuer?: string;
  tokenAudience?: string;
  /** API keys for the HTTP publish API. */
  apiKeys: ApiKey[];
  /** Allowed `Origin` values for WebSocket upgrades; empty allows any origin. */
  allowedOrigins: string[];

  /** Namespaces by name. */
  namespaces: Record<string, NamespaceOptions>;
  /** Pusher apps (`id:key:secret` strings or objects); each gets the namespace `pusher-<id>` (pusher-apps.ts). */
  pusherApps: PusherApp[];
  /** Pusher webhook URLs, `<app id>=<url>` (pusher-webhooks.ts). */
  pusherWebhooks: string[];

  /** Ms a new connection has to send `connect`. Default 10000. */
  authTimeoutMs: number;
  /** Server heartbeat interval (WebSocket ping + application ping). Default 25000. */
  heartbeatMs: number;
  /** Ms before `exp` at which the client is asked to refresh. Default 60000. */
  refreshLeadMs: number;
  /** Ms after `exp` before an unrefreshed connection is closed. Default 15000. */
  tokenGraceMs: number;
  /** Verified tokens kept in the cache. Default 50000. */
  tokenCacheSize: number;

  /** Largest inbound WebSocket message or HTTP body, bytes. Default 65536. */
  maxPayloadBytes: number;
  /** Fragments one inbound message may have. Default 64. */
  maxFragments: number;
  /** Outbound queue cap per connection, bytes. Default 4 MiB. */
  maxQueueBytes: number;
  /** Outbound queue cap per connection, messages waiting in the current tick. Default 10000. */
  maxQueueMessages: number;
  /** Subscriptions per connection. Default 128. */
  maxSubscriptions: number;
  /** Inbound messages per second per connection before throttling (twice that closes). Default 100. */
  maxMessagesPerSecond: number;
  /** Inbound WebSocket pings per second per connection before closing 1008. Default 10. */
  maxPingsPerSecond: number;
  /** Concurrent connections on this node. Default 50000. */
  maxConnections: number;
  /** Concurrent connections per user (`sub` claim). Default 16. */
  maxConnectionsPerUser: number;
  /** New connections per second this node admits (token bucket, burst = 2 s worth). Default 1000. */
  connectRate: number;
  /** New connections per second from one client address. Default 50. */
  connectRatePerAddress: number;
  /** Use the first X-Forwarded-For address as the client address (behind a trusted ingress). */
  trustProxy: boolean;
  /** Ms a closing socket may take before it is destroyed. Default 5000. */
  closeTimeoutMs: number;
  /**
   * Ms to hold each flush so publications arriving within it share one write per socket. 0 (the
   * default) flushes on the next tick; a few ms trade that much latency for far fewer system calls
   * when publications come one at a time.
   */
  coalesceMs: number;
  /**
   * Bound, in ms, on the delay adaptive write batching adds to a flush on a saturated node (one
   * whose process has been using a whole core over its recent long flush passes; publications
   * arriving meanwhile share one write per socket). A node with time to spare always flushes on the
   * next tick. 0 turns batching off. Default 20. Unused when coalesceMs is set.
   */
  maxBatchDelayMs: number;
  /**
   * The batched send (native-send.ts: one call writes a publication to a run of plain TCP sockets,
   * one send(2) each): 'auto' (default) uses it where it was built and loads, 'on' refuses to start
   * without it, 'off' writes through net.Socket only.
   */
  nativeWrites: NativeWrites;
  /** Ms an empty channel keeps its backbone subscription (absorbs churn). Default 2000. */
  channelLingerMs: number;
  /** Ms over which a drain spreads its closes. Default 30000. */
  drainWindowMs: number;
  /** Refuse new connections while event-loop lag p99 (last second) is above this, ms. Default 500. */
  admissionLagMs: number;
  /** Refuse new connections while all outbound queues together hold more than this, bytes. Default 256 MiB. */
  admissionQueueBytes: number;
  /** Ms between this node's announcements to the fleet (load, health). Default 5000. */
  announceIntervalMs: number;
  /** A node holding more than the fleet mean times (1 + this) sheds the excess. Default 0.25. */
  rebalanceTolerance: number;
  /** Connections shed per announce interval while rebalancing; 0 turns rebalancing off. Default 20. */
  rebalancePerRound: number;
  /** Connections younger than this are never shed by rebalancing, ms. Default 60000. */
  rebalanceMinAgeMs: number;
  /** No rebalancing while the whole fleet holds fewer connections than this. Default 1000. */
  rebalanceMinFleetConnections: number;
  /** Largest request header block, bytes. Default 8192. */
  maxHeaderBytes: number;
  /** Lifecycle webhook endpoint (presence events, docs/presence.md); absent: none are sent. */
  webhookUrl?: string;
  /** HMAC-SHA256 key of the webhook signature; required with `webhookUrl`. */
  webhookSecret?: string;
  /** Ms a user may be gone before `user_offline` is sent (a page refresh inside it sends nothing). Default 5000. */
  webhookGraceMs: number;
  /** Ms to receive a full request header (slowloris). Default 10000. */
  headersTimeoutMs: number;
  /** Serve the admin web UI at /admin/ (docs/api.md). Default false. */
  adminUi: boolean;
  /** Ms a publish's idempotencyKey is remembered: a retry within it publishes nothing. Default 300000. */
  idempotencyWindowMs: number;
  /** Failed API-key authentications one address may make per minute before it is refused (key-guessing brake). Default 10. */
  maxAuthFailures: number;
}

/** Defaults for every namespace field. */
export const NAMESPACE_DEFAULTS: NamespaceOptions = {
  historySize: 100,
  historyTtlSeconds: 300,
  anonymous: false,
  subscribe: 'claims',
  presence: false,
  joinLeave: false,
};

/** Every default in one place. */
export const DEFAULTS: GatewayOptions = {
  port: 8080,
  host: '0.0.0.0',
  nodeId: '',
  apiKeys: [],
  allowedOrigins: [],
  pusherApps: [],
  pusherWebhooks: [],
  namespaces: {
    public: { ...NAMESPACE_DEFAULTS, anonymous: true },
    private: { ...NAMESPACE_DEFAULTS },
  },
  authTimeoutMs: 10_000,
  heartbeatMs: 25_000,
  refreshLeadMs: 60_000,
  tokenGraceMs: 15_000,
  tokenCacheSize: 50_000,
  maxPayloadBytes: 64 * 1024,
  maxFragments: 64,
  maxQueueBytes: 4 * 1024 * 1024,
  maxQueueMessages: 10_000,
  maxSubscriptions: 128,
  maxMessagesPerSecond: 100,
  maxPingsPerSecond: 10,
  maxConnections: 50_000,
  maxConnectionsPerUser: 16,
  connectRate: 1000,
  connectRatePerAddress: 50,
  trustProxy: false,
  closeTimeoutMs: 5000,
  coalesceMs: 0,
  maxBatchDelayMs: DEFAULT_MAX_BATCH_DELAY_MS,
  nativeWrites: 'auto',
  channelLingerMs: 2000,
  drainWindowMs: 30_000,
  admissionLagMs: 500,
  admissionQueueBytes: 256 * 1024 * 1024,
  announceIntervalMs: 5000,
  rebalanceTolerance: 0.25,
  rebalancePerRound: 20,
  rebalanceMinAgeMs: 60_000,
  rebalanceMinFleetConnections: 1000,
  maxHeaderBytes: 8192,
  headersTimeoutMs: 10_000,
  adminUi: false,
  idempotencyWindowMs: 300_000,
  maxAuthFailures: 10,
  webhookGraceMs: 5000,
};

/** A configuration mistake, naming the field. */
export class OptionsError extends TypeError {
  override readonly name = 'OptionsError';
}

const NAMESPACE_RE = /^[A-Za-z0-9_-]{1,64}$/;

function intField(o: Record<string, unknown>, key: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new OptionsError(`${key} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
}

/**
 * Merges `input` over the defaults and validates the result. Unknown fields, wrong types and
 * contradictions throw `OptionsError` naming the field.
 */
export function resolveOptions(input: Partial<GatewayOptions> = {}): GatewayOptions {
  for (const key of Object.keys(input)) {
    if (
      !(key in DEFAULTS) &&
      !['tlsCert', 'tlsKey', 'tokenSecret', 'jwks', 'tokenIssuer', 'tokenAudience', 'webhookUrl', 'webhookSecret'].includes(key)
    ) {
      throw new OptionsError(`unknown option "${key}"`);
    }
  }
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const o: GatewayOptions = { ...DEFAULTS, ...defined };
  if (!o.nodeId) o.nodeId = `gh-${Math.random().toString(36).slice(2, 10)}`;
  const rec = o as unknown as Record<string, unknown>;
  intField(rec, 'port', 0, 65535);
  for (const k of [
    'authTimeoutMs',
    'heartbeatMs',
    'tokenCacheSize',
    'maxPayloadBytes',
    'maxFragments',
    'maxQueueBytes',
    'maxQueueMessages',
    'maxSubscriptions',
    'maxMessagesPerSecond',
    'maxPingsPerSecond',
    'maxConnections',
    'maxConnectionsPerUser',
    'connectRate',
    'connectRatePerAddress',
    'closeTimeoutMs',
    'maxHeaderBytes',
    'headersTimeoutMs',
    'admissionLagMs',
    'admissionQueueBytes',
    'announceIntervalMs',
  ])
    intField(rec, k, 1);
  for (const k of [
    'refreshLeadMs',
    'tokenGraceMs',
    'channelLingerMs',
    'drainWindowMs',
    'rebalancePerRound',
    'rebalanceMinAgeMs',
    'rebalanceMinFleetConnections',
    'webhookGraceMs',
  ])
    intField(rec, k, 0);
  intField(rec, 'coalesceMs', 0, 1000);
  intField(rec, 'idempotencyWindowMs', 1000, 86_400_000);
  intField(rec, 'maxAuthFailures', 1, 1_000_000);
  if (typeof o.adminUi !== 'boolean') throw new OptionsError('adminUi must be true or false');
  intField(rec, 'maxBatchDelayMs', 0, 1000);
  if (o.nativeWrites !== 'auto' && o.nativeWrites !== 'on' && o.nativeWrites !== 'off') {
    throw new OptionsError(`nativeWrites must be auto, on or off, got ${JSON.stringify(o.nativeWrites)}`);
  }
  if (typeof o.rebalanceTolerance !== 'number' || !(o.rebalanceTolerance >= 0 && o.rebalanceTolerance <= 10)) {
    throw new OptionsError(`rebalanceTolerance must be a number from 0 to 10, got ${JSON.stringify(o.rebalanceTolerance)}`);
  }
  if (typeof o.host !== 'string' || o.host === '') throw new OptionsError('host must be a non-empty string');
  if (typeof o.nodeId !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(o.nodeId)) {
    throw new OptionsError('nodeId must be 1-64 characters from A-Z a-z 0-9 _ . -');
  }
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) {
    throw new OptionsError('tlsCert and tlsKey go together: give both or neither');
  }
  if (o.tokenSecret !== undefined && (typeof o.tokenSecret !== 'string' || o.tokenSecret.length < 8)) {
    throw new OptionsError('tokenSecret must be a string of at least 8 characters');
  }
  if (o.webhookUrl !== undefined && !/^https?:\/\/\S+$/.test(String(o.webhookUrl)))
    throw new OptionsError('webhookUrl must be an http(s) URL');
  if ((o.webhookUrl === undefined) !== (typeof o.webhookSecret !== 'string' || o.webhookSecret.length < 8)) {
    throw new OptionsError('webhookUrl needs webhookSecret (at least 8 characters) and the secret needs the URL');
  }
  if (!Array.isArray(o.apiKeys)) throw new OptionsError('apiKeys must be a list');
  o.apiKeys = o.apiKeys.map((k, i) => {
    const key = typeof k === 'string' ? { key: k } : k;
    if (!key || typeof key.key !== 'string' || key.key.length < 8) {
      throw new OptionsError(`apiKeys[${i}] must be at least 8 characters`);
    }
    if (key.channels !== undefined && (!Array.isArray(key.channels) || !key.channels.every((c) => typeof c === 'string'))) {
      throw new OptionsError(`apiKeys[${i}].channels must be a list of channel patterns`);
    }
    return key;
  });
  if (!Array.isArray(o.allowedOrigins) || !o.allowedOrigins.every((x) => typeof x === 'string')) {
    throw new OptionsError('allowedOrigins must be a list of origins like "https://app.example.com"');
  }
  if (typeof o.namespaces !== 'object' || o.namespaces === null || Object.keys(o.namespaces).length === 0) {
    throw new OptionsError('namespaces must name at least one namespace');
  }
  const namespaces: Record<string, NamespaceOptions> = Object.create(null);
  for (const [name, ns] of Object.entries(o.namespaces)) {
    if (name.startsWith('_')) throw new OptionsError(`namespaces.${name}: names starting with "_" are reserved for Gatehouse`);
    if (!NAMESPACE_RE.test(name)) throw new OptionsError(`namespaces.${name}: names are 1-64 characters from A-Z a-z 0-9 _ -`);
    const merged = { ...NAMESPACE_DEFAULTS, ...(ns ?? {}) } as NamespaceOptions & Record<string, unknown>;
    for (const key of Object.keys(merged)) {
      if (!(key in NAMESPACE_DEFAULTS)) throw new OptionsError(`namespaces.${name}.${key} is not a namespace option`);
    }
    try {
      intField(merged, 'historySize', 0, 1_000_000);
      intField(merged, 'historyTtlSeconds', 0, 30 * 86400);
    } catch (e) {
      throw new OptionsError(`namespaces.${name}.${(e as Error).message}`);
    }
    if (typeof merged.anonymous !== 'boolean') throw new OptionsError(`namespaces.${name}.anonymous must be true or false`);
    if (merged.subscribe !== 'claims' && merged.subscribe !== 'authenticated') {
      throw new OptionsError(`namespaces.${name}.subscribe must be "claims" or "authenticated"`);
    }
    if (typeof merged.presence !== 'boolean' || typeof merged.joinLeave !== 'boolean' || (merged.joinLeave && !merged.presence)) {
      throw new OptionsError(`namespaces.${name}: presence and joinLeave are true or false, and joinLeave needs presence`);
    }
    namespaces[name] = merged;
  }
  try {
    o.pusherApps = parsePusherApps(o.pusherApps);
    applyPusherWebhooks(o.pusherApps, o.pusherWebhooks);
  } catch (e) {
    throw new OptionsError((e as Error).message);
  }
  for (const app of o.pusherApps) namespaces[pusherNamespace(app)] ??= { ...NAMESPACE_DEFAULTS };
  o.namespaces = namespaces;
  return o;
}
