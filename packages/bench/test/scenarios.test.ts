/**
 * Every scenario at a small size (a hundred or two connections, a few seconds), end to end:
 * bench-started gateways and raw baselines, forked workers, real sockets. The assertions are
 * about what the tool reports - the JSON shape the issue lists, deliveries that add up, the
 * server's own counters agreeing with the clients' - never about speed.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gateway } from '@gatehouse/server';
import type { BenchDocument } from '../src/report.js';
import type { TargetResult } from '../src/run.js';
import { bench } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'gh-bench-'));
let fileNo = 0;

/** Runs the bench with --json (and --html) and returns the document. */
async function run(argv: string[], html = false): Promise<{ doc: BenchDocument; out: string; htmlText: string | undefined }> {
  const json = join(dir, `run-${++fileNo}.json`);
  const htmlFile = join(dir, `run-${fileNo}.html`);
  const r = await bench([...argv, '--quiet', '--json', json, ...(html ? ['--html', htmlFile] : [])]);
  assert.equal(r.code, 0, `bench ${argv.join(' ')} failed: ${r.err}`);
  return {
    doc: JSON.parse(readFileSync(json, 'utf8')) as BenchDocument,
    out: r.out,
    htmlText: html ? readFileSync(htmlFile, 'utf8') : undefined,
  };
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** The fields the issue requires of `gateway` and `baseline`, and that the counts add up. */
function checkResult(r: TargetResult | undefined, connections: number): asserts r is TargetResult {
  assert.ok(r, 'result missing');
  assert.ok(isNum(r.memoryPerConnectionBytes), `memoryPerConnectionBytes: ${r.memoryPerConnectionBytes}`);
  assert.ok('deliveriesPerCpuSecond' in r);
  for (const k of ['p50', 'p99', 'p999', 'max'] as const) assert.ok(isNum(r.latencyMs[k]), `latencyMs.${k}: ${r.latencyMs[k]}`);
  assert.ok((r.latencyMs.p50 as number) <= (r.latencyMs.p99 as number) && (r.latencyMs.p99 as number) <= (r.latencyMs.max as number));
  assert.ok(isNum(r.delivered) && r.delivered > 0);
  assert.equal(r.lost, 0);
  assert.equal(r.extra, 0);
  assert.equal(r.delivered, r.expected);
  assert.equal(r.latencyHistogram.count, r.delivered);
  assert.equal(r.connections, connections);
  assert.equal(r.failedConnections, 0);
  assert.ok(isNum(r.connectRetries));
  assert.equal(r.droppedConnections, 0);
  assert.equal(r.outOfOrder, 0);
  assert.ok(r.series.length >= 1);
  for (const p of r.series) for (const k of ['t', 'open', 'subscribed', 'deliveriesPerSecond'] as const) assert.ok(isNum(p[k]));
}

function checkDocument(doc: BenchDocument, scenario: string, connections: number): void {
  assert.equal(doc.scenario, scenario);
  assert.ok(doc.machine.cores >= 1);
  assert.equal(doc.machine.node, process.version);
  assert.equal(doc.params['connections'], connections);
  checkResult(doc.gateway, connections);
}

describe('idle', () => {
  test('reports memory per connection, idle CPU with heartbeats on, and probe deliveries, beside raw ws', async () => {
    const n = 150;
    const { doc, out, htmlText } = await run(
      [
        'idle',
        '--connections',
        String(n),
        '--duration',
        '2.5',
        '--heartbeat',
        '1',
        '--settle',
        '0.5',
        '--probes',
        '2',
        '--against',
        'raw-ws',
      ],
      true,
    );
    checkDocument(doc, 'idle', n);
    checkResult(doc.baseline, n);
    // Heartbeats every second for 2.5 s: a client that did not answer would have been dropped.
    assert.equal(doc.gateway.droppedConnections, 0);
    assert.ok(isNum(doc.gateway.idleCpuCores) && doc.gateway.idleCpuCores >= 0);
    assert.equal(doc.gateway.delivered, 2 * n);
    assert.equal(doc.gateway.deliveriesPerCpuSecond, null);
    assert.equal(doc.baseline?.target, 'raw-ws (send)');
    assert.ok(doc.ratio && isNum(doc.ratio.memoryPerConnection) && isNum(doc.ratio.p99));
    assert.equal(doc.ratio.deliveriesPerCpuSecond, null);
    assert.match(out, /memory per connection/);
    assert.match(out, /ratio/);
    assert.ok(htmlText);
    assert.match(htmlText, /<svg[^>]*>/);
    assert.match(htmlText, /Latency distribution/);
    assert.match(htmlText, /Connections over time/);
    assert.match(htmlText, /Throughput over time/);
    // Self-contained: nothing is fetched from anywhere.
    assert.doesNotMatch(htmlText, /<script|<link|\ssrc=|\shref=|url\(/i);
  });

  test('spreads connections over several gateway processes and workers', async () => {
    const n = 200;
    const { doc } = await run([
      'idle',
      '--connections',
      String(n),
      '--gateways',
      '2',
      '--workers',
      '2',
      '--duration',
      '1',
      '--settle',
      '0.5',
      '--probes',
      '1',
    ]);
    checkDocument(doc, 'idle', n);
    assert.equal(doc.gateway.processes, 2);
    assert.equal(doc.gateway.delivered, n);
  });
});

describe('fanout', () => {
  test("reports deliveries per server CPU-second and latency against two baselines, and agrees with the server's own count", async () => {
    const n = 150;
    const { doc } = await run([
      'fanout',
      '--connections',
      String(n),
      '--rate',
      '20',
      '--duration',
      '2',
      '--settle',
      '0.5',
      '--against',
      'raw-ws',
      '--baseline-mode',
      'send,coalesce',
    ]);
    checkDocument(doc, 'fanout', n);
    assert.equal(doc.gateway.delivered, 40 * n);
    assert.equal(doc.gateway.publications?.ok, 40);
    assert.equal(doc.gateway.serverDeliveries, doc.gateway.delivered);
    assert.ok(isNum(doc.gateway.deliveriesPerCpuSecond) && doc.gateway.deliveriesPerCpuSecond > 0);
    // Write calls are read from /proc for servers the bench started.
    assert.ok(isNum(doc.gateway.serverWriteCalls) && doc.gateway.serverWriteCalls > 0);
    assert.ok(isNum(doc.gateway.deliveriesPerWriteCall) && doc.gateway.deliveriesPerWriteCall > 0);
    for (const mode of ['send', 'coalesce'] as const) {
      const b = doc.baselines?.[mode];
      checkResult(b, n);
      assert.equal(b.target, `raw-ws (${mode})`);
      assert.equal(b.serverDeliveries, b.delivered);
      assert.ok(isNum(b.deliveriesPerCpuSecond));
      const r = doc.ratios?.[mode];
      assert.ok(r && isNum(r.deliveriesPerCpuSecond) && isNum(r.memoryPerConnection) && isNum(r.p99));
    }
    assert.deepEqual(doc.baseline, doc.baselines?.send);
    assert.deepEqual(doc.ratio, doc.ratios?.send);
  });

  test('runs a burst with SDK clients, profiling the gateway over the measured window', async () => {
    const n = 100;
    const profileDir = join(dir, 'profiles');
    const { doc, out } = await run([
      'fanout',
      '--connections',
      String(n),
      '--client',
      'sdk',
      '--burst',
      '30',
      '--settle',
      '0.5',
      '--profile',
      profileDir,
    ]);
    checkDocument(doc, 'fanout', n);
    assert.equal(doc.params['client'], 'sdk');
    assert.equal(doc.gateway.delivered, 30 * n);
    assert.equal(doc.params['burst'], 30);
    assert.equal(doc.profile?.files.length, 1);
    assert.ok(existsSync(doc.profile?.files[0] as string));
    assert.ok((doc.profile?.hotSpots.length ?? 0) > 0);
    assert.match(out, /gateway hot spots over the measured window/);
  });

  test('measures a gateway given by --url', async () => {
    process.env['GATEHOUSE_LOG_LEVEL'] ??= 'silent';
    const gw = new Gateway({
      host: '127.0.0.1',
      port: 0,
      apiKeys: [{ key: 'bench-test-key-123' }],
      connectRatePerAddress: 100_000,
      connectRate: 100_000,
    });
    const { port } = await gw.start();
    try {
      const n = 100;
      const { doc } = await run([
        'fanout',
        '--connections',
        String(n),
        '--url',
        `http://127.0.0.1:${port}`,
        '--api-key',
        'bench-test-key-123',
        '--rate',
        '10',
        '--duration',
        '1',
        '--settle',
        '0.5',
      ]);
      checkDocument(doc, 'fanout', n);
      assert.equal(doc.gateway.delivered, 10 * n);
      assert.equal(doc.gateway.processes, 1);
      // Not a process the bench started: no /proc figures, and no pretending.
      assert.equal(doc.gateway.serverWriteCalls, null);
      assert.equal(doc.gateway.deliveriesPerWriteCall, null);
    } finally {
      await gw.close();
    }
  });
});

describe('channels', () => {
  test('spreads connections over channels with a skew and counts what each channel should deliver', async () => {
    const n = 150;
    const { doc } = await run([
      'channels',
      '--connections',
      String(n),
      '--channels',
      '10',
      '--rate',
      '40',
      '--duration',
      '1.5',
      '--settle',
      '0.5',
    ]);
    checkDocument(doc, 'channels', n);
    assert.equal(doc.params['channels'], 10);
    assert.equal(doc.gateway.publications?.ok, 60);
    assert.ok(doc.gateway.expected > 0);
  });
});

describe('storm', () => {
  test('drop: every SDK client comes back and resubscribes, and the figures say when', async () => {
    const n = 100;
    const { doc } = await run(['storm', '--connections', String(n), '--duration', '30', '--settle', '0.5', '--probes', '1']);
    checkDocument(doc, 'storm', n);
    const s = doc.gateway.storm;
    assert.ok(s);
    assert.equal(s.cause, 'drop');
    assert.equal(s.back, n);
    assert.ok(isNum(s.allBackMs) && s.allBackMs > 0);
    assert.ok(isNum(s.reconnectMs.p99) && s.reconnectMs.p99 <= s.allBackMs);
    assert.ok(s.disconnects >= n);
    assert.ok(isNum(s.peakEventLoopLagMs));
    assert.equal(doc.gateway.delivered, n);
  });

  test('kill: the gateway is killed and restarted on its address, and every client recovers', async () => {
    const n = 100;
    const { doc } = await run([
      'storm',
      '--connections',
      String(n),
      '--cause',
      'kill',
      '--duration',
      '30',
      '--settle',
      '0.5',
      '--probes',
      '1',
    ]);
    checkDocument(doc, 'storm', n);
    assert.equal(doc.gateway.storm?.cause, 'kill');
    assert.equal(doc.gateway.storm?.back, n);
    assert.equal(doc.gateway.delivered, n);
  });
});

describe('failures', () => {
  let closedPort = 0;
  before(async () => {
    // A port that was free a moment ago and has no listener now.
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    closedPort = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
  });

  test('a gateway that is not there fails the run with exit 1 and says why', async () => {
    const r = await bench(['idle', '--connections', '10', '--url', `http://127.0.0.1:${closedPort}`, '--api-key', 'k', '--quiet']);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /ECONNREFUSED/);
  });

  test('refused attempts are retried, then the run fails naming the refusal', async () => {
    process.env['GATEHOUSE_LOG_LEVEL'] ??= 'silent';
    const gw = new Gateway({
      host: '127.0.0.1',
      port: 0,
      apiKeys: [{ key: 'bench-test-key-123' }],
      connectRate: 1,
      connectRatePerAddress: 100_000,
    });
    const { port } = await gw.start();
    try {
      const r = await bench([
        'idle',
        '--connections',
        '12',
        '--url',
        `http://127.0.0.1:${port}`,
        '--api-key',
        'bench-test-key-123',
        '--quiet',
      ]);
      assert.equal(r.code, 1, r.err);
      assert.match(r.err, /only \d+ of 12 connections subscribed/);
      assert.match(r.err, /overloaded \(connect_rate\).*\(retried\)|\(retried\).*overloaded/);
    } finally {
      await gw.close();
    }
  });

  test('the time bound stops the run and everything it started', async () => {
    const r = await bench(['idle', '--connections', '50', '--duration', '60', '--timeout', '4', '--quiet']);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /time bound of 4 s \(--timeout\)/);
  });
});
