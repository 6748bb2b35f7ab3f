import { test } from 'node:test';
import assert from 'node:assert/strict';
import { API_KEY, RawClient, api, startGateway } from './helpers.js';

test('the publish API answers every mistake with a JSON error and publishes nothing', async () => {
  const gw = await startGateway({
    apiKeys: [{ key: API_KEY }, { key: 'scoped-key-123', channels: ['public:allowed:*'] }],
    maxPayloadBytes: 1024,
  });
  try {
    const watcher = await RawClient.connect(gw.port);
    await watcher.request({ op: 'subscribe', channel: 'public:x' });
    const cases: [string, () => Promise<{ status: number; body: any }>, number, string][] = [
      ['no key', () => api(gw.port, '/api/publish', { channel: 'public:x', data: 1 }, null), 401, 'unauthorized'],
      ['wrong key', () => api(gw.port, '/api/publish', { channel: 'public:x', data: 1 }, 'wrong-key-xyz'), 401, 'unauthorized'],
      ['invalid JSON', () => api(gw.port, '/api/publish', '{"channel":'), 400, 'bad_request'],
      ['not an object', () => api(gw.port, '/api/publish', '[1,2]'), 400, 'bad_request'],
      ['no data', () => api(gw.port, '/api/publish', { channel: 'public:x' }), 400, 'bad_request'],
      ['bad channel', () => api(gw.port, '/api/publish', { channel: 'x', data: 1 }), 400, 'invalid_channel'],
      ['unknown namespace', () => api(gw.port, '/api/publish', { channel: 'nope:x', data: 1 }), 400, 'unknown_namespace'],
      ['oversized', () => api(gw.port, '/api/publish', { channel: 'public:x', data: 'y'.repeat(5000) }), 413, 'payload_too_large'],
      ['key scope', () => api(gw.port, '/api/publish', { channel: 'public:x', data: 1 }, 'scoped-key-123'), 403, 'forbidden'],
      ['broadcast without channels', () => api(gw.port, '/api/broadcast', { data: 1 }), 400, 'bad_request'],
      [
        'broadcast with one bad channel',
        () => api(gw.port, '/api/broadcast', { channels: ['public:x', 'bad'], data: 1 }),
        400,
        'invalid_channel',
      ],
    ];
    for (const [name, call, status, code] of cases) {
      const res = await call();
      assert.equal(res.status, status, name);
      assert.equal(res.body.error.code, code, name);
      assert.equal(typeof res.body.error.message, 'string', name);
    }
    // Nothing was published: the next publication is offset 1.
    const ok = await api(gw.port, '/api/publish', { channel: 'public:x', data: 'first' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.offset, 1);
    const [p] = await watcher.waitPubs(1, 'public:x');
    assert.equal(p?.['data'], 'first');
    const scoped = await api(gw.port, '/api/publish', { channel: 'public:allowed:1', data: 1 }, 'scoped-key-123');
    assert.equal(scoped.status, 200);
    watcher.close();
  } finally {
    await gw.close();
  }
});

test('broadcast publishes to many channels at once', async () => {
  const gw = await startGateway();
  try {
    const c = await RawClient.connect(gw.port);
    await c.request({ op: 'subscribe', channel: 'public:a' });
    await c.request({ op: 'subscribe', channel: 'public:b' });
    const res = await api(gw.port, '/api/broadcast', { channels: ['public:a', 'public:b'], data: { n: 1 } });
    assert.equal(res.status, 200);
    assert.deepEqual(
      res.body.results.map((r: any) => [r.channel, r.offset]),
      [
        ['public:a', 1],
        ['public:b', 1],
      ],
    );
    await c.waitPubs(1, 'public:a');
    await c.waitPubs(1, 'public:b');
    c.close();
  } finally {
    await gw.close();
  }
});

test('health, readiness and metrics', async () => {
  const gw = await startGateway();
  try {
    const c = await RawClient.connect(gw.port, undefined, { reconnect: true });
    await c.request({ op: 'subscribe', channel: 'public:m' });
    await api(gw.port, '/api/publish', { channel: 'public:m', data: 1 });
    await c.waitPubs(1);
    const health = await fetch(`http://127.0.0.1:${gw.port}/healthz`);
    assert.equal(health.status, 200);
    const ready = await fetch(`http://127.0.0.1:${gw.port}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(((await ready.json()) as { backbone: { state: string } }).backbone.state, 'up');
    const text = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
    for (const name of [
      'gatehouse_connections',
      'gatehouse_connects_total',
      'gatehouse_reconnects_total',
      'gatehouse_publish_delivery_seconds',
      'gatehouse_outbound_queue_bytes',
      'gatehouse_outbound_queue_max_bytes',
      'gatehouse_slow_consumer_disconnects_total',
      'gatehouse_admission_rejects_total',
      'gatehouse_auth_cache_hits_total',
      'gatehouse_auth_cache_misses_total',
      'gatehouse_deliveries_total',
      'nodejs_eventloop_lag_p99_seconds',
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
    ])
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    assert.match(text, /^gatehouse_reconnects_total\{[^}]*\} 1$/m);
    assert.match(text, /^gatehouse_deliveries_total\{[^}]*\} 1$/m);
    assert.match(text, /^gatehouse_publish_delivery_seconds_count\{[^}]*\} 1$/m);
    c.close();
  } finally {
    await gw.close();
  }
});
