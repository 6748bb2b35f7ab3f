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
import { closest, suggestion } from './args.js';

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
  /** The only values a string setting takes. */
  choices?: readonly string[];
}

/** Settings of the CLI itself, not gateway options. */
type CliOnly = 'backbone' | 'backboneNamespace' | 'backboneOption' | 'logLevel' | 'logFormat' | 'workers';
const CLI_ONLY: ReadonlySet<string> = new Set<CliOnly>([
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

/** What `gatehouse start` runs with. */
export interface StartConfig {
  gateway: Partial<GatewayOptions>;
  backbone: string[];
  /** `--backbone-namespace`, validated (see `createBackbone`). */
  backboneNamespace: string | undefined;
  /** The adapter settings (`backbone:` sections of the file, then `--backbone-option`), checked. */
  backboneSettings: BackboneSettings;
  logLevel: string;
  logFormat: LogFormat;
  workers: number;
}

function envName(flag: string): string {
  return `GATEHOUSE_${flag.toUpperCase().replace(/-/g, '_')}`;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Where a value came from, named as the user wrote it: `--port`, `GATEHOUSE_PORT`, or a file key. */
interface Origin {
  name: string;
  /** The config file, for a key read from one. */
  file?: string;
  raw: unknown;
}

function label(o: Origin): string {
  return o.file === undefined ? o.name : `config file ${o.file}: ${o.name}`;
}

function fromFlag(s: Setting, raw: unknown): Origin {
  return { name: `--${s.flag}`, raw };
}

function convert(s: Setting, raw: unknown, origin: Origin): unknown {
  const where = label(origin);
  switch (s.kind) {
    case 'int':
    case 'number':
    case 'seconds': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isFinite(n) || n < 0 || (s.kind === 'int' && !Number.isInteger(n))) {
        const what = s.kind === 'int' ? 'a whole number' : s.kind === 'seconds' ? 'a number of seconds' : 'a number';
        throw new OptionsError(`${where} must be ${what}, got ${JSON.stringify(raw)}`);
      }
      return s.kind === 'seconds' ? Math.round(n * 1000) : n;
    }
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw new OptionsError(`${where} must be true or false, got ${JSON.stringify(raw)}`);
    case 'list':
      if (Array.isArray(raw)) return raw;
      if (typeof raw === 'string')
        return raw
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean);
      throw new OptionsError(`${where} must be a list, got ${JSON.stringify(raw)}`);
    case 'string':
      if (typeof raw !== 'string' || raw === '') throw new OptionsError(`${where} must be a non-empty string`);
      if (s.choices && !s.choices.includes(raw)) {
        throw new OptionsError(`${where} must be one of ${s.choices.join(', ')}, got ${JSON.stringify(raw)}${suggestion(raw, s.choices)}`);
      }
      return raw;
  }
}

const BACKBONE_SECTION_KEYS = ['url', 'namespace', ...Object.keys(BACKBONE_SETTINGS)];

/**
 * Reads the file's `backbone:` mapping: `url` (one URL or a list) and `namespace` go where
 * `--backbone` and `--backbone-namespace` would, and the adapter sections are returned checked.
 */
function readBackboneSection(raw: Record<string, unknown>, values: Values, file: string): Record<string, Record<string, unknown>> {
  const where = `config file ${file}:`;
  const sections: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!BACKBONE_SECTION_KEYS.includes(key)) {
      throw new OptionsError(`${where} unknown setting backbone.${key} (known: ${BACKBONE_SECTION_KEYS.join(', ')})`);
    }
    if (key === 'url') values.set(setting('backbone'), value, { name: 'backbone.url', file, raw: value });
    else if (key === 'namespace') {
      if (values.has('backbone-namespace')) throw new OptionsError(`${where} backboneNamespace and backbone.namespace both set; keep one`);
      values.set(setting('backbone-namespace'), value, { name: 'backbone.namespace', file, raw: value });
    } else sections[key] = value;
  }
  return checkSettings(sections, `${where} `) as Record<string, Record<string, unknown>>;
}

function setting(flag: string): Setting {
  return SETTINGS.find((s) => s.flag === flag) as Setting;
}

/** Setting values by flag, each with where it came from, so a later check can name its source. */
class Values {
  readonly value = new Map<string, unknown>();
  readonly origin = new Map<string, Origin>();

