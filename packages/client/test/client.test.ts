import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCode } from '@gatehouse/protocol';
import { waitFor } from '@gatehouse/testkit';
import { GatehouseClient, GatehouseError, type ClientOptions, type Publication } from '../src/node.js';
import { FakeServer, SilentTcpServer, type FakeConnection } from './fake-server.js';
import { collect, nextOf } from './helpers.js';

/** A fake server and a client aimed at it, both torn down after the test. */
async function setup(t: TestContext, options: ClientOptions = {}) {
  const server = await FakeServer.start();
  const client = new GatehouseClient(server.url, { backoff: { minMs: 10, maxMs: 40 }, random: () => 0, ...options });
  t.after(async () => {
    client.close();
    await server.stop();
    assert.deepEqual(server.invalidFrames, [], 'the SDK sent frames that are not valid protocol v1');
  });
  return { server, client };
}

/** Accepts the next connection and answers the subscribe request for `channel`. */
async function acceptAndSubscribe(
  server: FakeServer,
  channel: string,
  position: { epoch: string; offset: number },
): Promise<FakeConnection> {
  const conn = await server.nextConnection();
  await conn.accept();
  const sub = await conn.next('subscribe');
  assert.equal(sub.channel, channel);
  conn.send({ op: 'subscribed', id: sub.id, channel, ...position });
  return conn;
}

function pub(channel: string, epoch: string, offset: number, data: unknown = offset) {
  return { op: 'pub' as const, channel, epoch, offset, ts: 1_700_000_000_000, data };
}

test('connects anonymously, subscribes, and receives publications in order', async (t) => {
  const { server, client } = await setup(t);
  const states = collect(client, 'state');
  const sub = client.subscribe('chat:lobby');
  const got = collect(sub, 'publication');
  const everywhere = collect(client, 'publication');
  client.connect();
  const conn = await server.nextConnection();
  const connect = await conn.accept({ client: 'abc', node: 'n1', heartbeat: 60_000 });
  assert.deepEqual(connect, { op: 'connect', id: 1, v: 1 });
  const connected = await nextOf(client, 'connected');
  assert.deepEqual(connected, { client: 'abc', node: 'n1', heartbeat: 60_000, reconnect: false });
  const req = await conn.next('subscribe');
  assert.deepEqual(req, { op: 'subscribe', id: req.id, channel: 'chat:lobby' });
  conn.send({ op: 'subscribed', id: req.id, channel: 'chat:lobby', epoch: 'e1', offset: 4 });
  const subscribed = await nextOf(sub, 'subscribed');
  assert.deepEqual(subscribed, { channel: 'chat:lobby', epoch: 'e1', offset: 4 });
  conn.send(pub('chat:lobby', 'e1', 5, { text: 'hi' }));
  conn.send(pub('chat:lobby', 'e1', 6, { text: 'there' }));
  conn.send(pub('chat:other', 'e1', 7, 'not subscribed'));
  await waitFor('two publications', () => got.length === 2);
  assert.deepEqual(
    got.map((p) => p.data),
    [{ text: 'hi' }, { text: 'there' }],
  );
  assert.deepEqual(everywhere, got);
  assert.deepEqual(sub.position, { epoch: 'e1', offset: 6 });
  assert.deepEqual(
    states.map((s) => s.state),
    ['connecting', 'connected'],
  );
});

test('sends a fixed token in the connect frame, never in the URL', async (t) => {
  const { server, client } = await setup(t, { token: 'secret-token' });
  client.connect();
  const conn = await server.nextConnection();
  const connect = await conn.accept();
  assert.equal(connect.token, 'secret-token');
  assert.equal(conn.path, '/ws');
});

