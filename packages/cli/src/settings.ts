/**
 * The table of every `gatehouse start` setting: its flag, environment variable, config-file key,
 * kind and default. `--help`, the environment names, config-file keys and the README reference
 * (checked by a test) all come from it, so they cannot drift apart.
 */
import { DEFAULTS } from '@gatehouse/server';
import type { GatewayOptions } from '@gatehouse/server';
import { BACKBONE_SETTINGS } from '@gatehouse/backbones';
import type { SettingSpec } from '@gatehouse/backbones';

/** How a setting's text is read. */
export type Kind = 'int' | 'number' | 'string' | 'list' | 'bool' | 'seconds';

/** One setting: its flag, environment variable, config-file key and gateway option. */
export interface Setting {
  /** Flag without dashes, e.g. `drain-window`. */
  flag: string;
  kind: Kind;
  /** The gateway option it sets (seconds are converted to ms), or a CLI-only key. */
  option: keyof GatewayOptions | CliOnly;
  help: string;
  /** Shown in --help. */
  defaultText: string;
  /** Never printed (secrets). */
  secret?: boolean;
  /** The only values a string setting takes. */
  choices?: readonly string[];
}

/** Settings of the CLI itself, not gateway options. */
type CliOnly = 'backbone' | 'backboneNamespace' | 'backboneOption' | 'logLevel' | 'logFormat' | 'workers';
/** Options of the CLI, not passed to the gateway. */
export const CLI_ONLY: ReadonlySet<string> = new Set<CliOnly>([
  'backbone',
  'backboneNamespace',
  'backboneOption',
  'logLevel',
  'logFormat',
  'workers',
]);

/** The levels `--log-level` takes, quietest last (pino's own names). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** How logs are written: `pretty` lines for people, `json` lines for collectors, `auto` picks by terminal. */
export type LogFormat = 'auto' | 'pretty' | 'json';
const LOG_FORMATS: readonly LogFormat[] = ['auto', 'pretty', 'json'];

const ms = (v: number) => `${v / 1000}`;