  set(s: Setting, raw: unknown, origin: Origin): void {
    this.value.set(s.flag, convert(s, raw, origin));
    this.origin.set(s.flag, origin);
  }

  has(flag: string): boolean {
    return this.value.has(flag);
  }

  get<T>(flag: string): T | undefined {
    return this.value.get(flag) as T | undefined;
  }

  /** The name the user gave the setting behind gateway option `option` (its flag if unset). */
  nameOf(option: string): Origin | undefined {
    const s = SETTINGS.find((x) => x.option === option);
    if (!s) return undefined;
    return this.origin.get(s.flag) ?? fromFlag(s, undefined);
  }
}

const RANGE = /^(\w+) must be an integer from (\d+) to (\d+), got (.*)$/;

/** "a number of seconds above 0", "a whole number from 0 to 65535": a range in the user's unit. */
function rangeText(s: Setting, min: number, max: number): string {
  const unbounded = max >= Number.MAX_SAFE_INTEGER;
  if (s.kind === 'seconds') {
    if (!unbounded) return `a number of seconds from ${min / 1000} to ${max / 1000}`;
    return min > 0 ? 'a number of seconds above 0' : 'a number of seconds, 0 or more';
  }
  return unbounded ? `a whole number, at least ${min}` : `a whole number from ${min} to ${max}`;
}

/**
 * Rewrites the server's option check, which speaks of its own fields (`heartbeatMs`, in ms), in
 * the terms the user typed: the flag, variable or file key, in the setting's unit, with the value
 * as given. Namespaces exist only in the file, so their messages name it.
 */
function explain(err: OptionsError, values: Values, file: string | undefined): OptionsError {
  const range = RANGE.exec(err.message);
  const s = range && SETTINGS.find((x) => x.option === range[1]);
  if (range && s) {
    const origin = values.nameOf(s.option) as Origin;
    const got = origin.raw === undefined ? range[4] : JSON.stringify(origin.raw);
    return new OptionsError(`${label(origin)} must be ${rangeText(s, Number(range[2]), Number(range[3]))}, got ${got}`);
  }
  let inFile = err.message.startsWith('namespaces');
  const message = err.message.replace(
    /\b(apiKeys)\[(\d+)\]|\b([a-zA-Z]+)\b/g,
    (whole, list: string | undefined, index: string | undefined, word: string | undefined) => {
      const origin = values.nameOf(list ?? word ?? '');
      if (!origin) return whole;
      if (origin.file !== undefined) {
        inFile = true;
        return whole;
      }
      return list ? `${origin.name} #${Number(index) + 1}` : origin.name;
    },
  );
  return new OptionsError(inFile && file !== undefined ? `config file ${file}: ${message}` : message);
}

/** GATEHOUSE_* variables that are not settings but are read elsewhere (publish, workers). */
const OTHER_VARIABLES = new Set(['GATEHOUSE_CONFIG', 'GATEHOUSE_URL', 'GATEHOUSE_WORKER_INDEX', 'GATEHOUSE_NODE_BASE']);

/**
 * Warnings for GATEHOUSE_* variables that look like a misspelt setting (they are ignored). Only
 * near misses are reported: other tools may use the prefix for their own variables.
 */
export function environmentWarnings(env: NodeJS.ProcessEnv): string[] {
  const known = SETTINGS.map((s) => envName(s.flag));
  const warnings: string[] = [];
  for (const name of Object.keys(env)) {
    if (!name.startsWith('GATEHOUSE_') || known.includes(name) || OTHER_VARIABLES.has(name)) continue;
    const near = closest(
      name.slice('GATEHOUSE_'.length),
      known.map((k) => k.slice('GATEHOUSE_'.length)),
    );
    if (near !== undefined) warnings.push(`environment variable ${name} is not a setting and is ignored; did you mean GATEHOUSE_${near}?`);
  }
  return warnings;
}

/** Config-file keys: each setting in camelCase (lists also in the plural), and `namespaces`. */
function fileKeys(): string[] {
  return [...SETTINGS.flatMap((s) => (s.kind === 'list' ? [camel(s.flag), `${camel(s.flag)}s`] : [camel(s.flag)])), 'namespaces'];
}

function readFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new OptionsError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  try {
    return /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new OptionsError(`config file ${path} is not valid ${/\.json$/i.test(path) ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
  }
}

/**
 * Builds the start configuration. `flags` are parsed command-line values by flag name; `env` is
 * usually process.env. The result is validated by the server's own option check, and every
 * mistake names the flag, variable or file key the user wrote.
 */
export function loadStartConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): StartConfig {
  const values = new Values();
  let namespaces: Record<string, NamespaceOptions> | undefined;
  let backboneSettings: Record<string, Record<string, unknown>> = {};
  const file = (flags['config'] as string | undefined) ?? env['GATEHOUSE_CONFIG'];
  const doc = file === undefined ? undefined : readFile(file);
  if (file !== undefined && doc !== null && doc !== undefined) {
    if (typeof doc !== 'object' || Array.isArray(doc)) throw new OptionsError(`config file ${file} must hold a mapping`);
    for (const [key, raw] of Object.entries(doc as Record<string, unknown>)) {
      if (key === 'namespaces') {
        namespaces = raw as Record<string, NamespaceOptions>;
        continue;
      }
      if (key === 'backbone' && typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
        backboneSettings = readBackboneSection(raw as Record<string, unknown>, values, file);
        continue;
      }
      if (key === 'backboneNamespace' && values.has('backbone-namespace')) {
        throw new OptionsError(`config file ${file}: backboneNamespace and backbone.namespace both set; keep one`);
      }
      // Lists also answer to their plural (allowedOrigins for --allowed-origin).
      const s = SETTINGS.find((x) => camel(x.flag) === key || (x.kind === 'list' && `${camel(x.flag)}s` === key));
      if (!s) {
        const hint = suggestion(key, fileKeys()) || ' (settings use camelCase, e.g. drainWindow)';
        throw new OptionsError(`config file ${file}: unknown setting "${key}"${hint}`);
      }
      values.set(s, raw, { name: key, file, raw });
    }
  }
  for (const s of SETTINGS) {
    const raw = env[envName(s.flag)];
    if (raw !== undefined && raw !== '') values.set(s, raw, { name: envName(s.flag), raw });
  }
  for (const s of SETTINGS) {
    if (flags[s.flag] !== undefined) values.set(s, flags[s.flag], fromFlag(s, flags[s.flag]));
  }
  // Adapter settings merge one by one (a flag for one setting keeps the file's others), so
  // they are read from each source in turn rather than taken from the winning source whole.
  const option = setting('backbone-option');
  const fromEnv = env[envName(option.flag)];
  const sources: [unknown, Origin, string][] = [
    [fromEnv === '' ? undefined : fromEnv, { name: envName(option.flag), raw: fromEnv }, `environment ${envName(option.flag)}: `],
    [flags[option.flag], fromFlag(option, flags[option.flag]), '--'],
  ];
  for (const [raw, origin, where] of sources) {
    if (raw === undefined) continue;
    for (const text of convert(option, raw, origin) as string[]) applyBackboneOption(backboneSettings, text, where);
  }

  const gateway: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    if (!values.has(s.flag) || CLI_ONLY.has(s.option)) continue;
    gateway[s.option] = values.get(s.flag);
  }
  if (namespaces) gateway['namespaces'] = namespaces;
  // Validate now, so a bad setting stops the start with a precise message.
  try {
    resolveOptions(gateway as Partial<GatewayOptions>);
  } catch (err) {
    throw err instanceof OptionsError ? explain(err, values, file) : err;
  }
  const backbone = values.get<string[]>('backbone') ?? ['memory'];
  const workers = values.get<number>('workers') ?? 1;
  if (workers < 1 || workers > 64)
    throw new OptionsError(`${label(values.nameOf('workers') as Origin)} must be a whole number from 1 to 64, got ${workers}`);
  const backboneNamespace = values.get<string>('backbone-namespace');
  // Checks the URLs, the namespace and the settings together (no adapter is loaded for it).
  planBackbone(backbone, { ...backboneSettings, namespace: backboneNamespace });
  return {
    gateway: gateway as Partial<GatewayOptions>,
    backbone,
    backboneNamespace,
    backboneSettings: backboneSettings as BackboneSettings,
    logLevel: values.get<string>('log-level') ?? 'info',
    logFormat: (values.get<string>('log-format') ?? 'auto') as LogFormat,
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