test('drops duplicates by offset and delivers each publication once', async (t) => {
  const { server, client } = await setup(t);
  const sub = client.subscribe('feed:a');
  const got = collect(sub, 'publication');
  const gaps = collect(sub, 'gap');
  client.connect();
  const conn = await acceptAndSubscribe(server, 'feed:a', { epoch: 'e1', offset: 0 });
  for (const offset of [1, 2, 3, 2, 3, 1, 4, 4, 5]) conn.send(pub('feed:a', 'e1', offset));
  await waitFor('offset 5', () => got.at(-1)?.offset === 5);
  assert.deepEqual(
    got.map((p) => p.offset),
    [1, 2, 3, 4, 5],
  );
  assert.deepEqual(gaps, []);
});

test('never deduplicates unsequenced publications (epoch "" and offset 0)', async (t) => {
  const { server, client } = await setup(t);
  const sub = client.subscribe('nats:a');
  const got = collect(sub, 'publication');
  client.connect();
  const conn = await acceptAndSubscribe(server, 'nats:a', { epoch: '', offset: 0 });
  conn.send(pub('nats:a', '', 0, 'x'));
  conn.send(pub('nats:a', '', 0, 'x'));
  conn.send(pub('nats:a', '', 0, 'y'));
  await waitFor('three publications', () => got.length === 3);
  assert.deepEqual(
    got.map((p) => p.data),
    ['x', 'x', 'y'],
  );
});

test('a new epoch under a live subscription is reported as a gap and resets the position', async (t) => {
  const { server, client } = await setup(t);
  const sub = client.subscribe('feed:a');
  const got = collect(sub, 'publication');
  const gaps = collect(client, 'gap');
  client.connect();
  const conn = await acceptAndSubscribe(server, 'feed:a', { epoch: 'e1', offset: 10 });
  conn.send(pub('feed:a', 'e1', 11));
  conn.send(pub('feed:a', 'e2', 1));
  conn.send(pub('feed:a', 'e2', 2));
  await waitFor('three publications', () => got.length === 3);
  assert.deepEqual(
    got.map((p) => `${p.epoch}/${p.offset}`),
    ['e1/11', 'e2/1', 'e2/2'],
  );
  assert.deepEqual(gaps, [{ channel: 'feed:a', reason: 'epoch' }]);
});

test('after a dropped socket it reconnects, resubscribes from the last offset, and drops the overlap', async (t) => {
  const { server, client } = await setup(t);
  const sub = client.subscribe('feed:a');
  const got = collect(sub, 'publication');
  const gaps = collect(sub, 'gap');
  client.connect();
  const first = await acceptAndSubscribe(server, 'feed:a', { epoch: 'e1', offset: 0 });
  for (const offset of [1, 2, 3]) first.send(pub('feed:a', 'e1', offset));
  await waitFor('offset 3', () => got.length === 3);
  const disconnected = nextOf(client, 'disconnected');
  first.drop();
  assert.equal((await disconnected).code, 1006);
  assert.equal(sub.state, 'subscribing');

  const second = await server.nextConnection();
  const connect = await second.accept();
  assert.equal(connect.reconnect, true);
  const resub = await second.next('subscribe');
  assert.deepEqual(resub.since, { epoch: 'e1', offset: 3 });
  second.send({ op: 'subscribed', id: resub.id, channel: 'feed:a', epoch: 'e1', offset: 5, recovered: true });
  for (const offset of [2, 3, 4, 5, 5, 6]) second.send(pub('feed:a', 'e1', offset));
  await waitFor('offset 6', () => got.at(-1)?.offset === 6);
  assert.deepEqual(
    got.map((p) => p.offset),
    [1, 2, 3, 4, 5, 6],
  );
  assert.deepEqual(gaps, []);
  assert.equal(client.state, 'connected');
});

