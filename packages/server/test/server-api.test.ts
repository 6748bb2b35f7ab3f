/**
 * The server API (docs/api.md) on two nodes sharing an in-process bus: every call end to end,
 * with raw protocol clients on node B and the calls made on node A. The memory backbone offers no
 * atomic claims, so idempotent publish here goes through the owner node (idempotency.ts); the
 * Redis suite in packages/cli covers the atomic path.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '@gatehouse/testkit';
import { MemoryBackbone, MemoryBus } from '../src/index.js';
import type { Gateway } from '../src/index.js';
import { API_KEY, RawClient, api, startGateway, token } from './helpers.js';

const LIMITED_KEY = 'limited-key-0123';

describe('server API on two nodes', () => {
  let a: Gateway;
  let b: Gateway;
  before(async () => {
    const bus = new MemoryBus();
    const options = { announceIntervalMs: 100, apiKeys: [{ key: API_KEY }, { key: LIMITED_KEY, channels: ['public:*'] }] };
    a = await startGateway({ ...options, nodeId: 'api-a' }, { backbone: new MemoryBackbone({ bus }) });
    b = await startGateway({ ...options, nodeId: 'api-b' }, { backbone: new MemoryBackbone({ bus }) });
    await waitFor('both nodes see each other', async () =>
      (await api(a.port, '/api/info', {})).body.nodes?.length === 2 ? true : undefined,
    );
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  test('history: newest publications with positions, since a position, reversed; bad input refused', async () => {
    for (let i = 1; i <= 5; i++) assert.equal((await api(a.port, '/api/publish', { channel: 'private:h1', data: { i } })).status, 200);
    const all = await api(b.port, '/api/history', { channel: 'private:h1', limit: 3 });
    assert.equal(all.status, 200);
    assert.deepEqual(
      all.body.publications.map((p: any) => [p.offset, p.data.i]),
      [
        [3, 3],
        [4, 4],
        [5, 5],
      ],
    );
    assert.equal(all.body.offset, 5);
    const since = await api(a.port, '/api/history', { channel: 'private:h1', since: { epoch: all.body.epoch, offset: 3 }, reverse: true });
    assert.deepEqual(
      since.body.publications.map((p: any) => p.offset),
      [5, 4],
    );
    assert.equal(since.body.complete, true);
    assert.equal((await api(a.port, '/api/history', { channel: 'private:h1', limit: 1_000_000 })).body.error.code, 'bad_request');
    assert.equal((await api(a.port, '/api/history', { channel: 'nope' })).body.error.code, 'invalid_channel');
    assert.equal((await api(a.port, '/api/history', { channel: 'private:h1' }, LIMITED_KEY)).status, 403);
    assert.equal((await api(a.port, '/api/history', { channel: 'private:h1' }, 'wrong-key-0123')).status, 401);
  });

  test('channels: fleet-wide subscriber counts with a pattern; a limited key sees only its channels', async () => {
    const c1 = await RawClient.connect(a.port, await token('u1', { channels: ['private:*', 'public:*'] }));
    const c2 = await RawClient.connect(b.port, await token('u2', { channels: ['private:*', 'public:*'] }));
    try {
      for (const c of [c1, c2]) assert.equal((await c.request({ op: 'subscribe', channel: 'private:room' }))['op'], 'subscribed');
      assert.equal((await c2.request({ op: 'subscribe', channel: 'public:lobby' }))['op'], 'subscribed');
      const r = await api(a.port, '/api/channels', { pattern: 'private:*' });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.channels, [{ channel: 'private:room', subscribers: 2 }]);
      assert.deepEqual(r.body.missing, []);
      const limited = await api(a.port, '/api/channels', {}, LIMITED_KEY);
      assert.deepEqual(limited.body.channels, [{ channel: 'public:lobby', subscribers: 1 }]);
      assert.equal((await api(a.port, '/api/channels', { pattern: 'a*b*' })).body.error.code, 'bad_request');
      assert.equal((await api(a.port, '/api/channels', { limit: 5000 })).body.error.code, 'bad_request');
    } finally {
      c1.close();
      c2.close();
    }
  });

  test('subscribe / unsubscribe: the server changes a user’s subscriptions on the node that holds them', async () => {
    const c = await RawClient.connect(b.port, await token('sam', { channels: [] }));
    try {
      const r = await api(a.port, '/api/subscribe', { user: 'sam', channel: 'private:news' });
      assert.equal(r.status, 200);
      assert.equal(r.body.subscribed, 1);
      const frame = await waitFor('server_subscribed', () => c.frames.find((f) => f['op'] === 'server_subscribed'));
      assert.equal(frame['channel'], 'private:news');
      await api(a.port, '/api/publish', { channel: 'private:news', data: 'hello' });
      assert.equal((await c.waitPubs(1, 'private:news'))[0]!['data'], 'hello');
      assert.equal((await api(a.port, '/api/subscribe', { user: 'sam', channel: 'private:news' })).body.alreadySubscribed, 1);
      const u = await api(a.port, '/api/unsubscribe', { user: 'sam', channel: 'private:news' });
      assert.equal(u.body.unsubscribed, 1);
      await waitFor('server_unsubscribed', () => c.frames.find((f) => f['op'] === 'server_unsubscribed'));
      assert.equal(
        (await api(a.port, '/api/subscribe', { channel: 'private:news' })).body.error.code,
        'bad_request',
        'a target is required',
      );
    } finally {
      c.close();
    }
  });

  test('disconnect on node A closes the user’s connection on node B with the code the caller chose', async () => {
    const stay = await RawClient.connect(b.port, await token('dora'));
    const back = await RawClient.connect(b.port, await token('rex'));
    try {
      const r = await api(a.port, '/api/disconnect', { user: 'dora' });
      assert.equal(r.status, 200);
      assert.equal(r.body.disconnected, 1);
      assert.equal(r.body.code, 4006);
      assert.equal((await stay.waitClose()).code, 4006);
      await api(a.port, '/api/disconnect', { user: 'rex', reconnect: true });
      assert.equal((await back.waitClose()).code, 4202);
      assert.equal((await api(a.port, '/api/disconnect', { user: 'dora' }, LIMITED_KEY)).status, 403);
    } finally {
      stay.close();
      back.close();
    }
  });

  test('info: both nodes with their figures; drain reaches the named node', async () => {
    const r = await api(a.port, '/api/info', { slowest: 5 });
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.body.nodes.map((n: any) => n.node),
      ['api-a', 'api-b'],
    );
    for (const n of r.body.nodes) {
      assert.equal(typeof n.connections, 'number');
      assert.equal(typeof n.lagMs, 'number');
      assert.equal(n.ready, true);
      assert.ok(Array.isArray(n.slowest));
    }
    assert.equal((await api(a.port, '/api/drain', { node: 'nowhere' })).body.error.code, 'unavailable');
  });

  test('idempotent publish: a retry with the same key on another node publishes nothing and answers the first result', async () => {
    const c = await RawClient.connect(b.port, await token('ida', { channels: ['private:*'] }));
    try {
      await c.request({ op: 'subscribe', channel: 'private:idem' });
      const first = await api(a.port, '/api/publish', { channel: 'private:idem', data: 1, idempotencyKey: 'k-1' });
      const retry = await api(b.port, '/api/publish', { channel: 'private:idem', data: 1, idempotencyKey: 'k-1' });
      assert.equal(first.status, 200);
      assert.deepEqual(retry.body, first.body);
      const other = await api(b.port, '/api/publish', { channel: 'private:idem', data: 2, idempotencyKey: 'k-2' });
      assert.equal(other.body.offset, first.body.offset + 1);
      const bc = await api(a.port, '/api/broadcast', { channels: ['private:idem'], data: 3, idempotencyKey: 'k-2' });
      assert.equal(bc.body.results[0].offset, other.body.offset, 'broadcast shares the per-channel key');
      await c.waitPubs(2, 'private:idem');
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(
        c.pubs('private:idem').map((p) => p['data']),
        [1, 2],
        'each key published once',
      );
    } finally {
      c.close();
    }
  });
});
