import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCode } from '@gatehouse/protocol';
import { waitFor } from '@gatehouse/testkit';
import { MemoryBackbone, MemoryBus } from '../src/index.js';
import { decodeEventId, encodeEventId } from '../src/stream-transport.js';
import { RawClient, startGateway, token } from './helpers.js';
import { HttpStreamReader, SseReader } from './stream-client.js';

const NS = { public: { historySize: 100, historyTtlSeconds: 60, anonymous: true, subscribe: 'claims' as const } };

test('GET /sse: anonymous channels, publications as unnamed events whose id holds every channel position', async () => {
  const gw = await startGateway({ namespaces: NS });
  try {
    const sse = SseReader.open(gw.port, '?channel=public:a&channel=public:b');
    assert.equal(await sse.opened(), 200);
    await sse.next('subscribed', (d) => d.channel === 'public:a');
    await sse.next('subscribed', (d) => d.channel === 'public:b');
    const a = await gw.publish('public:a', '{"n":1}');
    const b = await gw.publish('public:b', '{"n":2}');
    await waitFor('two publications', () => sse.pubs().length === 2);
    assert.deepEqual(
      sse.pubs().map((p) => p.data),
      [{ n: 1 }, { n: 2 }],
    );
    const last = sse.events.at(-1)!;
    const pos = decodeEventId(last.id, 10);
    assert.deepEqual(pos.get('public:a'), { epoch: a.epoch, offset: a.offset });
    assert.deepEqual(pos.get('public:b'), { epoch: b.epoch, offset: b.offset });
    const unknown = SseReader.open(gw.port, '?channel=nope:x');
    assert.equal((await unknown.next('problem')).data.code, 'unknown_namespace', 'error frames are `problem` events');
    unknown.close();
    const connected = await sse.next('connected');
    assert.equal(connected.data.node, gw.options.nodeId);
    const metrics = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
    assert.match(metrics, /^gatehouse_connections\{[^}]*transport="sse"[^}]*\} 1$/m);
    sse.close();
  } finally {
    await gw.close();
  }
});

test('Last-Event-ID resumes every channel on another node: nothing lost, nothing twice', async () => {
  const bus = new MemoryBus();
  const a = await startGateway({ nodeId: 'sse-a', namespaces: NS }, { backbone: new MemoryBackbone({ bus }) });
  const b = await startGateway({ nodeId: 'sse-b', namespaces: NS }, { backbone: new MemoryBackbone({ bus }) });
  try {
    const first = SseReader.open(a.port, '?channel=public:x');
    await first.next('subscribed');
    for (let i = 1; i <= 3; i++) await a.publish('public:x', String(i));
    await waitFor('three publications', () => first.pubs().length === 3);
    const lastId = first.lastId;
    first.close();
    for (let i = 4; i <= 6; i++) await a.publish('public:x', String(i));
    // The browser reconnects to the same URL with the last id it saw; here it lands on node b.
    const second = SseReader.open(b.port, '?channel=public:x', { 'last-event-id': lastId });
    const sub = await second.next('subscribed');
    assert.equal(sub.data.recovered, true);
    await b.publish('public:x', '7');
    await waitFor('the missed three and the live one', () => second.pubs().length === 4);
    assert.deepEqual(
      second.pubs().map((p) => p.data),
      [4, 5, 6, 7],
    );
    second.close();
  } finally {
    await a.close();
    await b.close();
  }
});