test('recovered:false after a reconnect emits a gap (history, or epoch when the epoch changed)', async (t) => {
  const { server, client } = await setup(t);
  const a = client.subscribe('feed:a');
  const b = client.subscribe('feed:b');
  const gaps = collect(client, 'gap');
  const gotA = collect(a, 'publication');
  client.connect();
  const first = await server.nextConnection();
  await first.accept();
  for (let i = 0; i < 2; i++) {
    const req = await first.next('subscribe');
    first.send({ op: 'subscribed', id: req.id, channel: req.channel, epoch: 'e1', offset: 7 });
  }
  await nextOf(b, 'subscribed');
  first.drop();

  const second = await server.nextConnection();
  await second.accept();
  const reqs = [await second.next('subscribe'), await second.next('subscribe')];
  for (const req of reqs) {
    assert.deepEqual(req.since, { epoch: 'e1', offset: 7 });
    const epoch = req.channel === 'feed:a' ? 'e1' : 'e2';
    second.send({ op: 'subscribed', id: req.id, channel: req.channel, epoch, offset: 40, recovered: false });
  }
  await waitFor('two gaps', () => gaps.length === 2);
  assert.deepEqual(
    [...gaps].sort((x, y) => x.channel.localeCompare(y.channel)),
    [
      { channel: 'feed:a', reason: 'history' },
      { channel: 'feed:b', reason: 'epoch' },
    ],
  );
  // The position restarts from the server's: older offsets are no longer duplicates of anything.
  assert.deepEqual(a.position, { epoch: 'e1', offset: 40 });
  second.send(pub('feed:a', 'e1', 41));
  await waitFor('offset 41', () => gotA.at(-1)?.offset === 41);
});

test('a server gap frame reaches the subscription and the next publication sets the position', async (t) => {
  const { server, client } = await setup(t);
  const sub = client.subscribe('nats:x');
  const gaps = collect(sub, 'gap');
  const got = collect(sub, 'publication');
  client.connect();
  const conn = await acceptAndSubscribe(server, 'nats:x', { epoch: 'e1', offset: 9 });
  conn.send({ op: 'gap', channel: 'nats:x', reason: 'backbone' });
  conn.send(pub('nats:x', 'e1', 3));
  await waitFor('a publication', () => got.length === 1);
  assert.deepEqual(gaps, [{ channel: 'nats:x', reason: 'backbone' }]);
  assert.deepEqual(sub.position, { epoch: 'e1', offset: 3 });
});

test('a terminal close code stops the client: state closed, no reconnect, pending requests rejected', async (t) => {
  const { server, client } = await setup(t, { maxQueuedRequests: 5 });
  const sub = client.subscribe('chat:a');
  const ended = nextOf(sub, 'unsubscribed');
  client.connect();
  const queued = client.publish('chat:a', 1);
  const conn = await server.nextConnection();
  await conn.next('connect');
  const disconnected = nextOf(client, 'disconnected');
  conn.close(CloseCode.Unauthorized, 'token signature invalid');
  assert.deepEqual(await disconnected, { code: 4001, reason: 'token signature invalid', class: 'terminal', retryInMs: undefined });
  assert.equal(client.state, 'closed');
  await assert.rejects(queued, (e: GatehouseError) => e.code === 'closed' && /4001/.test(e.message));
  assert.deepEqual(await ended, { channel: 'chat:a', reason: 'closed' });
  assert.throws(() => client.connect(), /closed/);
  await assert.rejects(client.publish('chat:a', 1), (e: GatehouseError) => e.code === 'closed');
  // Showing that no reconnect comes needs a moment by which one would have come. A retry of this
  // never-healthy connection would wait one backoff step: 10 ms with these options. A control
  // client (told apart by its URL) turned away after the close above retries after 20 ms (random 1:
  // the top of the first window), so once it is back any retry of the stopped client is in too.
  const control = new GatehouseClient(`${server.url}?control`, { backoff: { minMs: 10, maxMs: 40 }, random: () => 1 });
  t.after(() => control.close());
  const controls = () => server.connections.filter((c) => c.path.endsWith('?control'));
  control.connect();
  (await waitFor('the control client', () => controls()[0])).close(CloseCode.Overloaded, 'busy');
  await waitFor('the control client back', () => controls().length === 2);
  assert.equal(server.connections.length - controls().length, 1, 'the stopped client connected again');
});

