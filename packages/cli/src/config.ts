/**
 * `gatehouse start` configuration from three sources, later ones winning: a config file (YAML or
 * JSON), the environment (`GATEHOUSE_*`), and flags. One table describes every setting, so
 * `--help`, the environment names and the README reference cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { DEFAULTS, OptionsError, resolveOptions } from '@gatehouse/server';
import type { GatewayOptions, NamespaceOptions } from '@gatehouse/server';
import { BACKBONE_SETTINGS, applyBackboneOption, checkSettings, planBackbone } from '@gatehouse/backbones';
import type { BackboneSettings, SettingSpec } from '@gatehouse/backbones';

type Kind = 'int' | 'number' | 'string' | 'list' | 'bool' | 'seconds';

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
}

/** Settings of the CLI itself, not gateway options. */
type CliOnly = 'backbone' | 'backboneNamespace' | 'backboneOption' | 'logLevel' | 'workers';
const CLI_ONLY: ReadonlySet<string> = new Set<CliOnly>(['backbone', 'backboneNamespace', 'backboneOption', 'logLevel', 'workers']);

const ms = (v: number) => `${v / 1000}`;

/** Every setting `gatehouse start` takes. */
export const SETTINGS: Setting[] = [
  { flag: 'port', kind: 'int', option: 'port', help: 'TCP port for WebSocket, API, health and metrics', defaultText: String(DEFAULTS.port) },
  { flag: 'host', kind: 'string', option: 'host', help: 'address to bind', defaultText: DEFAULTS.host },
  { flag: 'node-id', kind: 'string', option: 'nodeId', help: 'this node\'s name in logs, metrics and frames', defaultText: 'random' },
  { flag: 'backbone', kind: 'list', option: 'backbone', help: 'memory, redis://h:p (repeat to shard), redis+cluster://h:p (Redis Cluster seed, repeatable), nats://h:p, jetstream://h:p, kafka://h:p', defaultText: 'memory' },
  { flag: 'backbone-namespace', kind: 'string', option: 'backboneNamespace', help: 'keeps this fleet apart from others on the same backbone servers (own keys, subjects, stream, topic)', defaultText: 'none' },
  { flag: 'backbone-option', kind: 'list', option: 'backboneOption', help: 'an adapter setting, <section>.<setting>=<value>, e.g. jetstream.replicas=3 (repeatable; listed below and in docs/backbones.md)', defaultText: 'none' },
  { flag: 'workers', kind: 'int', option: 'workers', help: 'gateway processes on this port (one node each)', defaultText: '1' },
  { flag: 'api-key', kind: 'list', option: 'apiKeys', help: 'key for the HTTP publish API (repeatable)', defaultText: 'none: API disabled', secret: true },
  { flag: 'token-secret', kind: 'string', option: 'tokenSecret', help: 'HS256 secret for client tokens', defaultText: 'none', secret: true },
  { flag: 'jwks', kind: 'string', option: 'jwks', help: 'JWKS file or URL for RS256/ES256 tokens', defaultText: 'none' },
  { flag: 'token-issuer', kind: 'string', option: 'tokenIssuer', help: 'required iss claim', defaultText: 'any' },
  { flag: 'token-audience', kind: 'string', option: 'tokenAudience', help: 'required aud claim', defaultText: 'any' },
  { flag: 'allowed-origin', kind: 'list', option: 'allowedOrigins', help: 'allowed Origin for upgrades (repeatable)', defaultText: 'any origin' },
  { flag: 'tls-cert', kind: 'string', option: 'tlsCert', help: 'PEM certificate: terminate TLS in the process', defaultText: 'none' },
  { flag: 'tls-key', kind: 'string', option: 'tlsKey', help: 'PEM private key for --tls-cert', defaultText: 'none' },
  { flag: 'drain-window', kind: 'seconds', option: 'drainWindowMs', help: 'seconds over which SIGTERM spreads closes', defaultText: ms(DEFAULTS.drainWindowMs) },
  { flag: 'heartbeat', kind: 'seconds', option: 'heartbeatMs', help: 'seconds between server heartbeats', defaultText: ms(DEFAULTS.heartbeatMs) },
  { flag: 'auth-timeout', kind: 'seconds', option: 'authTimeoutMs', help: 'seconds a connection has to authenticate', defaultText: ms(DEFAULTS.authTimeoutMs) },
  { flag: 'max-connections', kind: 'int', option: 'maxConnections', help: 'connections on this node', defaultText: String(DEFAULTS.maxConnections) },
  { flag: 'max-connections-per-user', kind: 'int', option: 'maxConnectionsPerUser', help: 'connections per user (sub claim)', defaultText: String(DEFAULTS.maxConnectionsPerUser) },
  { flag: 'connect-rate', kind: 'int', option: 'connectRate', help: 'new connections per second on this node', defaultText: String(DEFAULTS.connectRate) },
  { flag: 'connect-rate-per-address', kind: 'int', option: 'connectRatePerAddress', help: 'new connections per second per client address', defaultText: String(DEFAULTS.connectRatePerAddress) },
  { flag: 'trust-proxy', kind: 'bool', option: 'trustProxy', help: 'take the client address from X-Forwarded-For', defaultText: 'false' },
  { flag: 'max-payload', kind: 'int', option: 'maxPayloadBytes', help: 'largest inbound message or API body, bytes', defaultText: String(DEFAULTS.maxPayloadBytes) },
  { flag: 'max-queue-bytes', kind: 'int', option: 'maxQueueBytes', help: 'outbound queue cap per connection, bytes', defaultText: String(DEFAULTS.maxQueueBytes) },
  { flag: 'max-queue-messages', kind: 'int', option: 'maxQueueMessages', help: 'outbound queue cap per connection, messages', defaultText: String(DEFAULTS.maxQueueMessages) },
  { flag: 'max-subscriptions', kind: 'int', option: 'maxSubscriptions', help: 'subscriptions per connection', defaultText: String(DEFAULTS.maxSubscriptions) },
  { flag: 'max-messages-per-second', kind: 'int', option: 'maxMessagesPerSecond', help: 'inbound messages per second per connection', defaultText: String(DEFAULTS.maxMessagesPerSecond) },
  { flag: 'coalesce-ms', kind: 'int', option: 'coalesceMs', help: 'hold each flush this many ms so publications share one write (0: next tick)', defaultText: String(DEFAULTS.coalesceMs) },
  { flag: 'admission-lag-ms', kind: 'int', option: 'admissionLagMs', help: 'refuse connects while event-loop lag p99 is above this, ms', defaultText: String(DEFAULTS.admissionLagMs) },
  { flag: 'admission-queue-bytes', kind: 'int', option: 'admissionQueueBytes', help: 'refuse connects while all outbound queues hold more, bytes', defaultText: String(DEFAULTS.admissionQueueBytes) },
  { flag: 'announce-interval', kind: 'seconds', option: 'announceIntervalMs', help: 'seconds between fleet announcements on the backbone', defaultText: ms(DEFAULTS.announceIntervalMs) },
  { flag: 'rebalance-tolerance', kind: 'number', option: 'rebalanceTolerance', help: 'shed connections above the fleet mean times 1 + this', defaultText: String(DEFAULTS.rebalanceTolerance) },
  { flag: 'rebalance-per-round', kind: 'int', option: 'rebalancePerRound', help: 'connections shed per announce interval (0: off)', defaultText: String(DEFAULTS.rebalancePerRound) },
  { flag: 'rebalance-min-age', kind: 'seconds', option: 'rebalanceMinAgeMs', help: 'connections younger than this many seconds are never shed', defaultText: ms(DEFAULTS.rebalanceMinAgeMs) },
  { flag: 'rebalance-min-fleet-connections', kind: 'int', option: 'rebalanceMinFleetConnections', help: 'no rebalancing while the fleet holds fewer connections', defaultText: String(DEFAULTS.rebalanceMinFleetConnections) },
  { flag: 'log-level', kind: 'string', option: 'logLevel', help: 'fatal, error, warn, info, debug or silent', defaultText: 'info' },
];

