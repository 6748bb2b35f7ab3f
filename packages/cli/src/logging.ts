/**
 * The gateway's logs as people and collectors want them: JSON lines by default (what log
 * pipelines parse), readable lines on a terminal, and a start-up summary that says in one place
 * what this node is doing.
 */
import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';
import type { StartConfig } from './config.js';
import type { LogFormat } from './settings.js';

/** Where logs go: stdout, or a stand-in in tests. */
export interface LogOutput {
  write(text: string): unknown;
  isTTY?: boolean;
}

const LEVELS: Record<number, [string, string]> = {
  10: ['TRACE', '90'],
  20: ['DEBUG', '36'],
  30: ['INFO ', '32'],
  40: ['WARN ', '33'],
  50: ['ERROR', '31'],
  60: ['FATAL', '35'],
};

/** pino's own bookkeeping, not worth a person's attention on every line. */
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/** Records with more fields than this print one field a line (the start-up summary does). */
const FIELDS_ON_ONE_LINE = 5;

/** A field's value; strings are quoted only where spaces would make `key=value` ambiguous. */
function show(value: unknown, quote: boolean): string {
  if (typeof value === 'string') return !quote || /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * One pino JSON line as text for people: `12:04:05.123 INFO  message key=value ...`. An error's
 * stack follows on its own lines. A line that is not a JSON record passes through unchanged.
 */
export function prettyLine(json: string, color: boolean): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const [name, code] = LEVELS[record['level'] as number] ?? ['LOG  ', '0'];
  const time = typeof record['time'] === 'number' ? new Date(record['time']).toISOString().slice(11, 23) : '';
  const level = color ? `\x1b[${code}m${name}\x1b[0m` : name;
  let stack = '';
  const entries = Object.entries(record).filter(([key]) => !HIDDEN.has(key));
  const quote = entries.length <= FIELDS_ON_ONE_LINE;
  const fields: [string, string][] = [];
  for (const [key, value] of entries) {
    const err = value as { message?: unknown; stack?: unknown } | null;
    if (typeof err === 'object' && err !== null && typeof err.stack === 'string') {
      fields.push([key, show(err.message, quote)]);
      stack += `\n    ${err.stack.split('\n').join('\n    ')}`;
    } else fields.push([key, show(value, quote)]);
  }
  const head = `${time} ${level} ${String(record['msg'] ?? '')}`;
  if (!quote) {
    const width = Math.max(...fields.map(([key]) => key.length));
    return `${head}${fields.map(([key, value]) => `\n    ${key.padEnd(width)}  ${value}`).join('')}${stack}\n`;
  }
  return `${head}${fields.map(([key, value]) => ` ${key}=${value}`).join('')}${stack}\n`;
}

/** Whether `format` means readable lines on `out`. */
export function isPretty(format: LogFormat, out: LogOutput): boolean {
  return format === 'pretty' || (format === 'auto' && out.isTTY === true);
}

/**
 * The process logger. Secrets are redacted before any formatting, so readable lines hide them
 * just as JSON lines do. Colour only on a terminal, and never with NO_COLOR set.
 */
export function createLogger(
  level: string,
  format: LogFormat,
  out: LogOutput = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
): Logger {
  const options = { level, redact: { paths: ['token', '*.token', 'apiKey', '*.authorization'], censor: '[redacted]' } };
  if (!isPretty(format, out)) return pino(options, out as DestinationStream);
  const color = out.isTTY === true && !env['NO_COLOR'];
  return pino(options, { write: (line: string) => out.write(prettyLine(line.trimEnd(), color)) });
}

/** A backbone URL fit to print: any password replaced. */
function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password === '') return url;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

/**
 * What this node does, in the words of its settings: where clients connect, which backbone,
 * whether the publish API and token auth are on, which origins may open sockets.
 */
export function startupSummary(config: StartConfig, host: string, port: number): Record<string, string> {
  const g = config.gateway;
  const scheme = g.tlsCert ? 'wss' : 'ws';
  const everywhere = host === '0.0.0.0' || host === '::';
  const local = everywhere ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  const http = `${g.tlsCert ? 'https' : 'http'}://${local}:${port}`;
  const keys = g.apiKeys?.length ?? 0;
  // The verifier uses the secret when both are set (see TokenVerifier), so say so rather than list both.
  const auth = g.tokenSecret ? `HS256 secret${g.jwks ? ' (--jwks is ignored while a secret is set)' : ''}` : g.jwks ? `JWKS ${g.jwks}` : '';
  const origins = g.allowedOrigins ?? [];
  const summary: Record<string, string> = {
    listening: `${scheme}://${local}:${port}/ws${everywhere ? ` (bound to ${host}: every interface)` : ''}`,
    backbone: `${config.backbone.map(safeUrl).join(', ')}${config.backboneNamespace ? ` (namespace ${config.backboneNamespace})` : ''}`,
    publishApi: keys > 0 ? `on: POST ${http}/api/publish (${keys} key${keys === 1 ? '' : 's'})` : 'off (no --api-key)',
    tokenAuth: auth ? `on: ${auth}` : 'off (no --token-secret or --jwks): only anonymous namespaces accept clients',
    allowedOrigins: origins.length > 0 ? origins.join(', ') : 'any (set --allowed-origin before browsers reach it in production)',
    health: `${http}/healthz, ${http}/readyz, ${http}/metrics`,
  };
  if (config.workers > 1) summary['workers'] = String(config.workers);
  return summary;
}
