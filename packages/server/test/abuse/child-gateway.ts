/**
 * A gateway in its own process, for the abuse suite: whether the process survives, and how much
 * memory it holds, are only real when the gateway does not share a process with the test.
 *
 * Options come as JSON in GATEHOUSE_ABUSE_OPTIONS. Logs (pino JSON, debug level so that as much
 * as possible is logged) go to stdout, where the parent scans them for secrets. The parent talks
 * to a small admin hook over stdin/stdout: one JSON command per line in, one JSON line carrying
 * `"harness"` out. The process exits when stdin closes (the parent went away) or after a hard
 * deadline, so nothing outlives the test run.
 */
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { Gateway, MemoryBackbone } from '../../src/index.js';

const HARD_DEADLINE_MS = 10 * 60_000;

const options = JSON.parse(process.env['GATEHOUSE_ABUSE_OPTIONS'] ?? '{}') as Record<string, unknown>;
const backbone = new MemoryBackbone();
const gw = new Gateway({ port: 0, host: '127.0.0.1', ...options }, { backbone, logger: pino({ level: 'debug' }) });
const baselineProto = Object.getOwnPropertyNames(Object.prototype).sort().join(',');

function reply(id: unknown, body: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ harness: id, ...body }) + '\n');
}

function memory(): Record<string, number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  // Twice: the first pass can leave objects that only become garbage after finalizers ran.
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, gc: gc ? 1 : 0 };
}

/**
 * Publishes `bytesPerSecond` in `size`-byte publications from inside the node, for at most
 * `seconds`, and stops early once the node holds fewer than `untilConnectionsBelow` connections
 * (the slow consumer it was meant to catch is gone).
 */
async function flood(
  channel: string,
  size: number,
  bytesPerSecond: number,
  seconds: number,
  untilConnectionsBelow: number,
): Promise<number> {
  const data = JSON.stringify('x'.repeat(Math.max(0, size - 2)));
  const tickMs = 20;
  const perTick = Math.max(1, Math.round((bytesPerSecond * tickMs) / 1000 / size));
  const end = Date.now() + seconds * 1000;
  let sent = 0;
  while (Date.now() < end && gw.connections >= untilConnectionsBelow) {
    for (let i = 0; i < perTick; i++) await gw.publish(channel, data);
    sent += perTick;
    await new Promise((r) => setTimeout(r, tickMs));
  }
  return sent;
}

async function handle(cmd: Record<string, any>): Promise<void> {
  switch (cmd['cmd']) {
    case 'mem':
      return reply(cmd['id'], memory());
    case 'proto':
      return reply(cmd['id'], {
        changed: Object.getOwnPropertyNames(Object.prototype).sort().join(',') !== baselineProto,
        polluted:
          ({} as Record<string, unknown>)['polluted'] !== undefined || ([] as unknown as Record<string, unknown>)['polluted'] !== undefined,
      });
    case 'backbone':
      return reply(cmd['id'], { subscriptions: backbone.bus.subscribers.size, connections: gw.connections });
    case 'flood':
      return reply(cmd['id'], {
        sent: await flood(cmd['channel'], cmd['size'], cmd['bytesPerSecond'], cmd['seconds'], cmd['untilConnectionsBelow'] ?? 0),
      });
    case 'drain':
      reply(cmd['id'], { draining: true });
      await gw.drain(cmd['windowMs']);
      await gw.close();
      reply(cmd['id'], { drained: true });
      process.exit(0);
      return;
    default:
      return reply(cmd['id'], { error: `unknown command ${String(cmd['cmd'])}` });
  }
}

const { port } = await gw.start();
reply('ready', { port, pid: process.pid });

createInterface({ input: process.stdin }).on('line', (line) => {
  void handle(JSON.parse(line) as Record<string, any>).catch((err: unknown) => reply('error', { error: String(err) }));
});
process.stdin.on('end', () => process.exit(0));
setTimeout(() => process.exit(3), HARD_DEADLINE_MS).unref();
