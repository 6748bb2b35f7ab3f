/**
 * The fault drills at reduced sizes, run through the drill command exactly as an operator runs
 * them (a child process printing JSON lines), so CI exercises every drill: a rolling restart on
 * each durable shared backbone and on NATS core, a kill, a backbone restart, and a reconnect storm
 * with admission on and off.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SERVICES, serviceSkipReason, withDeadline } from '@gatehouse/testkit';
import { privateServerUnavailable } from '../src/index.js';

const DRILL = fileURLToPath(new URL('../src/drill.js', import.meta.url));

/** Runs the drill command; resolves with its exit code and the JSON lines it printed. */
async function drill(
  args: string[],
  timeoutMs = 150_000,
): Promise<{ code: number | null; lines: Record<string, unknown>[]; stderr: string }> {
  const child = spawn(process.execPath, [DRILL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const code = await withDeadline(`drill ${args[0]} to finish`, exited, timeoutMs);
    // Figures go to our stdout too, so a CI log carries them.
    process.stdout.write(out);
    const lines = out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    return { code, lines, stderr: err };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }
}

const redis = `redis://${SERVICES.redis.host}:${SERVICES.redis.port}`;
const nats = `nats://${SERVICES.nats.host}:${SERVICES.nats.port}`;
const kafka = `kafka://${SERVICES.kafka.host}:${SERVICES.kafka.port}`;
const skipRedis = await serviceSkipReason('redis', 'fleet drills (redis)');
const skipNats = await serviceSkipReason('nats', 'fleet drills (nats)');
const skipKafka = await serviceSkipReason('kafka', 'fleet drills (kafka)');
// Other suites' gateways share these servers: rebalancing would count them as part of the fleet.
const SMALL = ['--clients', '15', '--rate', '30', '--duration', '2', '--no-rebalance'];

describe('rolling restart of three gateways under load', () => {
  // JetStream and Kafka rolling restarts run the same code as Redis; docs/fleet.md has their figures.
  for (const [name, url, skip, durable] of [
    ['redis', redis, skipRedis, true],
    ['nats', nats, skipNats, false],
  ] as const) {
    test(
      `${name}: every node drains and comes back; ${durable ? 'nothing lost' : 'every loss reported'}, nothing duplicated`,
      { skip: skip ?? false },
      async () => {
        const { code, lines, stderr } = await drill(['rolling-restart', '--backbone', url, ...SMALL]);
        const r = lines[0];
        assert.ok(r, `a figures line (stderr: ${stderr.slice(-2000)})`);
        assert.equal(code, 0, `violations: ${JSON.stringify(r['violations'])}`);
        assert.equal(r['drill'], 'rolling-restart');
        assert.equal((r['drainMs'] as number[]).length, 3, 'all three nodes drained in turn');
        assert.ok((r['reconnects'] as number) >= 15, 'every client moved at least once');
        assert.equal(r['notBack'], 0);
        assert.equal(r['duplicated'], 0);
        assert.equal(r['lostSilent'], 0);
        if (durable) assert.equal(r['lost'], 0);
        assert.ok(((r['disconnects'] as Record<string, number>)['4200'] ?? 0) >= 15, 'the drains moved the clients (close 4200)');
      },
    );
  }
});

test('kill -9 of one gateway: the drill reports its clients back on the others', { skip: skipKafka ?? false }, async () => {
  const { code, lines, stderr } = await drill(['kill', '--backbone', kafka, ...SMALL]);
  const r = lines[0];
  assert.ok(r, `a figures line (stderr: ${stderr.slice(-2000)})`);
  assert.equal(code, 0, `violations: ${JSON.stringify(r['violations'])}`);
  assert.equal(r['reconnects'], r['clientsOnKilled']);
  assert.equal(r['lost'], 0);
  assert.equal(typeof (r['reconnectMs'] as { p99: unknown }).p99, 'number');
});

test(
  'kill -9 with a mix of WebSocket and HTTP-stream clients on Redis: nothing lost, nothing silent',
  { skip: skipRedis ?? false },
  async () => {
    const { code, lines, stderr } = await drill(['kill', '--backbone', redis, ...SMALL, '--streams', '7']);
    const r = lines[0];
    assert.ok(r, `a figures line (stderr: ${stderr.slice(-2000)})`);
    assert.equal(code, 0, `violations: ${JSON.stringify(r['violations'])}`);
    assert.equal(r['streamClients'], 7);
    assert.equal(r['reconnects'], r['clientsOnKilled']);
    assert.equal(r['lost'], 0);
    assert.equal(r['lostSilent'], 0);
    assert.equal(r['duplicated'], 0);
  },
);

test(
  'backbone restart: the drill restarts a private server under the gateways',
  { skip: skipNats ?? privateServerUnavailable('nats') ?? false },
  async () => {
    const { code, lines, stderr } = await drill(['backbone-restart', '--backbone', 'nats://', ...SMALL]);
    const r = lines[0];
    assert.ok(r, `a figures line (stderr: ${stderr.slice(-2000)})`);
    assert.equal(code, 0, `violations: ${JSON.stringify(r['violations'])}`);
    assert.equal(r['nodesRunning'], 3);
    assert.ok((r['gaps'] as number) > 0, 'NATS core keeps no history: every client was told');
    assert.equal(r['lostSilent'], 0);
  },
);

describe('reconnect storm of 300 clients in two worker processes', () => {
  test('admission on (connect rate 50/s): refusals are counted, obeyed, and everyone comes back and receives', async () => {
    // 300 clients back within their 0.5-1 s reconnect delay overrun a bucket of 100 (2 s at 50/s).
    const { code, lines, stderr } = await drill([
      'storm',
      '--clients',
      '300',
      '--workers',
      '2',
      '--admission',
      'on',
      '--gateway-arg=--connect-rate=50',
      '--timeout',
      '90',
    ]);
    const r = lines[0];
    assert.ok(r, `a figures line (stderr: ${stderr.slice(-2000)})`);
    assert.equal(code, 0, `violations: ${JSON.stringify(r['violations'])}`);
    assert.equal(r['notBack'], 0);
    assert.equal(r['probed'], 300);
    assert.equal(typeof r['allBackMs'], 'number');
    assert.equal(typeof r['peakLagMs'], 'number', 'the gateway reported its event-loop lag');
    const rejects = r['serverRejects'] as Record<string, number>;
    assert.ok((rejects['connect_rate'] ?? 0) > 0, `the connect rate refused some: ${JSON.stringify(rejects)}`);
    // A refusal whose close frame a busy client never read shows up there as a plain lost connection.
    const seen = r['refusalsSeen'] as number;
    assert.ok(
      seen > 0 && seen <= Object.values(rejects).reduce((a, b) => a + b, 0),
      `clients saw ${seen} of the refusals ${JSON.stringify(rejects)}`,
    );
  });

  test('admission effectively off: nothing refused, everyone back', async () => {
    const { code, lines, stderr } = await drill(['storm', '--clients', '300', '--workers', '2', '--admission', 'off', '--timeout', '90']);
    const r = lines[0];
    assert.ok(r, `a figures line (stderr: ${stderr.slice(-2000)})`);
    assert.equal(code, 0, `violations: ${JSON.stringify(r['violations'])}`);
    assert.deepEqual(r['gatewayArgs'], ['--connect-rate', '100000', '--admission-lag-ms', '600000']);
    assert.equal(r['notBack'], 0);
    assert.equal(r['probed'], 300);
    assert.equal((r['serverRejects'] as Record<string, number>)['connect_rate'] ?? 0, 0);
  });
});

test('a usage mistake exits 2 and names the option', async () => {
  const { code, stderr } = await drill(['kill', '--workers', '3'], 30_000);
  assert.equal(code, 2);
  assert.match(stderr, /--workers applies to storm, not kill/);
});
