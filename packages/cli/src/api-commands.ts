/**
 * The server API from the command line (docs/api.md): `history`, `channels`, `disconnect`,
 * `subscribe`, `unsubscribe`, `info` and `drain`, each one call through `@gatehouse/publisher`,
 * printing the gateway's JSON answer. `--url` and `--api-key` (or GATEHOUSE_URL and
 * GATEHOUSE_API_KEY) say where and with which key, as for `publish`.
 */
import type { ParseArgsConfig } from 'node:util';
import { UsageError, parse } from './args.js';

/** The commands this file runs. */
export const API_COMMANDS = ['history', 'channels', 'disconnect', 'subscribe', 'unsubscribe', 'info', 'drain'] as const;
type ApiCommand = (typeof API_COMMANDS)[number];

const COMMON = '[--url <http://127.0.0.1:8080>] [--api-key <key>]';
const USAGES: Record<ApiCommand, string> = {
  history: `gatehouse history <channel> [--limit <1-1000>] [--since <epoch>:<offset>] [--reverse] ${COMMON}`,
  channels: `gatehouse channels [--pattern <name | prefix*>] [--limit <1-1000>] ${COMMON}`,
  disconnect: `gatehouse disconnect (--user <id> | --client <id>) [--reconnect] [--reason <text>] ${COMMON}`,
  subscribe: `gatehouse subscribe <channel> (--user <id> | --client <id>) ${COMMON}`,
  unsubscribe: `gatehouse unsubscribe <channel> (--user <id> | --client <id>) ${COMMON}`,
  info: `gatehouse info [--slowest <0-100>] ${COMMON}`,
  drain: `gatehouse drain <node> ${COMMON}`,
};

/** One line per command, for the CLI's usage text. */
export function apiUsage(): string {
  return API_COMMANDS.map((c) => `  ${c.padEnd(10)} ${USAGES[c].replace(` ${COMMON}`, '')}`).join('\n');
}

function int(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(v)}`);
  return n;
}

function target(values: Record<string, unknown>): { user: string } | { client: string } | { user: string; client: string } {
  const user = values['user'] as string | undefined;
  const client = values['client'] as string | undefined;
  if (user === undefined && client === undefined) throw new UsageError('give --user <id> (every connection of a user) or --client <id>');
  return user !== undefined && client !== undefined ? { user, client } : user !== undefined ? { user } : { client: client as string };
}

/** Runs one server API command; prints the answer as JSON. */
export async function apiCommand(command: ApiCommand, argv: string[]): Promise<void> {
  const options: NonNullable<ParseArgsConfig['options']> = {
    url: { type: 'string' },
    'api-key': { type: 'string' },
    limit: { type: 'string' },
    since: { type: 'string' },
    reverse: { type: 'boolean' },
    pattern: { type: 'string' },
    user: { type: 'string' },
    client: { type: 'string' },
    reconnect: { type: 'boolean' },
    reason: { type: 'string' },
    slowest: { type: 'string' },
  };
  const { values, positionals } = parse(argv, options, true);
  if (values['help']) {
    console.log(
      `${USAGES[command]}\n\nPrints the gateway's JSON answer. The key may also come from GATEHOUSE_API_KEY, the URL from GATEHOUSE_URL.`,
    );
    return;
  }
  const wantsPositional = command === 'history' || command === 'subscribe' || command === 'unsubscribe' || command === 'drain';
  if (positionals.length !== (wantsPositional ? 1 : 0)) throw new UsageError(`usage: ${USAGES[command]}`);
  const arg = positionals[0] as string;
  const url = ((values['url'] as string | undefined) ?? process.env['GATEHOUSE_URL'] ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
  const apiKey = (values['api-key'] as string | undefined) ?? process.env['GATEHOUSE_API_KEY'];
  if (!apiKey) throw new UsageError('--api-key <key> (or GATEHOUSE_API_KEY) is required');
  const { HttpPublisher } = await import('@gatehouse/publisher');
  const api = new HttpPublisher({ url, apiKey });
  let answer: unknown;
  switch (command) {
    case 'history': {
      const since = values['since'] as string | undefined;
      const at = since?.lastIndexOf(':') ?? -1;
      if (since !== undefined && (at < 0 || !/^\d+$/.test(since.slice(at + 1)))) throw new UsageError('--since takes <epoch>:<offset>');
      const limit = int('limit', values['limit']);
      answer = await api.history(arg, {
        ...(limit === undefined ? {} : { limit }),
        ...(since === undefined ? {} : { since: { epoch: since.slice(0, at), offset: Number(since.slice(at + 1)) } }),
        ...(values['reverse'] ? { reverse: true } : {}),
      });
      break;
    }
    case 'channels': {
      const limit = int('limit', values['limit']);
      const pattern = values['pattern'] as string | undefined;
      answer = await api.channels({ ...(pattern === undefined ? {} : { pattern }), ...(limit === undefined ? {} : { limit }) });
      break;
    }
    case 'disconnect': {
      const reason = values['reason'] as string | undefined;
      answer = await api.disconnect({
        ...target(values),
        reconnect: values['reconnect'] === true,
        ...(reason === undefined ? {} : { reason }),
      });
      break;
    }
    case 'subscribe':
      answer = await api.subscribe(target(values), arg);
      break;
    case 'unsubscribe':
      answer = await api.unsubscribe(target(values), arg);
      break;
    case 'info': {
      const slowest = int('slowest', values['slowest']);
      answer = await api.info(slowest === undefined ? {} : { slowest });
      break;
    }
    case 'drain':
      answer = await api.drain(arg);
      break;
  }
  console.log(JSON.stringify(answer));
}

/** True when `command` is one of the server API commands. */
export function isApiCommand(command: string | undefined): command is ApiCommand {
  return (API_COMMANDS as readonly (string | undefined)[]).includes(command);
}
