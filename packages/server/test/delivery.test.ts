import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRetryHint } from '@gatehouse/protocol';
import { waitFor } from '@gatehouse/testkit';
import { RawClient, api, startGateway, token } from './helpers.js';

test('a slow consumer is closed with the slow-consumer code while others keep receiving', async () => {
  const gw = await startGateway({ maxQueueBytes: 256 * 1024 });
  try {
    const tok = await token('u1', { channels: ['private:*'] });
    const slow = await RawClient.connect(gw.port, tok);
    const fast = await RawClient.connect(gw.port, tok);
    await slow.request({ op: 'subscribe', channel: 'private:firehose' });
    await fast.request({ op: 'subscribe', channel: 'private:firehose' });
    // The slow client stops reading: the kernel buffers fill, then the gateway's queue.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const blob = 'x'.repeat(30_000);
    let sent = 0;
    await waitFor(
      'the slow consumer to be cut',
      async () => {
        await api(gw.port, '/api/publish', { channel: 'private:firehose', data: { n: sent++, blob } });
        const text = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
        return /gatehouse_slow_consumer_disconnects_total\{[^}]*\} 1/.test(text);
      },
      30_000,
      0,
    );
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const closed = await slow.waitClose(10_000);
    assert.ok(closed.code === 4300 || closed.code === 1006, `slow consumer closed with ${closed.code}`);
    // The fast client got every publication, in order.
    const got = await fast.waitPubs(sent, 'private:firehose', 10_000);
    assert.deepEqual(
      got.map((p) => p['data'].n),
      Array.from({ length: sent }, (_, i) => i),
    );
    assert.equal(fast.closed, undefined);
    fast.close();
  } finally {
    await gw.close();
  }
});

test('the server pings; a peer that never answers is dropped after the heartbeat deadline', async () => {
  const gw = await startGateway({ heartbeatMs: 400 });
  try {
    const alive = await RawClient.connect(gw.port);
    await alive.request({ op: 'subscribe', channel: 'public:hb' });
    await waitFor('an application ping', () => alive.frames.some((f) => f['op'] === 'ping'), 5000);
    // A peer whose WebSocket library does not answer pings and that sends nothing: half-open.
    const { WebSocket } = await import('ws');
    const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/ws`, { autoPong: false } as never);
    const dead = new RawClient(ws);
    await new Promise((r) => ws.once('open', r));
    await dead.request({ op: 'connect', v: 1 });
    const start = Date.now();
    const closed = await dead.waitClose(5000);
    assert.equal(closed.code, 4301);
    assert.ok(Date.now() - start <= 3 * 400 + 500, 'dropped within about two heartbeat intervals');
    // The answering peer stays.
    alive.send({ op: 'pong' });
    await api(gw.port, '/api/publish', { channel: 'public:hb', data: 'still here' });
    await alive.waitPubs(1, 'public:hb');
    assert.equal(alive.closed, undefined);
    alive.close();
  } finally {
    await gw.close();
  }
});

test('each publication is framed once: every subscriber receives identical bytes', async () => {
  const gw = await startGateway();
  try {
    const raws: Buffer[][] = [[], [], []];
    const clients = await Promise.all(raws.map(() => RawClient.connect(gw.port)));
    clients.forEach((c, i) => c.ws.on('message', (d: Buffer) => raws[i]?.push(Buffer.from(d))));
    for (const c of clients) await c.request({ op: 'subscribe', channel: 'public:same' });
    await api(gw.port, '/api/publish', { channel: 'public:same', data: { a: [1, 2, 3] } });
    for (const c of clients) await c.waitPubs(1, 'public:same');
    const pubBytes = raws.map((r) => r.find((b) => b.includes('"op":"pub"'))?.toString());
    assert.ok(pubBytes[0]);
    assert.equal(pubBytes[1], pubBytes[0]);
    assert.equal(pubBytes[2], pubBytes[0]);
    for (const c of clients) c.close();
  } finally {
    await gw.close();
  }
});

test('admission refuses past the connect rate with a retry delay', async () => {
  const gw = await startGateway({ connectRate: 1 });
  try {
    // Burst is two seconds' worth: two get in, the third is refused with a hint.
    const results = [];
    for (let i = 0; i < 4; i++) {
      const c = await RawClient.open(gw.port);
      c.send({ op: 'connect', id: 1, v: 1 });
      results.push(await waitFor('connected or closed', () => (c.frames.find((f) => f['op'] === 'connected') ? 'ok' : c.closed), 5000));
      if (results[i] === 'ok') c.close();
    }
    const refused = results.filter((r) => r !== 'ok') as { code: number; reason: string }[];
    assert.ok(refused.length >= 1, 'at least one refusal');
    for (const r of refused) {
      assert.equal(r.code, 4100);
      const hint = parseRetryHint(r.reason);
      assert.ok(hint !== undefined && hint >= 1000, `retry hint in "${r.reason}"`);
    }
    const text = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
    assert.match(text, /gatehouse_admission_rejects_total\{reason="connect_rate"[^}]*\} [1-9]/);
  } finally {
    await gw.close();
  }
});

test('a user over the per-user connection limit is refused with its code', async () => {
  const gw = await startGateway({ maxConnectionsPerUser: 2 });
  try {
    const tok = await token('dash', { channels: ['private:*'] });
    const a = await RawClient.connect(gw.port, tok);
    const b = await RawClient.connect(gw.port, tok);
    const c = await RawClient.open(gw.port);
    c.send({ op: 'connect', id: 1, v: 1, token: tok });
    const closed = await c.waitClose();
    assert.equal(closed.code, 4101);
    // Closing one frees a place.
    a.close();
    await waitFor('the freed place', async () => {
      const d = await RawClient.open(gw.port);
      const r = await d.request({ op: 'connect', v: 1, token: tok });
      d.close();
      return r['op'] === 'connected';
    });
    b.close();
  } finally {
    await gw.close();
  }
});

test('with coalesceMs, publications arriving within the window share one write per socket', async () => {
  const gw = await startGateway({ coalesceMs: 200 });
  try {
    const c = await RawClient.connect(gw.port);
    await c.request({ op: 'subscribe', channel: 'public:batch' });
    const chunks: Buffer[] = [];
    (c.ws as unknown as { _socket: NodeJS.EventEmitter })._socket.on('data', (d: Buffer) => chunks.push(d));
    // Published straight into the backbone one after another: well inside the 200 ms window.
    for (let i = 0; i < 5; i++) await gw.backbone.publish('public:batch', String(i), { historySize: 10, historyTtlSeconds: 60 });
    await c.waitPubs(5, 'public:batch');
    const withPubs = chunks.filter((b) => b.includes('"op":"pub"'));
    assert.equal(withPubs.length, 1, `one write carried all five (got ${withPubs.length} chunks)`);
    c.close();
  } finally {
    await gw.close();
  }
});
