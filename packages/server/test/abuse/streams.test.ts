/**
 * Abuse cases for the stream transports (SSE on /sse, HTTP streaming on /stream, commands on
 * /stream/<id>), each with the answer it gets (docs/security.md, "Streams"):
 *
 * - a slowloris reader (opens a stream, never reads) is cut as a slow consumer once its backlog
 *   passes the queue cap, its memory is freed;
 * - a POST flood gets 429 with Retry-After past the per-address command rate, and the stream it
 *   aimed at still works;
 * - commands for another stream: wrong secret 403, unknown stream 404, no secret 401, a stream id
 *   naming a node not in the fleet 404 after a short forward deadline (the pending forwards are bounded);
 * - oversized POST bodies: 413 and the connection closed, before the body is buffered;
 * - thousands of idle streams: counted, bounded per node, and their memory comes back when they go.
 *
 * The gateway runs as a child process; each case ends with the process alive and a bystander
 * still receiving.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '@gatehouse/testkit';
import { API_KEY } from '../helpers.js';
import { HttpStreamReader, SseReader } from '../stream-client.js';
import { Bystander, ChildGateway } from './harness.js';

const MAX_QUEUE_BYTES = 256 * 1024;
const IDLE_STREAMS = 2000;

/** Opens a raw TCP connection and sends `head` (and `body`), then reads nothing at all. */
function rawRequest(port: number, head: string, body = ''): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(head + body);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** The HTTP response a raw socket gets (status and whether the server closed the connection). */
function rawResponse(s: Socket): Promise<{ status: number; closed: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    const done = (closed: boolean) => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), closed });
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.once('close', () => done(true));
    s.once('error', () => {});
  });
}