test('POST /stream: protocol v1 frames both ways; commands reach the stream from another node', async () => {
  const bus = new MemoryBus();
  const a = await startGateway({ nodeId: 'hs-a', namespaces: NS, announceIntervalMs: 100 }, { backbone: new MemoryBackbone({ bus }) });
  const b = await startGateway({ nodeId: 'hs-b', namespaces: NS, announceIntervalMs: 100 }, { backbone: new MemoryBackbone({ bus }) });
  try {
    const tok = await token('alice', { publish: ['public:*'] });
    const s = HttpStreamReader.open(a.port, [
      { op: 'connect', id: 1, v: 1, token: tok },
      { op: 'subscribe', id: 2, channel: 'public:hs' },
    ]);
    await s.next('subscribed');
    assert.ok(s.stream.startsWith('hs-a~'));
    // Same node.
    assert.equal((await s.command(a.port, [{ op: 'publish', id: 3, channel: 'public:hs', data: 'one' }])).status, 202);
    await s.next('published', (f) => f['id'] === 3);
    // Another node: forwarded over the control plane once b has heard of a.
    await waitFor('b knows a', async () => {
      const r = await s.command(b.port, [{ op: 'publish', id: 4, channel: 'public:hs', data: 'two' }]);
      return r.status === 202;
    });
    await s.next('published', (f) => f['id'] === 4);
    await waitFor('both publications', () => s.frames.filter((f) => f['op'] === 'pub').length === 2);
    // Same replies as on WebSocket: errors for bad frames, in order on the stream.
    await s.command(b.port, [{ op: 'subscribe', id: 5, channel: 'public:hs' }]);
    assert.equal((await s.next('error', (f) => f['id'] === 5))['code'], 'already_subscribed');
    // Only the owner commands the stream.
    const wrong = await s.command(b.port, [{ op: 'unsubscribe', id: 6, channel: 'public:hs' }], 'not-the-secret-000000');
    assert.equal(wrong.status, 403);
    const unknown = await fetch(`http://127.0.0.1:${a.port}/stream/hs-a~AAAAAAAAAAAAAAAAAAAAAAAA`, {
      method: 'POST',
      headers: { 'gatehouse-secret': s.secret },
      body: '{"op":"pong"}',
    });
    assert.equal(unknown.status, 404);
    s.close();
  } finally {
    await a.close();
    await b.close();
  }
});