test('a backoff-class close waits at least the server retry hint', async (t) => {
  const { server, client } = await setup(t);
  client.connect();
  const first = await server.nextConnection();
  await first.next('connect');
  const disconnected = nextOf(client, 'disconnected');
  const closedAt = Date.now();
  first.close(CloseCode.Overloaded, 'connect rate limit; retry=300');
  const ev = await disconnected;
  assert.equal(ev.class, 'backoff');
  assert.equal(ev.retryInMs, 300);
  const second = await server.nextConnection();
  // Timers may fire up to a millisecond early; the hint is honoured, not approximated.
  assert.ok(second.openedAt - closedAt >= 299, `reconnected after ${second.openedAt - closedAt} ms`);
  assert.equal(client.state, 'reconnecting');
});

test('a reconnect-class close on a healthy connection reconnects quickly with small jitter or the hint', async (t) => {
  // A large backoff floor proves the quick path is not the backoff path.
  const { server, client } = await setup(t, { backoff: { minMs: 30_000, maxMs: 60_000 }, random: () => 0.25 });
  client.connect();
  const first = await server.nextConnection();
  await first.accept();
  first.send({ op: 'ping' });
  await first.next('pong');
  let disconnected = nextOf(client, 'disconnected');
  first.close(CloseCode.Drain, 'draining');
  assert.deepEqual(await disconnected, { code: 4200, reason: 'draining', class: 'reconnect', retryInMs: 250 });
  const second = await server.nextConnection();
  await second.accept();
  second.send({ op: 'ping' });
  await second.next('pong');
  disconnected = nextOf(client, 'disconnected');
  second.close(CloseCode.Rebalance, 'rebalance; retry=50');
  assert.equal((await disconnected).retryInMs, 50);
  await server.nextConnection();
});

test('a node that accepts and at once closes with a reconnect code cannot drive a tight loop', async (t) => {
  const { server, client } = await setup(t, { backoff: { minMs: 10, maxMs: 1000 }, random: () => 1 });
  const delays = collect(client, 'disconnected');
  client.connect();
  for (let i = 0; i < 4; i++) {
    const conn = await server.nextConnection();
    await conn.accept();
    conn.close(CloseCode.Drain, 'draining');
  }
  await waitFor('four disconnects', () => delays.length === 4);
  assert.deepEqual(
    delays.map((d) => d.retryInMs),
    [20, 40, 80, 160],
  );
});

test('a resumable close reconnects after a short pause and recovers from the last offset', async (t) => {
  const { server, client } = await setup(t, { backoff: { minMs: 30_000, maxMs: 60_000 }, random: () => 0.5 });
  const sub = client.subscribe('feed:a');
  const got = collect(sub, 'publication');
  client.connect();
  const first = await acceptAndSubscribe(server, 'feed:a', { epoch: 'e1', offset: 0 });
  first.send({ op: 'ping' });
  await first.next('pong');
  first.send(pub('feed:a', 'e1', 1));
  await waitFor('offset 1', () => got.length === 1);
  const disconnected = nextOf(client, 'disconnected');
  first.close(CloseCode.SlowConsumer, 'outbound queue full');
  const ev = await disconnected;
  assert.equal(ev.class, 'resumable');
  assert.equal(ev.retryInMs, 300);
  const second = await server.nextConnection();
  await second.accept();
  const resub = await second.next('subscribe');
  assert.deepEqual(resub.since, { epoch: 'e1', offset: 1 });
});

