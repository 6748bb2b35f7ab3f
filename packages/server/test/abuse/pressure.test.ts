import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { waitFor } from '@gatehouse/testkit';
import { MemoryBackbone, MemoryBus } from '../../src/index.js';
import { FleetView } from '../../src/fleet.js';
import { API_KEY, RawClient, api, startGateway } from '../helpers.js';
import type { Frame } from '../helpers.js';

test('past the hard rate limit, replies to processed frames and the rate_limited errors go out before the 1008 close', async () => {
  const gw = await startGateway({ maxMessagesPerSecond: 100 });
  try {
    const c = await RawClient.connect(gw.port);
    const frames: Frame[] = [];
    for (let i = 0; i < 300; i++) frames.push({ op: 'subscribe', id: 100 + i, channel: `public:r${i}` });
    c.sendTogether(frames);
    const closed = await c.waitClose();
    assert.equal(closed.code, 1008);
    // connect counted one message in this second: 99 more are processed, 100 throttled, then the close.
    const answered = c.frames.filter((f) => typeof f['id'] === 'number' && f['id'] >= 100 && f['op'] === 'subscribed');
    const limited = c.frames.filter((f) => f['op'] === 'error' && f['code'] === 'rate_limited');
    assert.ok(answered.length >= 98, `subscribed replies before the close: ${answered.length}`);
    assert.ok(limited.length >= 99, `rate_limited errors before the close: ${limited.length}`);
  } finally {
    await gw.close();
  }
});

test('a channel name of 255 characters is accepted on both paths, 256 is refused on both', async () => {
  const gw = await startGateway();
  try {
    const ok = 'public:' + 'a'.repeat(255 - 'public:'.length);
    const long = ok + 'b';
    assert.equal(ok.length, 255);
    const c = await RawClient.connect(gw.port);
    assert.equal((await c.request({ op: 'subscribe', channel: ok }))['op'], 'subscribed');
    const refused = await c.request({ op: 'subscribe', channel: long });
    assert.equal(refused['code'], 'invalid_channel');
    assert.equal((await api(gw.port, '/api/publish', { channel: ok, data: 1 })).status, 200);
    await c.waitPubs(1, ok);
    const apiRefused = await api(gw.port, '/api/publish', { channel: long, data: 1 });
    assert.equal(apiRefused.status, 400);
    c.close();
  } finally {
    await gw.close();
  }
});

test('an error for a frame with an invalid op echoes its id', async () => {
  const gw = await startGateway();
  try {
    const c = await RawClient.connect(gw.port);
    c.send({ op: 42, id: 7 });
    const reply = await waitFor('the error', () => c.frames.find((f) => f['op'] === 'error'));
    assert.equal(reply['id'], 7);
    assert.equal(reply['code'], 'bad_request');
    c.close();
  } finally {
    await gw.close();
  }
});

function post(agent: Agent, port: number, body: string): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        port,
        host: '127.0.0.1',
        path: '/api/publish',
        method: 'POST',
        headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('413 on a keep-alive connection says connection: close, and the next request on the same agent succeeds', async () => {
  const gw = await startGateway({ maxPayloadBytes: 1024 });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const big = JSON.stringify({ channel: 'public:x', data: 'z'.repeat(4096) });
    const refused = await post(agent, gw.port, big);
    assert.equal(refused.status, 413);
    assert.equal(refused.connection, 'close');
    const next = await post(agent, gw.port, JSON.stringify({ channel: 'public:x', data: 1 }));
    assert.equal(next.status, 200);
  } finally {
    agent.destroy();
    await gw.close();
  }
});

test('rebalancing leaves a small fleet alone', () => {
  const view = new FleetView(10_000);
  const now = Date.now();
  view.hear({ node: 'a', connections: 40, lagMs: 0, ready: true, draining: false, ts: now }, now);
  view.hear({ node: 'b', connections: 0, lagMs: 0, ready: true, draining: false, ts: now }, now);
  assert.equal(view.excess('a', 40, 0.25, 20, 1000, now), 0);
  assert.equal(view.excess('a', 40, 0.25, 20, 0, now), 15);
});