/** Every setting `gatehouse start` takes. */
export const SETTINGS: Setting[] = [
  {
    flag: 'port',
    kind: 'int',
    option: 'port',
    help: 'TCP port for WebSocket, API, health and metrics',
    defaultText: String(DEFAULTS.port),
  },
  { flag: 'host', kind: 'string', option: 'host', help: 'address to bind', defaultText: DEFAULTS.host },
  { flag: 'node-id', kind: 'string', option: 'nodeId', help: "this node's name in logs, metrics and frames", defaultText: 'random' },
  {
    flag: 'backbone',
    kind: 'list',
    option: 'backbone',
    help: 'memory, redis://h:p (repeat to shard), redis+cluster://h:p (Redis Cluster seed, repeatable), nats://h:p, jetstream://h:p, kafka://h:p',
    defaultText: 'memory',
  },
  {
    flag: 'backbone-namespace',
    kind: 'string',
    option: 'backboneNamespace',
    help: 'keeps this fleet apart from others on the same backbone servers (own keys, subjects, stream, topic)',
    defaultText: 'none',
  },
  {
    flag: 'backbone-option',
    kind: 'list',
    option: 'backboneOption',
    help: 'an adapter setting, <section>.<setting>=<value>, e.g. jetstream.replicas=3 (repeatable; listed below and in docs/backbones.md)',
    defaultText: 'none',
  },
  { flag: 'workers', kind: 'int', option: 'workers', help: 'gateway processes on this port (one node each)', defaultText: '1' },
  {
    flag: 'api-key',
    kind: 'list',
    option: 'apiKeys',
    help: 'key for the HTTP publish API (repeatable)',
    defaultText: 'none: API disabled',
    secret: true,
  },
  {
    flag: 'pusher-app',
    kind: 'list',
    option: 'pusherApps',
    help: 'a Pusher app, <id>:<key>:<secret>: pusher-js connects on /app/<key>, the Pusher HTTP API answers on /apps/<id> (repeatable; docs/pusher.md)',
    defaultText: 'none: Pusher door off',
    secret: true,
  },
  {
    flag: 'pusher-webhook',
    kind: 'list',
    option: 'pusherWebhooks',
    help: "a Pusher app's webhook endpoint, <app id>=<url>: Pusher-format, signed with the app secret (repeatable; docs/pusher.md)",
    defaultText: 'none',
  },
  {
    flag: 'token-secret',
    kind: 'string',
    option: 'tokenSecret',
    help: 'HS256 secret for client tokens',
    defaultText: 'none',
    secret: true,
  },
  { flag: 'jwks', kind: 'string', option: 'jwks', help: 'JWKS file or URL for RS256/ES256 tokens', defaultText: 'none' },
  { flag: 'token-issuer', kind: 'string', option: 'tokenIssuer', help: 'required iss claim', defaultText: 'any' },
  { flag: 'token-audience', kind: 'string', option: 'tokenAudience', help: 'required aud claim', defaultText: 'any' },
  {
    flag: 'allowed-origin',
    kind: 'list',
    option: 'allowedOrigins',
    help: 'allowed Origin for upgrades (repeatable)',
    defaultText: 'any origin',
  },
  { flag: 'tls-cert', kind: 'string', option: 'tlsCert', help: 'PEM certificate: terminate TLS in the process', defaultText: 'none' },
  { flag: 'tls-key', kind: 'string', option: 'tlsKey', help: 'PEM private key for --tls-cert', defaultText: 'none' },
  {
    flag: 'drain-window',
    kind: 'seconds',
    option: 'drainWindowMs',
    help: 'seconds over which SIGTERM spreads closes',
    defaultText: ms(DEFAULTS.drainWindowMs),
  },
  {
    flag: 'heartbeat',
    kind: 'seconds',
    option: 'heartbeatMs',
    help: 'seconds between server heartbeats',
    defaultText: ms(DEFAULTS.heartbeatMs),
  },
  {
    flag: 'auth-timeout',
    kind: 'seconds',
    option: 'authTimeoutMs',
    help: 'seconds a connection has to authenticate',
    defaultText: ms(DEFAULTS.authTimeoutMs),
  },
  {
    flag: 'max-connections',
    kind: 'int',
    option: 'maxConnections',
    help: 'connections on this node',
    defaultText: String(DEFAULTS.maxConnections),
  },
  {
    flag: 'max-connections-per-user',
    kind: 'int',
    option: 'maxConnectionsPerUser',
    help: 'connections per user (sub claim)',
    defaultText: String(DEFAULTS.maxConnectionsPerUser),
  },
  {
    flag: 'connect-rate',
    kind: 'int',
    option: 'connectRate',
    help: 'new connections per second on this node',
    defaultText: String(DEFAULTS.connectRate),
  },
  {
    flag: 'connect-rate-per-address',
    kind: 'int',
    option: 'connectRatePerAddress',
    help: 'new connections per second per client address',
    defaultText: String(DEFAULTS.connectRatePerAddress),
  },
  { flag: 'trust-proxy', kind: 'bool', option: 'trustProxy', help: 'take the client address from X-Forwarded-For', defaultText: 'false' },
  {
    flag: 'admin-ui',
    kind: 'bool',
    option: 'adminUi',
    help: 'serve the admin web UI at /admin/ (sign in with an unrestricted API key)',
    defaultText: 'false',
  },
  {
    flag: 'idempotency-window',
    kind: 'seconds',
    option: 'idempotencyWindowMs',
    help: 'seconds a publish idempotencyKey is remembered (a retry within it publishes nothing)',
    defaultText: ms(DEFAULTS.idempotencyWindowMs),
  },
  {
    flag: 'max-auth-failures',
    kind: 'int',
    option: 'maxAuthFailures',
    help: 'failed API-key attempts one address may make per minute before it is refused for the rest of it',
    defaultText: String(DEFAULTS.maxAuthFailures),
  },
  {
    flag: 'max-payload',
    kind: 'int',
    option: 'maxPayloadBytes',
    help: 'largest inbound message or API body, bytes',
    defaultText: String(DEFAULTS.maxPayloadBytes),
  },
  {
    flag: 'max-queue-bytes',
    kind: 'int',
    option: 'maxQueueBytes',
    help: 'outbound queue cap per connection, bytes',
    defaultText: String(DEFAULTS.maxQueueBytes),
  },
  {
    flag: 'max-queue-messages',
    kind: 'int',
    option: 'maxQueueMessages',
    help: 'outbound queue cap per connection, messages',
    defaultText: String(DEFAULTS.maxQueueMessages),
  },
  {
    flag: 'max-subscriptions',
    kind: 'int',
    option: 'maxSubscriptions',
    help: 'subscriptions per connection',
    defaultText: String(DEFAULTS.maxSubscriptions),
  },
  {
    flag: 'max-messages-per-second',
    kind: 'int',
    option: 'maxMessagesPerSecond',
    help: 'inbound messages per second per connection',
    defaultText: String(DEFAULTS.maxMessagesPerSecond),
  },
  {
    flag: 'coalesce-ms',
    kind: 'int',
    option: 'coalesceMs',
    help: 'hold each flush this many ms so publications share one write (0: next tick)',
    defaultText: String(DEFAULTS.coalesceMs),
  },
  {
    flag: 'max-batch-delay-ms',
    kind: 'int',
    option: 'maxBatchDelayMs',
    help: 'bound on the delay adaptive write batching adds on a saturated node (0: off)',
    defaultText: String(DEFAULTS.maxBatchDelayMs),
  },
  {
    flag: 'native-writes',
    kind: 'string',
    option: 'nativeWrites',
    help: 'the batched send (one call writes a publication to many sockets): auto, on (refuse to start without it), off',
    defaultText: DEFAULTS.nativeWrites,
  },
  {
    flag: 'admission-lag-ms',
    kind: 'int',
    option: 'admissionLagMs',
    help: 'refuse connects while event-loop lag p99 is above this, ms',
    defaultText: String(DEFAULTS.admissionLagMs),
  },
  {
    flag: 'admission-queue-bytes',
    kind: 'int',
    option: 'admissionQueueBytes',
    help: 'refuse connects while all outbound queues hold more, bytes',
    defaultText: String(DEFAULTS.admissionQueueBytes),
  },
  {
    flag: 'announce-interval',
    kind: 'seconds',
    option: 'announceIntervalMs',
    help: 'seconds between fleet announcements on the backbone',
    defaultText: ms(DEFAULTS.announceIntervalMs),
  },
  {
    flag: 'rebalance-tolerance',
    kind: 'number',
    option: 'rebalanceTolerance',
    help: 'shed connections above the fleet mean times 1 + this',
    defaultText: String(DEFAULTS.rebalanceTolerance),
  },
  {
    flag: 'rebalance-per-round',
    kind: 'int',
    option: 'rebalancePerRound',
    help: 'connections shed per announce interval (0: off)',
    defaultText: String(DEFAULTS.rebalancePerRound),
  },
  {
    flag: 'rebalance-min-age',
    kind: 'seconds',
    option: 'rebalanceMinAgeMs',
    help: 'connections younger than this many seconds are never shed',
    defaultText: ms(DEFAULTS.rebalanceMinAgeMs),
  },
  {
    flag: 'rebalance-min-fleet-connections',
    kind: 'int',
    option: 'rebalanceMinFleetConnections',
    help: 'no rebalancing while the fleet holds fewer connections',
    defaultText: String(DEFAULTS.rebalanceMinFleetConnections),
  },
  {
    flag: 'webhook-url',
    kind: 'string',
    option: 'webhookUrl',
    help: 'lifecycle webhook endpoint (presence events, docs/presence.md)',
    defaultText: 'none',
  },
  {
    flag: 'webhook-secret',
    kind: 'string',
    option: 'webhookSecret',
    help: 'HMAC-SHA256 key that signs each webhook',
    defaultText: 'none',
    secret: true,
  },
  {
    flag: 'webhook-grace',
    kind: 'seconds',
    option: 'webhookGraceMs',
    help: 'seconds a user may be gone before user_offline is sent',
    defaultText: ms(DEFAULTS.webhookGraceMs),
  },
  {
    flag: 'log-level',
    kind: 'string',
    option: 'logLevel',
    choices: LOG_LEVELS,
    help: `${LOG_LEVELS.slice(0, -1).join(', ')} or silent`,
    defaultText: 'info',
  },
  {
    flag: 'log-format',
    kind: 'string',
    option: 'logFormat',
    choices: LOG_FORMATS,
    help: 'pretty (readable lines), json (one object a line), or auto: pretty on a terminal, json otherwise',
    defaultText: 'auto',
  },
];