test('SSE tickets: a token is traded for a single-use ticket that opens an authenticated stream', async () => {
  const gw = await startGateway({
    namespaces: { private: { historySize: 10, historyTtlSeconds: 60, anonymous: false, subscribe: 'claims' } },
  });
  try {
    const tok = await token('bob', { channels: ['private:*'] });
    const refused = await fetch(`http://127.0.0.1:${gw.port}/sse/ticket`, { method: 'POST', headers: { authorization: 'Bearer nope' } });
    assert.equal(refused.status, 401);
    const r = await fetch(`http://127.0.0.1:${gw.port}/sse/ticket`, { method: 'POST', headers: { authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 200);
    const { ticket } = (await r.json()) as { ticket: string };
    const sse = SseReader.open(gw.port, `?ticket=${ticket}`);
    assert.equal(await sse.opened(), 200);
    await sse.next('connected');
    const again = SseReader.open(gw.port, `?ticket=${ticket}`);
    assert.equal(await again.opened(), 401, 'a ticket opens one stream only');
    const anon = SseReader.open(gw.port, '?channel=private:x');
    const closed = await anon.next('close');

    assert.equal(closed.data.code, CloseCode.Unauthorized);
    sse.close();
    again.close();
  } finally {
    await gw.close();
  }
});

test('a drained stream ends with a drain event carrying the retry delay (SSE) or a close line (http-stream)', async () => {
  const gw = await startGateway({ namespaces: NS });
  try {
    const sse = SseReader.open(gw.port, '?channel=public:d');
    await sse.next('subscribed');
    const hs = HttpStreamReader.open(gw.port, [{ op: 'connect', id: 1, v: 1 }]);
    await hs.next('connected');
    const ws = await RawClient.connect(gw.port);
    void gw.drain(200);
    const drain = await sse.next('drain');
    assert.equal(drain.data.code, CloseCode.Drain);
    assert.equal(typeof drain.data.retry, 'number');
    const close = await hs.next('close');
    assert.equal(close['code'], CloseCode.Drain);
    await waitFor('streams ended', () => sse.ended && hs.ended);
    ws.close();
  } finally {
    await gw.close();
  }
});

test('on a stream too: per-user limits, revocation, and the refresh handshake by POST', async () => {
  const gw = await startGateway({ namespaces: NS, maxConnectionsPerUser: 1, heartbeatMs: 100, refreshLeadMs: 60_000 });
  try {
    const tok = await token('carol', { jti: 'carol-1' }, 30);
    const ws = await RawClient.connect(gw.port, tok);
    const second = HttpStreamReader.open(gw.port, [{ op: 'connect', id: 1, v: 1, token: tok }]);
    assert.equal((await second.next('close'))['code'], CloseCode.UserConnectionLimit);
    ws.close();
    await waitFor('the WebSocket gone', () => gw.connections === 0);
    const s = HttpStreamReader.open(gw.port, [{ op: 'connect', id: 1, v: 1, token: tok }]);
    await s.next('connected');
    // The token expires within the refresh lead: the stream is asked, and answers by POST.
    const ask = await s.next('refresh');
    assert.equal(typeof ask['in'], 'number');
    const fresh = await token('carol', { jti: 'carol-2' });
    assert.equal((await s.command(gw.port, [{ op: 'refresh', id: 2, token: fresh }])).status, 202);
    await s.next('ok', (f) => f['id'] === 2);
    await gw.revoke('carol-2');
    const closed = await s.next('close');
    assert.equal(closed['code'], CloseCode.Unauthorized);
    assert.match(closed['reason'], /revoked/);
    await waitFor('the stream gone', () => s.ended);
  } finally {
    await gw.close();
  }
});

test('admission refuses a stream as it refuses a WebSocket: opened, then closed with 4100 and a retry delay', async () => {
  const gw = await startGateway({ namespaces: NS, maxConnections: 1 });
  try {
    const ws = await RawClient.connect(gw.port);
    const sse = SseReader.open(gw.port, '?channel=public:full');
    const closed = await sse.next('close');
    assert.equal(closed.data.code, CloseCode.Overloaded);
    assert.ok(closed.data.retry >= 1000, `retry ${closed.data.retry}`);
    const hs = HttpStreamReader.open(gw.port, [{ op: 'connect', id: 1, v: 1 }]);
    assert.equal((await hs.next('close'))['code'], CloseCode.Overloaded);
    await waitFor('both ended', () => sse.ended && hs.ended);
    assert.equal(gw.connections, 1);
    ws.close();
  } finally {
    await gw.close();
  }
});

test('a resume that history cannot cover is a subscribed with recovered false, then a gap event', async () => {
  const gw = await startGateway({
    namespaces: { public: { historySize: 2, historyTtlSeconds: 60, anonymous: true, subscribe: 'claims' } },
  });
  try {
    const first = SseReader.open(gw.port, '?channel=public:short');
    await first.next('subscribed');
    await gw.publish('public:short', '1');
    await waitFor('one publication', () => first.pubs().length === 1);
    const lastId = first.lastId;
    first.close();
    for (let i = 2; i <= 6; i++) await gw.publish('public:short', String(i));
    const second = SseReader.open(gw.port, '?channel=public:short', { 'last-event-id': lastId });
    const sub = await second.next('subscribed');
    assert.equal(sub.data.recovered, false);
    const gap = await second.next('gap');
    assert.deepEqual(gap.data, { op: 'gap', channel: 'public:short', reason: 'history', resume: true });
    assert.ok(second.events.indexOf(sub) < second.events.indexOf(gap), 'the gap follows the subscribed event');
    second.close();
  } finally {
    await gw.close();
  }
});

test('a ticket opens one stream fleet-wide: a replay on another node is refused once it heard', async () => {
  const bus = new MemoryBus();
  const ns = { private: { historySize: 10, historyTtlSeconds: 60, anonymous: false, subscribe: 'claims' as const } };
  const a = await startGateway({ nodeId: 'tk-a', namespaces: ns }, { backbone: new MemoryBackbone({ bus }) });
  const b = await startGateway({ nodeId: 'tk-b', namespaces: ns }, { backbone: new MemoryBackbone({ bus }) });
  try {
    const tok = await token('dave', { channels: ['private:*'] });
    const r = await fetch(`http://127.0.0.1:${a.port}/sse/ticket`, { method: 'POST', headers: { authorization: `Bearer ${tok}` } });
    const { ticket } = (await r.json()) as { ticket: string };
    // Issued by a, opened on b (the key comes from the shared token secret).
    const first = SseReader.open(b.port, `?ticket=${ticket}&channel=private:d`);
    await first.next('subscribed');
    const replay = await waitFor('a to hear the ticket was used', async () => {
      const again = SseReader.open(a.port, `?ticket=${ticket}`);
      const status = await again.opened();
      again.close();
      return status === 401 ? status : undefined;
    });
    assert.equal(replay, 401);
    first.close();
  } finally {
    await a.close();
    await b.close();
  }
});

test('event ids: positions round-trip, malformed entries are skipped, oversized ids are ignored', () => {
  const pos = new Map([
    ['public:a', { epoch: 'e|1,2%', offset: 7 }],
    ['public:b/c+d', { epoch: '', offset: 0 }],
  ]);
  const id = encodeEventId(pos, ['public:a', 'public:b/c+d', 'public:none']);
  assert.deepEqual(decodeEventId(id, 10), pos);
  assert.deepEqual([...decodeEventId('public:a|e|x,|||,public:b|%E0%A4%A|3,public:c|e|5', 10)], [['public:c', { epoch: 'e', offset: 5 }]]);
  assert.equal(decodeEventId('public:a|e|1,public:b|e|2', 1).size, 1, 'at most max entries');
  assert.equal(decodeEventId('x'.repeat(5000), 10).size, 0);
});