describe('abuse cases for streams', () => {
  let gw: ChildGateway;
  let bystander: Bystander;

  before(async () => {
    gw = await ChildGateway.start({
      maxQueueBytes: MAX_QUEUE_BYTES,
      channelLingerMs: 100,
      connectRatePerAddress: 100_000,
      connectRate: 100_000,
      maxConnections: IDLE_STREAMS + 100,
    });
    bystander = await Bystander.join(gw.port);
    await bystander.check();
  });

  after(async () => {
    bystander?.close();
    await gw?.stop();
  });

  test('a slowloris reader is cut as a slow consumer once its backlog passes the queue cap', async () => {
    const before = await gw.connections();
    const s = await rawRequest(gw.port, 'GET /sse?channel=public:slowloris HTTP/1.1\r\nhost: x\r\n\r\n');
    s.pause(); // never read: the kernel buffers fill, then the gateway's backlog grows
    await waitFor('the stream counted', async () => (await gw.connections()) === before + 1);
    const big = 'x'.repeat(32 * 1024);
    let published = 0;
    await waitFor(
      'the slow reader cut',
      async () => {
        for (let i = 0; i < 20; i++, published++) {
          const res = await fetch(`http://127.0.0.1:${gw.port}/api/publish`, {
            method: 'POST',
            headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
            body: JSON.stringify({ channel: 'public:slowloris', data: big }),
          });
          assert.equal(res.status, 200);
        }
        return (await gw.connections()) === before;
      },
      30_000,
      0,
    );
    assert.ok((await gw.metric('gatehouse_slow_consumer_disconnects_total')) >= 1, `cut after ${published} publications`);
    assert.ok((await gw.metric('gatehouse_disconnects_total', { code: '4300', transport: 'sse' })) >= 1);
    s.destroy();
    await gw.assertAlive();
    await bystander.check('a publication after the slow reader');
  });

  test('a POST flood gets 429 with Retry-After past the command rate; the stream still answers', async () => {
    const stream = HttpStreamReader.open(gw.port, [{ op: 'connect', id: 1, v: 1 }]);
    await stream.next('connected');
    const statuses = await Promise.all(
      Array.from({ length: 300 }, async () => {
        const res = await fetch(`http://127.0.0.1:${gw.port}/stream/${stream.stream}`, {
          method: 'POST',
          headers: { 'gatehouse-secret': stream.secret },
          body: '{"op":"pong"}',
        });
        await res.arrayBuffer();
        return { status: res.status, retry: res.headers.get('retry-after') };
      }),
    );
    const limited = statuses.filter((s) => s.status === 429);
    assert.ok(limited.length > 0, 'some POSTs were refused');
    assert.ok(
      limited.every((s) => s.retry === '1'),
      'each 429 says when to retry',
    );
    assert.ok(
      statuses.every((s) => s.status === 202 || s.status === 429),
      JSON.stringify([...new Set(statuses.map((s) => s.status))]),
    );
    await sleep(2100); // the per-address bucket refills
    assert.equal((await stream.command(gw.port, [{ op: 'subscribe', id: 2, channel: 'public:after-flood' }])).status, 202);
    await stream.next('subscribed', (f) => f['id'] === 2);
    stream.close();
    await gw.assertAlive();
    await bystander.check('a publication after the flood');
  });

  test('commands for another stream: wrong secret 403, unknown 404, no secret 401, a node not in the fleet 404 soon', async () => {
    const mine = HttpStreamReader.open(gw.port, [{ op: 'connect', id: 1, v: 1 }]);
    const theirs = SseReader.open(gw.port, '?channel=public:victim');
    await mine.next('connected');
    await theirs.next('subscribed');
    // My secret on their stream.
    const wrong = await theirs.command(gw.port, [{ op: 'unsubscribe', id: 9, channel: 'public:victim' }], mine.secret);
    assert.equal(wrong.status, 403);
    assert.equal(wrong.body.error.code, 'forbidden');
    const post = (id: string, headers: Record<string, string>) =>
      fetch(`http://127.0.0.1:${gw.port}/stream/${id}`, { method: 'POST', headers, body: '{"op":"pong"}' }).then((r) => r.status);
    const node = theirs.stream.split('~')[0] as string;
    assert.equal(await post(`${node}~${'A'.repeat(24)}`, { 'gatehouse-secret': mine.secret }), 404);
    assert.equal(await post(theirs.stream, {}), 401);
    assert.equal(await post('not-a-stream-id', { 'gatehouse-secret': 'x' }), 404);
    const started = Date.now();
    assert.equal(await post(`elsewhere~${'A'.repeat(24)}`, { 'gatehouse-secret': 'x' }), 404);
    assert.ok(Date.now() - started < 3000, 'a forward to a node nobody heard of gives up within a second or so');
    // Their stream was untouched.
    assert.equal(
      theirs.events.some((e) => e.event === 'ok' || e.event === 'close'),
      false,
    );
    mine.close();
    theirs.close();
    await gw.assertAlive();
  });

  test('oversized POST bodies get 413 and the connection closed, on /stream and /stream/<id>', async () => {
    const limit = 64 * 1024 + 16 * 1024;
    const declared = await rawRequest(gw.port, `POST /stream HTTP/1.1\r\nhost: x\r\ncontent-length: ${100 * 1024 * 1024}\r\n\r\n`);
    const r1 = await rawResponse(declared);
    assert.deepEqual(r1, { status: 413, closed: true });
    const chunked = await rawRequest(
      gw.port,
      'POST /stream/x~AAAAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nhost: x\r\ngatehouse-secret: s\r\ntransfer-encoding: chunked\r\n\r\n',
    );
    const answer = rawResponse(chunked);
    const chunk = 'x'.repeat(16 * 1024);
    for (let sent = 0; sent <= limit && !chunked.destroyed; sent += chunk.length) {
      chunked.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      await sleep(1);
    }
    assert.deepEqual(await answer, { status: 413, closed: true });
    // One frame above --max-payload in a body under the POST limit.
    const res = await fetch(`http://127.0.0.1:${gw.port}/stream`, {
      method: 'POST',
      body: JSON.stringify({ op: 'connect', pad: 'y'.repeat(70_000) }),
    });
    assert.equal(res.status, 413);
    await gw.assertAlive();
    await bystander.check('a publication after the oversized bodies');
  });

  test(`${IDLE_STREAMS} idle streams are counted by transport and their memory comes back when they go`, async (t) => {
    const baseline = await gw.memory();
    const before = await gw.connections();
    const sockets: Socket[] = [];
    for (let i = 0; i < IDLE_STREAMS; i++) {
      const path = i % 2 === 0 ? 'GET /sse' : 'POST /stream';
      sockets.push(await rawRequest(gw.port, `${path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n`));
    }
    for (const s of sockets) s.on('data', () => {});
    await waitFor('every idle stream open', async () => (await gw.connections()) === before + IDLE_STREAMS, 30_000);
    assert.equal(await gw.metric('gatehouse_connections', { transport: 'sse' }), IDLE_STREAMS / 2);
    assert.equal(await gw.metric('gatehouse_connections', { transport: 'http-stream' }), IDLE_STREAMS / 2);
    const loaded = await gw.memory();
    const perStream = (loaded.heapUsed + loaded.external - baseline.heapUsed - baseline.external) / IDLE_STREAMS;
    t.diagnostic(`${Math.round(perStream)} B of heap and external memory per idle stream`);
    // Idle streams never sent `connect`: the auth timeout closes them, as it does idle WebSockets.
    for (const s of sockets) s.destroy();
    await waitFor('every idle stream gone', async () => (await gw.connections()) === before, 30_000);
    await gw.assertMemoryBack(baseline, 8, `memory after ${IDLE_STREAMS} streams (${Math.round(perStream)} B each while open)`);
    await gw.assertAlive();
    await bystander.check('a publication after the idle streams');
  });
});
