/**
 * `gatehouse start` configuration from three sources, later ones winning: a config file (YAML or
 * JSON), the environment (`GATEHOUSE_*`), and flags, read through the table in settings.ts. Every
 * mistake is reported in the user's terms: the flag, variable or file key they wrote.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { OptionsError, resolveOptions } from '@gatehouse/server';
import type { GatewayOptions, NamespaceOptions } from '@gatehouse/server';
import { BACKBONE_SETTINGS, applyBackboneOption, checkSettings, planBackbone } from '@gatehouse/backbones';
import type { BackboneSettings } from '@gatehouse/backbones';
import { closest, suggestion } from './args.js';
import { CLI_ONLY, SETTINGS, camel, envName } from './settings.js';
import type { LogFormat, Setting } from './settings.js';

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
  return [...SETTINGS.flatMap((s) => (s.kind === 'list' ? [camel(s.flag), `${camel(s.flag)}s`] : [camel(s.flag)])), 'namespaces', 'pusher'];
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
      if (key === 'pusher' && typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
        // `pusher: { apps: [ "id:key:secret" | {id, key, secret} ] }`, as --pusher-app would give them.
        const apps = (raw as { apps?: unknown }).apps;
        const list = Array.isArray(apps)
          ? apps.map((a: { id?: unknown; key?: unknown; secret?: unknown }, i) => {
              if (typeof a !== 'object' || a === null) return a;
              // Webhooks have their own setting; a field this reader would drop is refused, never ignored.
              const extra = Object.keys(a).find((k) => k !== 'id' && k !== 'key' && k !== 'secret');
              if (extra !== undefined) {
                throw new OptionsError(
                  `config file ${file}: pusher.apps[${i}] has an unknown field "${extra}" (an app is {id, key, secret}; webhooks go in pusherWebhooks: ["<app id>=<url>"])`,
                );
              }
              return `${String(a.id)}:${String(a.key)}:${String(a.secret)}`;
            })
          : apps;
        values.set(setting('pusher-app'), list, { name: 'pusher.apps', file, raw: apps });
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
  const sources: [unknown, Origin][] = [
    [fromEnv === '' ? undefined : fromEnv, { name: envName(option.flag), raw: fromEnv }],
    [flags[option.flag], fromFlag(option, flags[option.flag])],
  ];
  for (const [raw, origin] of sources) {
    if (raw === undefined) continue;
    for (const text of convert(option, raw, origin) as string[]) {
      try {
        applyBackboneOption(backboneSettings, text);
      } catch (err) {
        // The registry speaks of "backbone-option"; name the flag or variable it came through.
        throw err instanceof OptionsError ? new OptionsError(`${label(origin)}: ${err.message.replace(/^backbone-option /, '')}`) : err;
      }
    }
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
  try {
    planBackbone(backbone, { ...backboneSettings, namespace: backboneNamespace });
  } catch (err) {
    const origin = values.origin.get('backbone-namespace');
    if (!(err instanceof OptionsError) || !origin || !err.message.startsWith('backbone-namespace ')) throw err;
    throw new OptionsError(`${label(origin)}${err.message.slice('backbone-namespace'.length)}`);
  }
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
