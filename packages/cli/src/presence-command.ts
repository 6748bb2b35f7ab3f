/**
 * `gatehouse presence <channel> [--stats]`: who is in a presence channel across the fleet, through
 * the HTTP API (`POST /api/presence`, `/api/presence_stats`) of any node. Prints JSON.
 */
import { UsageError, parse } from './args.js';

const HELP = [
  'gatehouse presence <channel> [--stats] [--url <http://127.0.0.1:8080>] [--api-key <key>]',
  '',
  'Prints the members of a channel in a namespace with "presence": true, fleet-wide:',
  '{"channel","members":[{"client","user","info"?}...]}; with --stats the counts {"channel","clients","users"}.',
  'The key may also come from GATEHOUSE_API_KEY, the URL from GATEHOUSE_URL.',
].join('\n');

/** Runs the command. */
export async function presenceCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { url: { type: 'string' }, 'api-key': { type: 'string' }, stats: { type: 'boolean' } }, true);
  if (values['help']) {
    console.log(HELP);
    return;
  }
  const [channel] = positionals;
  if (!channel || positionals.length !== 1) throw new UsageError('usage: gatehouse presence <channel> [--stats]');
  const url = ((values['url'] as string | undefined) ?? process.env['GATEHOUSE_URL'] ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
  const apiKey = (values['api-key'] as string | undefined) ?? process.env['GATEHOUSE_API_KEY'];
  if (!apiKey) throw new UsageError('--api-key <key> (or GATEHOUSE_API_KEY) is required');
  const { HttpPublisher } = await import('@gatehouse/publisher');
  const publisher = new HttpPublisher({ url, apiKey });
  if (values['stats']) console.log(JSON.stringify({ channel, ...(await publisher.presenceStats(channel)) }));
  else console.log(JSON.stringify({ channel, members: await publisher.presence(channel) }));
}