test('backoff grows by the factor up to the cap, jittered between the floor and the window', async (t) => {
  const samples = [0, 1, 0.5, 1, 1, 0.5];
  let i = 0;
  const { server, client } = await setup(t, {
    backoff: { minMs: 10, maxMs: 100, factor: 2 },
    random: () => samples[i++ % samples.length]!,
  });
  const delays = collect(client, 'disconnected');
  client.connect();
  for (let n = 0; n < 6; n++) (await server.nextConnection()).close(CloseCode.Overloaded, 'busy');
  await waitFor('six disconnects', () => delays.length === 6);
  // Windows: [10,20] [10,40] [10,80] [10,100] [10,100] [10,100].
  assert.deepEqual(
    delays.map((d) => d.retryInMs),
    [10, 40, 45, 100, 100, 55],
  );
  assert.ok(delays.every((d) => d.class === 'backoff'));
});

test('heartbeat silence past the grace closes the socket and reconnects; pings are answered', async (t) => {
  const { server, client } = await setup(t, { heartbeatGraceMs: 100 });
  client.connect();
  const first = await server.nextConnection();
  await first.accept({ heartbeat: 150 });
  first.send({ op: 'ping' });
  assert.deepEqual(await first.next('pong'), { op: 'pong' });
  const ev = await nextOf(client, 'disconnected');
  assert.equal(ev.code, CloseCode.HeartbeatTimeout);
  assert.match(ev.reason, /no frame from the server/);
  await first.closed;
  const second = await server.nextConnection();
  assert.equal((await second.accept()).reconnect, true);
});

test('frames keep the heartbeat watchdog satisfied', async (t) => {
  const { server, client } = await setup(t, { heartbeatGraceMs: 200 });
  const disconnects = collect(client, 'disconnected');
  client.connect();
  const conn = await server.nextConnection();
  await conn.accept({ heartbeat: 200 });
  // The server pings every 50 ms, as a live server beats; the watchdog allows 400 ms of silence.
  // Every ping is answered while more than two whole watchdog windows go by.
  const pinger = setInterval(() => conn.send({ op: 'ping' }), 50);
  t.after(() => clearInterval(pinger));
  const pongs = () => conn.received.filter((f) => f.op === 'pong').length;
  const start = Date.now();
  while (Date.now() - start <= 2 * 400) {
    const seen = pongs();
    await waitFor('the next pong, or a disconnect', () => pongs() > seen || disconnects.length > 0);
    assert.deepEqual(disconnects, [], `disconnected after ${pongs()} pongs`);
  }
  clearInterval(pinger);
});

test('a server that accepts TCP but never answers hits the connect timeout and is retried', async (t) => {
  const server = await SilentTcpServer.start();
  const client = new GatehouseClient(server.url, { connectTimeoutMs: 200, backoff: { minMs: 10, maxMs: 20 } });
  t.after(async () => {
    client.close();
    await server.stop();
  });
  client.connect();
  const ev = await nextOf(client, 'disconnected');
  assert.equal(ev.code, 1006);
  assert.match(ev.reason, /connect timeout/);
  assert.equal(ev.class, 'backoff');
  await waitFor('a second TCP connection', () => server.sockets.length >= 2);
});

test('a WebSocket that opens but never gets a connected reply hits the connect timeout', async (t) => {
  const { server, client } = await setup(t, { connectTimeoutMs: 200 });
  client.connect();
  const first = await server.nextConnection();
  await first.next('connect');
  const ev = await nextOf(client, 'disconnected');
  assert.match(ev.reason, /connect timeout/);
  await first.closed;
  await server.nextConnection();
});

test('getToken is called before each connect and again when the server asks for a refresh', async (t) => {
  let n = 0;
  const { server, client } = await setup(t, { getToken: async () => `token-${++n}` });
  client.connect();
  const conn = await server.nextConnection();
  assert.equal((await conn.accept()).token, 'token-1');
  conn.send({ op: 'refresh', in: 5_000 });
  const refresh = await conn.next('refresh');
  assert.equal(refresh.token, 'token-2');
  conn.send({ op: 'ok', id: refresh.id });
  conn.drop();
  const second = await server.nextConnection();
  assert.equal((await second.accept()).token, 'token-3');
});

