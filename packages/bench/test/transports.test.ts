/**
 * `--transport`: the gateway measured over SSE and HTTP streaming beside WebSocket in one run, with
 * lean stream clients; every publication delivered over each. Bad combinations are refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bench } from './helpers.js';

for (const [argv, message] of [
  [['fanout', '--transport', 'smoke-signals'], /--transport must be one of websocket, sse, http-stream/],
  [['fanout', '--transport', 'sse', '--client', 'sdk'], /--transport sse and http-stream run lean clients/],
  [['storm', '--transport', 'http-stream'], /--transport sse and http-stream run lean clients/],
] as [string[], RegExp][]) {
  test(`refuses ${argv.join(' ')}`, async () => {
    const r = await bench(argv);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, message);
  });
}

test('fanout over websocket, sse and http-stream in one run: every publication delivered on each', { timeout: 180_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-bench-transports-'));
  try {
    const json = join(dir, 'run.json');
    const r = await bench([
      'fanout',
      '--transport',
      'websocket,sse,http-stream',
      '--connections',
      '200',
      '--rate',
      '20',
      '--duration',
      '2',
      '--settle',
      '0.5',
      '--quiet',
      '--json',
      json,
    ]);
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(await readFile(json, 'utf8'));
    assert.equal(doc.gateway.target, 'gateway');
    assert.deepEqual(Object.keys(doc.transports), ['sse', 'http-stream']);
    for (const t of [doc.gateway, doc.transports.sse, doc.transports['http-stream']]) {
      assert.equal(t.delivered, t.expected, `${t.target}: delivered every publication`);
      assert.equal(t.lost, 0);
      assert.ok(t.memoryPerConnectionBytes === null || t.memoryPerConnectionBytes > 0);
    }
    assert.equal(typeof doc.transportRatios.sse.deliveriesPerCpuSecond, 'number');
    assert.match(r.out, /gateway-sse/);
    assert.match(r.out, /gateway-http-stream/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