/** What `gatehouse start` runs with. */
export interface StartConfig {
  gateway: Partial<GatewayOptions>;
  backbone: string[];
  /** `--backbone-namespace`, validated (see `createBackbone`). */
  backboneNamespace: string | undefined;
  /** The adapter settings (`backbone:` sections of the file, then `--backbone-option`), checked. */
  backboneSettings: BackboneSettings;
  logLevel: string;
  workers: number;
}

function envName(flag: string): string {
  return `GATEHOUSE_${flag.toUpperCase().replace(/-/g, '_')}`;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function convert(s: Setting, raw: unknown, source: string): unknown {
  const where = `${source} ${s.flag}`;
  switch (s.kind) {
    case 'int':
    case 'number':
    case 'seconds': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isFinite(n) || n < 0 || (s.kind === 'int' && !Number.isInteger(n))) {
        throw new OptionsError(`${where} must be a ${s.kind === 'int' ? 'whole number' : 'number of seconds'}, got ${JSON.stringify(raw)}`);
      }
      return s.kind === 'seconds' ? Math.round(n * 1000) : n;
    }
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw new OptionsError(`${where} must be true or false, got ${JSON.stringify(raw)}`);
    case 'list':
      if (Array.isArray(raw)) return raw.map((x) => (typeof x === 'string' ? x : x));
      if (typeof raw === 'string') return raw.split(',').map((x) => x.trim()).filter(Boolean);
      throw new OptionsError(`${where} must be a list, got ${JSON.stringify(raw)}`);
    case 'string':
      if (typeof raw !== 'string' || raw === '') throw new OptionsError(`${where} must be a non-empty string`);
      return raw;
  }
}

const BACKBONE_SECTION_KEYS = ['url', 'namespace', ...Object.keys(BACKBONE_SETTINGS)];

/**
 * Reads the file's `backbone:` mapping: `url` (one URL or a list) and `namespace` go where
 * `--backbone` and `--backbone-namespace` would, and the adapter sections are returned checked.
 */