test('4005 with getToken reconnects once with a fresh token, then stops if it recurs', async (t) => {
  let n = 0;
  const { server, client } = await setup(t, { getToken: async () => `token-${++n}` });
  client.connect();
  const first = await server.nextConnection();
  await first.accept();
  let disconnected = nextOf(client, 'disconnected');
  first.close(CloseCode.TokenExpired, 'token expired');
  const ev = await disconnected;
  assert.equal(ev.class, 'reconnect');
  assert.ok(ev.retryInMs !== undefined);
  const second = await server.nextConnection();
  assert.equal((await second.accept()).token, 'token-2');
  disconnected = nextOf(client, 'disconnected');
  second.close(CloseCode.TokenExpired, 'token expired');
  assert.deepEqual(await disconnected, { code: 4005, reason: 'token expired', class: 'terminal', retryInMs: undefined });
  assert.equal(client.state, 'closed');
});

test('4005 without getToken is terminal', async (t) => {
  const { server, client } = await setup(t, { token: 'static' });
  client.connect();
  const conn = await server.nextConnection();
  await conn.accept();
  const disconnected = nextOf(client, 'disconnected');
  conn.close(CloseCode.TokenExpired, 'token expired');
  assert.equal((await disconnected).class, 'terminal');
  assert.equal(client.state, 'closed');
});

test('a failing getToken is reported and retried with backoff', async (t) => {
  let calls = 0;
  const { server, client } = await setup(t, {
    getToken: async () => {
      if (++calls === 1) throw new Error('auth service down');
      return 'ok-token';
    },
  });
  const errors = collect(client, 'error');
  client.connect();
  const conn = await server.nextConnection();
  assert.equal((await conn.accept()).token, 'ok-token');
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.code, 'token_failed');
  assert.match(errors[0]!.message, /auth service down/);
});

test('publish resolves with the position, or rejects with the server error code', async (t) => {
  const { server, client } = await setup(t);
  client.connect();
  const conn = await server.nextConnection();
  await conn.accept();
  const ok = client.publish('chat:a', { n: 1 });
  const req = await conn.next('publish');
  assert.deepEqual(req, { op: 'publish', id: req.id, channel: 'chat:a', data: { n: 1 } });
  conn.send({ op: 'published', id: req.id, channel: 'chat:a', epoch: 'e1', offset: 12 });
  assert.deepEqual(await ok, { epoch: 'e1', offset: 12 });

  const denied = client.publish('chat:b', 'x');
  const req2 = await conn.next('publish');
  conn.send({ op: 'error', id: req2.id, code: 'forbidden', message: 'no publish permission on chat:b' });
  await assert.rejects(denied, (e: unknown) => e instanceof GatehouseError && e.code === 'forbidden' && /chat:b/.test(e.message));
});

test('publish rejects bad input without sending anything', async (t) => {
  const { client } = await setup(t);
  await assert.rejects(client.publish('no-namespace', 1), (e: GatehouseError) => e.code === 'invalid_channel');
  await assert.rejects(client.publish('chat:a', undefined), (e: GatehouseError) => e.code === 'bad_request');
  await assert.rejects(client.publish('chat:a', { n: 1n }), (e: GatehouseError) => e.code === 'bad_request');
});

test('requests wait in a bounded queue while disconnected and go out once connected', async (t) => {
  const { server, client } = await setup(t, { maxQueuedRequests: 2 });
  const a = client.publish('chat:a', 'a');
  const b = client.publish('chat:a', 'b');
  await assert.rejects(client.publish('chat:a', 'c'), (e: GatehouseError) => e.code === 'queue_full');
  client.connect();
  const conn = await server.nextConnection();
  await conn.accept();
  for (const [i, p] of [a, b].entries()) {
    const req = await conn.next('publish');
    assert.equal(req.data, i === 0 ? 'a' : 'b');
    conn.send({ op: 'published', id: req.id, channel: 'chat:a', epoch: 'e', offset: i + 1 });
    assert.deepEqual(await p, { epoch: 'e', offset: i + 1 });
  }
});

