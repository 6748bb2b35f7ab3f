/**
 * Bad parameters fail loudly: exit code 2, nothing started, and a message that names the flag.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBenchArgs } from '../src/params.js';
import type { BenchParams } from '../src/params.js';
import { bench } from './helpers.js';

const CASES: [string[], RegExp][] = [
  [[], /a scenario is required/],
  [['soak'], /unknown scenario "soak"/],
  [['idle', 'extra'], /unexpected argument "extra"/],
  [['idle', '--nope'], /--nope/],
  [['idle', '--connections', 'abc'], /--connections must be a whole number/],
  [['idle', '--connections', '0'], /--connections must be a whole number from 1/],
  [['fanout', '--rate=-5'], /--rate must be a number/],
  [['fanout', '--payload', '1'], /--payload must be a whole number from 2/],
  [['fanout', '--burst', '100', '--rate', '10'], /--burst .* contradicts --rate/],
  [['idle', '--rate', '10'], /--rate applies to fanout and channels/],
  [['storm', '--client', 'lean'], /--client lean cannot run storm/],
  [['fanout', '--client', 'raw'], /--client must be one of lean, sdk/],
  [['idle', '--connections', '40000', '--workers', '1'], /--workers 1 would put 40000 connections in one process/],
  [['idle', '--connections', '40000', '--gateways', '1'], /--gateways 1 would put 40000 connections in one gateway process/],
  [['idle', '--url', 'ftp://127.0.0.1:1', '--api-key', 'k'], /--url must be http:\/\/ or ws:\/\//],
  [['idle', '--url', 'http://10.1.2.3:8080', '--api-key', 'k'], /--url .* is not a loopback address; pass --allow-remote/],
  [['idle', '--url', 'http://127.0.0.1:8080'], /--api-key is required with --url/],
  [['idle', '--url', 'http://127.0.0.1:8080', '--api-key', 'k', '--gateways', '2'], /--gateways starts gateways; --url uses running ones/],
  [['storm', '--cause', 'kill', '--url', 'http://127.0.0.1:8080', '--api-key', 'k'], /--cause kill needs gateways the bench started/],
  [['fanout', '--cause', 'kill'], /--cause applies to storm/],
  [['fanout', '--against', 'nginx'], /--against must be one of raw-ws/],
  [['fanout', '--against', 'raw-ws', '--baseline-mode', 'turbo'], /--baseline-mode must be one of send, frame, coalesce/],
  [['fanout', '--baseline-mode', 'send'], /--baseline-mode needs --against raw-ws/],
  [['channels', '--connections', '10', '--channels', '20'], /--channels 20 is more than --connections 10/],
  [['fanout', '--rate', '1', '--duration', '2', '--batch', '5'], /--batch 5 is more than the 2 publications/],
  [['fanout', '--coalesce-ms', '5000'], /--coalesce-ms must be a whole number from 0 to 1,000/],
  [
    ['fanout', '--coalesce-ms', '5', '--url', 'http://127.0.0.1:8080', '--api-key', 'k'],
    /--coalesce-ms configures gateways the bench starts/,
  ],
  [['fanout', '--max-batch-delay-ms', '1001'], /--max-batch-delay-ms must be a whole number from 0 to 1,000/],
  [
    ['fanout', '--max-batch-delay-ms', '5', '--url', 'http://127.0.0.1:8080', '--api-key', 'k'],
    /--max-batch-delay-ms configures gateways the bench starts/,
  ],
  [['fanout', '--gateway-node-flags', 'max-semi-space-size=8'], /--gateway-node-flags takes Node flags such as/],
  [
    ['fanout', '--gateway-node-flags=--max-semi-space-size=8', '--url', 'http://127.0.0.1:8080', '--api-key', 'k'],
    /--gateway-node-flags configures gateways the bench starts/,
  ],
];

describe('gatehouse bench parameters', () => {
  for (const [argv, message] of CASES) {
    test(`refuses ${argv.join(' ') || '(nothing)'}`, async () => {
      const r = await bench(argv);
      assert.equal(r.code, 2, `exit code for ${argv.join(' ')}: ${r.err}`);
      assert.match(r.err, message);
      assert.match(r.err, /gatehouse bench --help/);
      assert.equal(r.out, '');
    });
  }

  test('prints help with every scenario and exits 0', async () => {
    const r = await bench(['--help']);
    assert.equal(r.code, 0);
    for (const s of ['idle', 'fanout', 'channels', 'storm', '--against raw-ws', '--connections', '--url', '--json', '--html']) {
      assert.ok(r.out.includes(s), `help lacks ${s}`);
    }
  });

  test('spreads large runs over processes within the open-file limit by default', () => {
    const p = parseBenchArgs(['idle', '--connections', '100000']) as BenchParams;
    assert.equal(p.workers, 7);
    assert.equal(p.gateways, 7);
    assert.ok(p.connections / p.workers <= 19_000);
  });

  test('passes batching and Node flags to started gateways only when asked', () => {
    const p = parseBenchArgs(['fanout', '--max-batch-delay-ms', '0', '--gateway-node-flags=--max-semi-space-size=8  --no-opt']);
    assert.ok(p !== 'help');
    assert.equal(p.maxBatchDelayMs, 0);
    assert.deepEqual(p.gatewayNodeFlags, ['--max-semi-space-size=8', '--no-opt']);
    const d = parseBenchArgs(['fanout']);
    assert.ok(d !== 'help');
    assert.equal(d.maxBatchDelayMs, undefined);
    assert.deepEqual(d.gatewayNodeFlags, []);
  });

  test("defaults storm to SDK clients and the gateway's own admission rate", () => {
    const p = parseBenchArgs(['storm']) as BenchParams;
    assert.equal(p.client, 'sdk');
    assert.equal(p.gatewayConnectRate, 1000);
    assert.equal(p.durationSeconds, 60);
  });

  test('maps ws:// and localhost --url to the IPv4 loopback base URL', () => {
    const p = parseBenchArgs(['fanout', '--url', 'ws://localhost:9000/ws', '--api-key', 'k']) as BenchParams;
    assert.deepEqual(p.urls, ['http://127.0.0.1:9000']);
    assert.equal(p.gateways, 1);
  });
});