/** The environment variable of a flag: `drain-window` is GATEHOUSE_DRAIN_WINDOW. */
export function envName(flag: string): string {
  return `GATEHOUSE_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** The config-file key of a flag: `drain-window` is drainWindow. */
export function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The `--help` text for `gatehouse start`. */
export function startHelp(): string {
  const lines = [
    'gatehouse start [options]',
    '',
    'Starts a gateway node. Settings come from --config <file.yaml|file.json>, then GATEHOUSE_* environment',
    'variables, then flags (flags win). Lists take repeated flags or comma-separated values.',
    '',
    '  --config <file>                      YAML or JSON file (keys in camelCase, plus "namespaces" and "backbone")  [env GATEHOUSE_CONFIG]',
  ];
  for (const s of SETTINGS) {
    const arg = s.kind === 'bool' ? '' : s.kind === 'list' ? ' <value>' : s.kind === 'seconds' ? ' <seconds>' : ' <value>';
    const left = `  --${s.flag}${arg}`.padEnd(39);
    lines.push(`${left}${s.help} (default: ${s.defaultText})  [env ${envName(s.flag)}]`);
  }
  lines.push(
    '',
    'Backbone adapter settings: --backbone-option <section>.<setting>=<value>, or in the config file',
    '"backbone: { url: ..., namespace: ..., <section>: { <setting>: <value> } }". A section applies to',
    'its backbone only: redis (redis://, rediss://, redis+cluster://), nats (nats:// and jetstream://),',
    'jetstream (jetstream://), kafka (kafka://).',
  );
  for (const [section, table] of Object.entries(BACKBONE_SETTINGS)) {
    for (const [key, spec] of Object.entries(table as Record<string, SettingSpec>)) {
      lines.push(`${`  ${section}.${key}`.padEnd(39)}${spec.meaning} (default: ${spec.default})`);
    }
  }
  return lines.join('\n');
}