test('with maxQueuedRequests 0 a publish while disconnected rejects at once', async (t) => {
  const { client } = await setup(t, { maxQueuedRequests: 0 });
  await assert.rejects(client.publish('chat:a', 1), (e: GatehouseError) => e.code === 'not_connected');
});

test('a request in flight when the socket drops rejects as disconnected; an unanswered one times out', async (t) => {
  const { server, client } = await setup(t, { requestTimeoutMs: 200 });
  client.connect();
  const conn = await server.nextConnection();
  await conn.accept();
  const lost = client.publish('chat:a', 1);
  await conn.next('publish');
  conn.drop();
  await assert.rejects(lost, (e: GatehouseError) => e.code === 'disconnected');
  const second = await server.nextConnection();
  await second.accept();
  const unanswered = client.publish('chat:a', 2);
  await second.next('publish');
  await assert.rejects(unanswered, (e: GatehouseError) => e.code === 'timeout');
});

test('unsubscribe stops delivery and the channel is not resubscribed after a reconnect', async (t) => {
  const { server, client } = await setup(t);
  const keep = client.subscribe('chat:keep');
  const drop = client.subscribe('chat:drop');
  const dropped = collect(drop, 'publication');
  client.connect();
  const conn = await server.nextConnection();
  await conn.accept();
  for (let i = 0; i < 2; i++) {
    const req = await conn.next('subscribe');
    conn.send({ op: 'subscribed', id: req.id, channel: req.channel, epoch: 'e', offset: 0 });
  }
  await waitFor('both subscribed', () => keep.state === 'subscribed' && drop.state === 'subscribed');
  const done = drop.unsubscribe();
  const req = await conn.next('unsubscribe');
  assert.equal(req.channel, 'chat:drop');
  conn.send(pub('chat:drop', 'e', 1));
  conn.send({ op: 'ok', id: req.id });
  await done;
  assert.equal(drop.state, 'unsubscribed');
  assert.equal(client.getSubscription('chat:drop'), undefined);
  conn.drop();
  const second = await server.nextConnection();
  await second.accept();
  const resub = await second.next('subscribe');
  assert.equal(resub.channel, 'chat:keep');
  second.send({ op: 'subscribed', id: resub.id, channel: 'chat:keep', epoch: 'e', offset: 0, recovered: true });
  await nextOf(keep, 'subscribed');
  assert.equal(second.received.filter((f) => f.op === 'subscribe').length, 1);
  assert.deepEqual(dropped, []);
});

test('a refused subscription reports the server error code and ends', async (t) => {
  const { server, client } = await setup(t);
  const sub = client.subscribe('secret:x');
  const errors = collect(client, 'error');
  client.connect();
  const conn = await server.nextConnection();
  await conn.accept();
  const req = await conn.next('subscribe');
  const ended = nextOf(sub, 'unsubscribed');
  conn.send({ op: 'error', id: req.id, code: 'forbidden', message: 'not allowed' });
  assert.deepEqual(await ended, { channel: 'secret:x', reason: 'error' });
  assert.equal(errors[0]?.code, 'forbidden');
  assert.equal(client.getSubscription('secret:x'), undefined);
});

test('malformed server frames are reported, not fatal', async (t) => {
  const { server, client } = await setup(t);
  const sub = client.subscribe('chat:a');
  const errors = collect(client, 'error');
  const got = collect(sub, 'publication');
  client.connect();
  const conn = await acceptAndSubscribe(server, 'chat:a', { epoch: 'e', offset: 0 });
  conn.send('not json');
  conn.send('{"op":"pub","channel":"chat:a"}');
  conn.send('{"op":"mystery"}');
  conn.send(pub('chat:a', 'e', 1));
  await waitFor('the valid publication', () => got.length === 1);
  assert.deepEqual(
    errors.map((e) => e.code),
    ['protocol', 'protocol', 'protocol'],
  );
  assert.equal(client.state, 'connected');
});