test('rebalancing never sheds connections younger than rebalanceMinAgeMs', async () => {
  const bus = new MemoryBus();
  const opts = {
    announceIntervalMs: 50,
    rebalanceTolerance: 0.2,
    rebalancePerRound: 5,
    rebalanceMinFleetConnections: 0,
    rebalanceMinAgeMs: 60_000,
  };
  const a = await startGateway({ nodeId: 'busy', ...opts }, { backbone: new MemoryBackbone({ bus }) });
  const clients = await Promise.all(Array.from({ length: 12 }, () => RawClient.connect(a.port)));
  const b = await startGateway({ nodeId: 'idle', ...opts }, { backbone: new MemoryBackbone({ bus }) });
  try {
    // Wait until a has heard b and its view settled (three intervals of 'up' and then some): the
    // announcement count in a's fleet view proves time passed with a rebalance possible.
    await waitFor('a to see b', async () => {
      const res = await fetch(`http://127.0.0.1:${a.port}/admin/nodes`, { headers: { authorization: `apikey ${API_KEY}` } });
      const body = (await res.json()) as { nodes: { node: string }[] };
      return body.nodes.some((n) => n.node === 'idle') ? true : undefined;
    });
    // Proving that nothing happens: ten announce intervals after b appeared, a would have shed 5
    // per round without the age rule (fleet.test.ts shows the same setup shedding at age 0).
    const start = Date.now();
    await waitFor('ten announce intervals', () => (Date.now() - start >= 10 * opts.announceIntervalMs + 150 ? true : undefined));
    assert.equal(clients.filter((c) => c.closed).length, 0);
    assert.equal(a.connections, 12);
  } finally {
    for (const c of clients) c.close();
    await a.close();
    await b.close();
  }
});

test('a slow consumer cut is counted by the code the server decided (4300), not as 1006', async () => {
  const gw = await startGateway({ maxQueueBytes: 128 * 1024 });
  try {
    const slow = await RawClient.connect(gw.port);
    await slow.request({ op: 'subscribe', channel: 'public:firehose' });
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const blob = 'x'.repeat(30_000);
    const metrics = async () => (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
    await waitFor(
      'the slow consumer to be cut',
      async () => {
        await api(gw.port, '/api/publish', { channel: 'public:firehose', data: { blob } });
        return /gatehouse_slow_consumer_disconnects_total\{[^}]*\} 1/.test(await metrics());
      },
      30_000,
      0,
    );
    const text = await waitFor('the close to be counted', async () => {
      const t = await metrics();
      return /gatehouse_disconnects_total\{[^}]*code="4300"[^}]*\} 1/.test(t) ? t : undefined;
    });
    assert.doesNotMatch(text, /gatehouse_disconnects_total\{[^}]*code="1006"/);
    slow.close();
  } finally {
    await gw.close();
  }
});

test('a message over the payload limit closes with 1009 and a reason that names the limit', async () => {
  const gw = await startGateway({ maxPayloadBytes: 1024 });
  try {
    const c = await RawClient.connect(gw.port);
    c.ws.send('y'.repeat(2048));
    const closed = await c.waitClose();
    assert.equal(closed.code, 1009);
    assert.match(closed.reason, /too big: the limit is 1024 bytes/);
  } finally {
    await gw.close();
  }
});

test('a slow consumer that reads on after it was cut receives the 4300 close frame, not a bare TCP end', async () => {
  const gw = await startGateway({ maxQueueBytes: 512 * 1024 });
  try {
    const slow = await RawClient.connect(gw.port);
    await slow.request({ op: 'subscribe', channel: 'public:firehose' });
    const socket = (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    const blob = 'x'.repeat(30_000);
    await waitFor(
      'the slow consumer to be cut',
      async () => {
        await api(gw.port, '/api/publish', { channel: 'public:firehose', data: { blob } });
        const text = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
        return /gatehouse_slow_consumer_disconnects_total\{[^}]*\} 1/.test(text);
      },
      30_000,
      0,
    );
    // A slow reader: it takes two seconds to come back to the socket (the server used to drop the
    // connection a second after the cut), then reads what is still held for it and the close frame.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    socket.resume();
    const closed = await slow.waitClose(10_000);
    assert.equal(closed.code, 4300);
    assert.match(closed.reason, /slow consumer/);
  } finally {
    await gw.close();
  }
});
