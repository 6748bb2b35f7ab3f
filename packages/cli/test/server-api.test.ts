/**
 * The server API end to end on two real `gatehouse start` processes sharing Redis (docs/api.md):
 * every call made on node A through the publisher library (and the CLI), acting on SDK clients
 * connected to node B. A disconnect issued on A closes the user's connection on B; an idempotent
 * publish whose reply was dropped is retried on the other node and publishes once (Redis claims
 * the key atomically with SET NX).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { GatehouseClient } from '@gatehouse/client';
import type { Publication, UnsubscribedEvent } from '@gatehouse/client';
import { HttpPublisher, PublishError } from '@gatehouse/publisher';
import { SERVICES, serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { BIN, startChild, stopChild } from './helpers.js';

const SECRET = 'server-api-secret-123';
const KEY = 'server-api-key-0123';
const REDIS = `redis://${SERVICES.redis.host}:${SERVICES.redis.port}`;
const skip = await serviceSkipReason('redis', 'server API on two nodes over Redis');

async function token(sub: string, channels: string[] = []): Promise<string> {
  return new SignJWT({ channels })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(SECRET));
}

describe('server API on two nodes over Redis', { skip: skip ?? false }, () => {
  const ns = `api14-${process.pid}-${Date.now().toString(36)}`;
  const nodes: { child: ChildProcess; port: number }[] = [];
  const clients: GatehouseClient[] = [];
  let a: HttpPublisher;
  let b: HttpPublisher;
  let portB = 0;

  before(async () => {
    for (const id of ['na', 'nb']) {
      const args = ['--backbone', REDIS, '--backbone-namespace', ns, '--node-id', `${ns}-${id}`, '--api-key', KEY];
      nodes.push(await startChild([...args, '--token-secret', SECRET, '--announce-interval', '0.2', '--log-level', 'info']));
    }
    a = new HttpPublisher({ url: `http://127.0.0.1:${nodes[0]!.port}`, apiKey: KEY, retries: 0 });
    b = new HttpPublisher({ url: `http://127.0.0.1:${nodes[1]!.port}`, apiKey: KEY, retries: 0 });
    portB = nodes[1]!.port;
    await waitFor('both nodes in the fleet', async () => ((await a.info()).nodes.length === 2 ? true : undefined), 15_000);
  });
  after(async () => {
    for (const c of clients) c.close();
    await a?.close();
    await b?.close();
    await Promise.all(nodes.map((n) => stopChild(n.child)));
  });

  async function client(user: string, channels: string[] = []): Promise<GatehouseClient> {
    const c = new GatehouseClient(`ws://127.0.0.1:${portB}/ws`, { token: await token(user, channels) });
    clients.push(c);
    c.on('error', () => {});
    c.connect();
    await waitFor(`${user} connected`, () => (c.state === 'connected' ? true : undefined));
    return c;
  }

  test('history: publications with positions on Redis, newest first with reverse', async () => {
    const channel = `private:${ns}-h`;
    for (let i = 1; i <= 4; i++) await a.publish(channel, { i });
    const h = await b.history(channel, { limit: 2, reverse: true });
    assert.deepEqual(
      h.publications.map((p) => [p.offset, (p.data as { i: number }).i]),
      [
        [4, 4],
        [3, 3],
      ],
    );
    const since = await a.history(channel, { since: { epoch: h.epoch, offset: 2 } });
    assert.deepEqual(
      since.publications.map((p) => p.offset),
      [3, 4],
    );
    await assert.rejects(a.history(channel, { limit: 5000 }), (e: PublishError) => e.code === 'bad_request' && e.status === 400);
  });

  test('subscribe and unsubscribe on A reach the SDK on B, which emits its usual events', async () => {
    const channel = `private:${ns}-s`;
    const c = await client('sue');
    const subscribed = new Promise<string>((resolve) => c.on('subscribed', (e) => resolve(e.channel)));
    const got: Publication[] = [];
    c.on('publication', (p) => got.push(p));
    const r = await a.subscribe({ user: 'sue' }, channel);
    assert.equal(r.subscribed, 1);
    assert.deepEqual(r.missing, []);
    assert.equal(await subscribed, channel);
    assert.equal(c.getSubscription(channel)?.state, 'subscribed');
    await a.publish(channel, 'hi');
    await waitFor('the publication', () => (got.length === 1 ? true : undefined));
    const ended = new Promise<UnsubscribedEvent>((resolve) => c.on('unsubscribed', resolve));
    assert.equal((await a.unsubscribe({ user: 'sue' }, channel)).unsubscribed, 1);
    assert.deepEqual(await ended, { channel, reason: 'server' });
    assert.equal(c.getSubscription(channel), undefined);
  });

  test('channels lists subscriber counts fleet-wide, filtered by pattern', async () => {
    const channel = `public:${ns}-c`;
    const c1 = await client('cal');
    c1.subscribe(channel);
    const c2 = new GatehouseClient(`ws://127.0.0.1:${nodes[0]!.port}/ws`, { token: await token('cat', [`public:${ns}*`]) });
    clients.push(c2);
    c2.connect();
    c2.subscribe(channel);
    const r = await waitFor('two subscribers', async () => {
      const x = await b.channels({ pattern: `public:${ns}*` });
      return x.channels[0]?.subscribers === 2 ? x : undefined;
    });
    assert.deepEqual(r.channels, [{ channel, subscribers: 2 }]);
  });

  test('disconnect issued on A closes the user’s connection on B with the terminal code', async () => {
    const c = await client('dan');
    const closed = new Promise<number>((resolve) => c.on('disconnected', (e) => resolve(e.code)));
    const r = await a.disconnect({ user: 'dan' });
    assert.equal(r.disconnected, 1);
    assert.equal(await closed, 4006);
    await waitFor('the SDK stops', () => (c.state === 'closed' ? true : undefined));
  });

  test('an idempotent retry after a dropped reply publishes once', async () => {
    const channel = `private:${ns}-i`;
    const c = await client('ivy', [channel]);
    const got: Publication[] = [];
    c.subscribe(channel).on('publication', (p) => got.push(p));
    await waitFor('subscribed', () => (c.getSubscription(channel)?.state === 'subscribed' ? true : undefined));
    // The first attempt reaches node A, which publishes; its reply never reaches the caller.
    const body = JSON.stringify({ channel, data: 'once', idempotencyKey: 'order-17' });
    const sock = connect(nodes[0]!.port, '127.0.0.1');
    sock.on('data', () => sock.destroy());
    sock.write(
      `POST /api/publish HTTP/1.1\r\nhost: x\r\nauthorization: apikey ${KEY}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await waitFor('the first attempt delivered', () => (got.length === 1 ? true : undefined));
    sock.destroy();
    // The caller retries on the other node with the same key.
    const retry = await b.publish(channel, 'once', { idempotencyKey: 'order-17' });
    assert.equal(retry.offset, got[0]!.offset, 'the retry answers the first result');
    await b.publish(channel, 'marker');
    await waitFor('the marker', () => (got.length >= 2 ? true : undefined));
    assert.deepEqual(
      got.map((p) => p.data),
      ['once', 'marker'],
      'published once',
    );
  });

  test('info and the CLI: both nodes with their figures', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      BIN,
      'info',
      '--url',
      `http://127.0.0.1:${nodes[0]!.port}`,
      '--api-key',
      KEY,
    ]);
    const info = JSON.parse(stdout) as { nodes: { node: string; ready: boolean; lagMs: number }[]; missing: string[] };
    assert.deepEqual(
      info.nodes.map((n) => n.node),
      [`${ns}-na`, `${ns}-nb`],
    );
    assert.ok(info.nodes.every((n) => n.ready && typeof n.lagMs === 'number'));
    const { stdout: ch } = await promisify(execFile)(process.execPath, [
      BIN,
      'channels',
      '--pattern',
      `private:${ns}*`,
      '--url',
      `http://127.0.0.1:${nodes[1]!.port}`,
      '--api-key',
      KEY,
    ]);
    assert.ok(Array.isArray((JSON.parse(ch) as { channels: unknown[] }).channels));
  });

  test('drain through the API turns the named node unready', async () => {
    const r = await a.drain(`${ns}-nb`);
    assert.equal(r.draining, true);
    await waitFor('node B unready', async () => {
      const res = await fetch(`http://127.0.0.1:${portB}/readyz`);
      return res.status === 503 ? true : undefined;
    });
  });
});

const NATS = `nats://${SERVICES.nats.host}:${SERVICES.nats.port}`;
const natsSkip = await serviceSkipReason('nats', 'server API on two nodes over NATS core');

describe('server API on two nodes over NATS core (no history, no atomic claims)', { skip: natsSkip ?? false }, () => {
  const ns = `api14n-${process.pid}-${Date.now().toString(36)}`;
  const nodes: { child: ChildProcess; port: number }[] = [];
  let a: HttpPublisher;
  let b: HttpPublisher;

  before(async () => {
    for (const id of ['na', 'nb']) {
      const args = ['--backbone', NATS, '--backbone-namespace', ns, '--node-id', `${ns}-${id}`, '--api-key', KEY];
      nodes.push(await startChild([...args, '--token-secret', SECRET, '--announce-interval', '0.2', '--log-level', 'info']));
    }
    a = new HttpPublisher({ url: `http://127.0.0.1:${nodes[0]!.port}`, apiKey: KEY, retries: 0 });
    b = new HttpPublisher({ url: `http://127.0.0.1:${nodes[1]!.port}`, apiKey: KEY, retries: 0 });
    await waitFor('both nodes in the fleet', async () => ((await a.info()).nodes.length === 2 ? true : undefined), 15_000);
    // Without atomic claims a key's owner is picked from each node's own fleet view: the retry
    // below publishes once only when both views hold both nodes, ready.
    const bothReady = async (port: number) => {
      const res = await fetch(`http://127.0.0.1:${port}/admin/nodes`, { headers: { authorization: `apikey ${KEY}` } });
      const view = ((await res.json()) as { nodes: { ready: boolean }[] }).nodes;
      return view.length === 2 && view.every((n) => n.ready) ? true : undefined;
    };
    for (const n of nodes) await waitFor(`node on ${n.port} sees both nodes ready`, () => bothReady(n.port), 15_000);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await Promise.all(nodes.map((n) => stopChild(n.child)));
  });

  test('history answers a clear, stable error', async () => {
    await assert.rejects(
      a.history(`private:${ns}-h`),
      (e: PublishError) => e.code === 'not_supported' && e.status === 501 && /keeps no history/.test(e.message),
    );
  });

  test('an idempotent retry on the other node publishes once (the key’s owner node holds it)', async () => {
    const channel = `public:${ns}-i`;
    const c = new GatehouseClient(`ws://127.0.0.1:${nodes[1]!.port}/ws`);
    c.on('error', () => {});
    const got: unknown[] = [];
    c.subscribe(channel).on('publication', (p) => got.push(p.data));
    c.connect();
    try {
      await waitFor('subscribed', () => (c.getSubscription(channel)?.state === 'subscribed' ? true : undefined));
      await a.publish(channel, 'once', { idempotencyKey: 'k1' });
      await b.publish(channel, 'once', { idempotencyKey: 'k1' });
      await a.publish(channel, 'once', { idempotencyKey: 'k1' });
      await b.publish(channel, 'marker');
      await waitFor('the marker', () => (got.includes('marker') ? true : undefined));
      assert.deepEqual(got, ['once', 'marker']);
    } finally {
      c.close();
    }
  });
});