function readBackboneSection(raw: Record<string, unknown>, values: Record<string, unknown>, where: string): Record<string, Record<string, unknown>> {
  const sections: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!BACKBONE_SECTION_KEYS.includes(key)) {
      throw new OptionsError(`${where} unknown setting backbone.${key} (known: ${BACKBONE_SECTION_KEYS.join(', ')})`);
    }
    if (key === 'url') values['backbone'] = convert(setting('backbone'), value, `${where} backbone.url /`);
    else if (key === 'namespace') {
      if (values['backbone-namespace'] !== undefined) throw new OptionsError(`${where} backboneNamespace and backbone.namespace both set; keep one`);
      values['backbone-namespace'] = convert(setting('backbone-namespace'), value, `${where} backbone.namespace /`);
    } else sections[key] = value;
  }
  return checkSettings(sections, `${where} `) as Record<string, Record<string, unknown>>;
}

function setting(flag: string): Setting {
  return SETTINGS.find((s) => s.flag === flag) as Setting;
}

/**
 * Builds the start configuration. `flags` are parsed command-line values by flag name; `env` is
 * usually process.env. The result is validated by the server's own option check, so every
 * mistake names its field.
 */
export function loadStartConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): StartConfig {
  const values: Record<string, unknown> = {};
  let namespaces: Record<string, NamespaceOptions> | undefined;
  let backboneSettings: Record<string, Record<string, unknown>> = {};
  const file = (flags['config'] as string | undefined) ?? env['GATEHOUSE_CONFIG'];
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new OptionsError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
    } catch (err) {
      throw new OptionsError(`config file ${file} is not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
    }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== 'object' || Array.isArray(doc)) throw new OptionsError(`config file ${file} must hold a mapping`);
      for (const [key, raw] of Object.entries(doc as Record<string, unknown>)) {
        if (key === 'namespaces') {
          namespaces = raw as Record<string, NamespaceOptions>;
          continue;
        }
        if (key === 'apiKeys' && Array.isArray(raw)) {
          values['api-key'] = raw;
          continue;
        }
        if (key === 'backbone' && typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
          backboneSettings = readBackboneSection(raw as Record<string, unknown>, values, `config file ${file}:`);
          continue;
        }
        if (key === 'backboneNamespace' && values['backbone-namespace'] !== undefined) {
          throw new OptionsError(`config file ${file}: backboneNamespace and backbone.namespace both set; keep one`);
        }
        // Lists also answer to their plural (allowedOrigins for --allowed-origin).
        const s = SETTINGS.find((x) => camel(x.flag) === key || (x.kind === 'list' && `${camel(x.flag)}s` === key));
        if (!s) throw new OptionsError(`config file ${file}: unknown setting "${key}" (settings use camelCase, e.g. drainWindow)`);
        values[s.flag] = convert(s, raw, `config file ${file}:`);
      }
    }
  }
  for (const s of SETTINGS) {
    const raw = env[envName(s.flag)];
    if (raw !== undefined && raw !== '') values[s.flag] = convert(s, raw, `environment ${envName(s.flag)} /`);
  }
  for (const s of SETTINGS) {
    if (flags[s.flag] !== undefined) values[s.flag] = convert(s, flags[s.flag], '--');
  }
  // Adapter settings merge one by one (a flag for one setting keeps the file's others), so
  // they are read from each source in turn rather than taken from the winning source whole.
  const option = setting('backbone-option');
  const fromEnv = env[envName(option.flag)];
  const sources: [unknown, string][] = [
    [fromEnv === '' ? undefined : fromEnv, `environment ${envName(option.flag)}: `],
    [flags[option.flag], '--'],
  ];
  for (const [raw, where] of sources) {
    if (raw === undefined) continue;
    for (const text of convert(option, raw, where.trim()) as string[]) applyBackboneOption(backboneSettings, text, where);
  }

  const gateway: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    if (values[s.flag] === undefined || CLI_ONLY.has(s.option)) continue;
    gateway[s.option] = values[s.flag];
  }
  if (namespaces) gateway['namespaces'] = namespaces;
  // Validate now, so a bad setting stops the start with a precise message.
  resolveOptions(gateway as Partial<GatewayOptions>);
  const backbone = (values['backbone'] as string[] | undefined) ?? ['memory'];
  const workers = (values['workers'] as number | undefined) ?? 1;
  if (workers < 1 || workers > 64) throw new OptionsError('workers must be from 1 to 64');
  const backboneNamespace = values['backbone-namespace'] as string | undefined;
  // Checks the URLs, the namespace and the settings together (no adapter is loaded for it).
  planBackbone(backbone, { ...backboneSettings, namespace: backboneNamespace });
  return {
    gateway: gateway as Partial<GatewayOptions>,
    backbone,
    backboneNamespace,
    backboneSettings: backboneSettings as BackboneSettings,
    logLevel: (values['log-level'] as string | undefined) ?? 'info',
    workers,
  };
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
