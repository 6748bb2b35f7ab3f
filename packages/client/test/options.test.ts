import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { GatehouseClient } from '../src/node.js';
import { GatehouseClient as BrowserClient } from '../src/index.js';
import { DEFAULTS, resolveOptions } from '../src/options.js';

const url = 'ws://127.0.0.1:1/ws';

test('defaults live in one place and apply when options are omitted', () => {
  const o = resolveOptions(url, {}, WebSocket);
  assert.deepEqual(o.backoff, { minMs: 500, maxMs: 20_000, factor: 2 });
  assert.equal(o.connectTimeoutMs, DEFAULTS.connectTimeoutMs);
  assert.equal(o.heartbeatGraceMs, DEFAULTS.heartbeatGraceMs);
  assert.equal(o.maxQueuedRequests, DEFAULTS.maxQueuedRequests);
  assert.equal(o.requestTimeoutMs, DEFAULTS.requestTimeoutMs);
  assert.equal(o.WebSocket, WebSocket);
  assert.equal(o.random, Math.random);
});

test('contradictions and bad values are rejected with a TypeError naming the field', () => {
  const bad: [unknown, unknown, RegExp][] = [
    ['http://x/ws', {}, /ws:\/\/ or wss:\/\//],
    [url, { token: 't', getToken: async () => 't' }, /token and options\.getToken are mutually exclusive/],
    [url, { token: '' }, /options\.token/],
    [url, { getToken: 'nope' }, /options\.getToken/],
    [url, { backoff: { minMs: 1_000, maxMs: 500 } }, /backoff\.maxMs \(500\) must be at least options\.backoff\.minMs \(1000\)/],
    [url, { backoff: { minMs: 0 } }, /backoff\.minMs/],
    [url, { backoff: { factor: 0.5 } }, /backoff\.factor/],
    [url, { connectTimeoutMs: Number.NaN }, /connectTimeoutMs/],
    [url, { heartbeatGraceMs: -1 }, /heartbeatGraceMs/],
    [url, { requestTimeoutMs: 2 ** 40 }, /requestTimeoutMs/],
    [url, { maxQueuedRequests: 1.5 }, /maxQueuedRequests/],
    [url, { WebSocket: 42 }, /options\.WebSocket must be a WebSocket constructor/],
    [url, { random: 0.5 }, /options\.random/],
  ];
  for (const [u, o, message] of bad) {
    assert.throws(
      () => resolveOptions(u, o as never, WebSocket),
      (e: unknown) => e instanceof TypeError && message.test(e.message),
      `${JSON.stringify(o)}`,
    );
  }
});

test('a backoff floor above the default cap raises the cap instead of contradicting it', () => {
  assert.deepEqual(resolveOptions(url, { backoff: { minMs: 30_000 } }, WebSocket).backoff, { minMs: 30_000, maxMs: 30_000, factor: 2 });
});

test('the Node entry defaults to ws; the browser entry needs a global WebSocket or the option', () => {
  assert.equal(new GatehouseClient(url).state, 'idle');
  const hadGlobal = 'WebSocket' in globalThis;
  if (!hadGlobal) {
    assert.throws(() => new BrowserClient(url), /no WebSocket implementation found/);
  }
  assert.equal(new BrowserClient(url, { WebSocket }).state, 'idle');
});