test('a throwing listener is reported as an error and does not break delivery', async (t) => {
  const { server, client } = await setup(t);
  const sub = client.subscribe('chat:a');
  const got: Publication[] = [];
  sub.on('publication', () => {
    throw new Error('app bug');
  });
  sub.on('publication', (p) => got.push(p));
  const errors = collect(client, 'error');
  client.connect();
  const conn = await acceptAndSubscribe(server, 'chat:a', { epoch: 'e', offset: 0 });
  conn.send(pub('chat:a', 'e', 1));
  conn.send(pub('chat:a', 'e', 2));
  await waitFor('two publications', () => got.length === 2);
  assert.equal(errors.length, 2);
  assert.equal(errors[0]!.code, 'listener_failed');
});

test('close() ends everything: state closed, pending rejected, no timer left behind', async (t) => {
  const server = await SilentTcpServer.start();
  t.after(() => server.stop());
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  const client = new GatehouseClient(server.url, { connectTimeoutMs: 50, backoff: { minMs: 60_000, maxMs: 120_000 } });
  client.connect();
  // Now waiting a minute before the next attempt, with a publish queued.
  const ev = await nextOf(client, 'disconnected');
  assert.ok(ev.retryInMs! >= 60_000);
  const queued = client.publish('chat:a', 1);
  client.close();
  await assert.rejects(queued, (e: GatehouseError) => e.code === 'closed');
  assert.equal(client.state, 'closed');
  await waitFor('the client timers to be gone', () => timers() <= before);
});

test('close() on a connected client closes the socket with 1000 and does not reconnect', async (t) => {
  const { server, client } = await setup(t);
  const states = collect(client, 'state');
  client.connect();
  const conn = await server.nextConnection();
  await conn.accept();
  await nextOf(client, 'connected');
  const disconnected = nextOf(client, 'disconnected');
  client.close();
  assert.deepEqual(await disconnected, { code: 1000, reason: 'client closed', class: 'terminal', retryInMs: undefined });
  assert.equal((await conn.closed).code, 1000);
  assert.deepEqual(
    states.map((s) => s.state),
    ['connecting', 'connected', 'closed'],
  );
});

test('subscribe rejects invalid and duplicate channels with clear errors', async (t) => {
  const { client } = await setup(t);
  assert.throws(() => client.subscribe('nocolon'), TypeError);
  client.subscribe('chat:a');
  assert.throws(() => client.subscribe('chat:a'), /already subscribed to chat:a/);
});

test('unsubscribe settles even when the server never confirms', async (t) => {
  const { server, client } = await setup(t, { requestTimeoutMs: 150 });
  const sub = client.subscribe('chat:a');
  client.connect();
  const conn = await acceptAndSubscribe(server, 'chat:a', { epoch: 'e', offset: 0 });
  await nextOf(sub, 'subscribed');
  const done = sub.unsubscribe();
  await conn.next('unsubscribe');
  await done;
  assert.equal(sub.state, 'unsubscribed');
});

test('a getToken that never settles is cut off by the connect timeout and retried', async (t) => {
  let calls = 0;
  const { server, client } = await setup(t, {
    connectTimeoutMs: 150,
    getToken: () => (++calls === 1 ? new Promise<string>(() => {}) : Promise.resolve('late-but-fine')),
  });
  client.connect();
  const ev = await nextOf(client, 'disconnected');
  assert.match(ev.reason, /connect timeout.*getToken did not settle/);
  assert.equal(ev.class, 'backoff');
  const conn = await server.nextConnection();
  assert.equal((await conn.accept()).token, 'late-but-fine');
  assert.equal(server.connections.length, 1);
});
