import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '@gatehouse/testkit';
import { RawClient, api, startGateway, token } from './helpers.js';

const sub = (channels: string[]) => token('u1', { channels });

test('a resubscribe with the last position gets exactly the missed publications, in order, then live ones', async () => {
  const gw = await startGateway();
  try {
    const tok = await sub(['private:*']);
    const a = await RawClient.connect(gw.port, tok);
    const first = await a.request({ op: 'subscribe', channel: 'private:doc' });
    assert.equal(first['offset'], 0);
    for (let i = 1; i <= 3; i++) await api(gw.port, '/api/publish', { channel: 'private:doc', data: { i } });
    const seen = await a.waitPubs(3, 'private:doc');
    const last = seen[2] as Record<string, any>;
    a.close();
    // Published while the client is away.
    for (let i = 4; i <= 7; i++) await api(gw.port, '/api/publish', { channel: 'private:doc', data: { i } });

    const b = await RawClient.connect(gw.port, tok, { reconnect: true });
    const reply = await b.request({ op: 'subscribe', channel: 'private:doc', since: { epoch: last['epoch'], offset: last['offset'] } });
    assert.equal(reply['op'], 'subscribed');
    assert.equal(reply['recovered'], true);
    assert.equal(reply['offset'], 7);
    await api(gw.port, '/api/publish', { channel: 'private:doc', data: { i: 8 } });
    const got = await b.waitPubs(5, 'private:doc');
    assert.deepEqual(
      got.map((p) => p['data'].i),
      [4, 5, 6, 7, 8],
    );
    assert.deepEqual(
      got.map((p) => p['offset']),
      [4, 5, 6, 7, 8],
    );
    // The subscribed reply comes before the replay.
    const order = b.frames.filter((f) => f['op'] === 'subscribed' || f['op'] === 'pub').map((f) => f['op']);
    assert.equal(order[0], 'subscribed');
    b.close();
  } finally {
    await gw.close();
  }
});

test('publications racing a recovery are delivered once, after the replay', async () => {
  const gw = await startGateway();
  try {
    const tok = await sub(['private:*']);
    const first = await api(gw.port, '/api/publish', { channel: 'private:race', data: 0 });
    const epoch = first.body.epoch as string;
    for (let i = 1; i <= 20; i++) await api(gw.port, '/api/publish', { channel: 'private:race', data: i });
    const c = await RawClient.connect(gw.port, tok);
    // Subscribe and publish concurrently: live publications arrive while history is read.
    const subscribing = c.request({ op: 'subscribe', channel: 'private:race', since: { epoch, offset: 1 } });
    const publishing = Promise.all(
      Array.from({ length: 20 }, (_, k) => api(gw.port, '/api/publish', { channel: 'private:race', data: 21 + k })),
    );
    const reply = await subscribing;
    await publishing;
    assert.equal(reply['recovered'], true);
    const got = await c.waitPubs(40, 'private:race');
    const offsets = got.map((p) => p['offset']);
    assert.deepEqual(
      offsets,
      Array.from({ length: 40 }, (_, k) => k + 2),
    );
    c.close();
  } finally {
    await gw.close();
  }
});

test('recovery that history cannot cover is reported, never a silent gap', async () => {
  const gw = await startGateway({
    namespaces: { private: { historySize: 3, historyTtlSeconds: 60, anonymous: false, subscribe: 'claims' } },
  });
  try {
    const tok = await sub(['private:*']);
    let epoch = '';
    for (let i = 1; i <= 10; i++) epoch = (await api(gw.port, '/api/publish', { channel: 'private:short', data: i })).body.epoch;
    const c = await RawClient.connect(gw.port, tok);
    const trimmed = await c.request({ op: 'subscribe', channel: 'private:short', since: { epoch, offset: 2 } });
    assert.equal(trimmed['recovered'], false);
    assert.equal(trimmed['offset'], 10);
    assert.equal(c.pubs('private:short').length, 0, 'nothing replayed when recovery is impossible');

    const wrongEpoch = await c.request({ op: 'subscribe', channel: 'private:other', since: { epoch: 'not-the-epoch', offset: 1 } });
    assert.equal(wrongEpoch['recovered'], false);

    // Within what history holds, recovery works.
    const ok = await c.request({ op: 'unsubscribe', channel: 'private:short' });
    assert.equal(ok['op'], 'ok');
    const within = await c.request({ op: 'subscribe', channel: 'private:short', since: { epoch, offset: 8 } });
    assert.equal(within['recovered'], true);
    const got = await c.waitPubs(2, 'private:short');
    assert.deepEqual(
      got.map((p) => p['offset']),
      [9, 10],
    );
    c.close();
  } finally {
    await gw.close();
  }
});

test('history expires after the namespace TTL', async () => {
  const gw = await startGateway({
    namespaces: { private: { historySize: 100, historyTtlSeconds: 1, anonymous: false, subscribe: 'claims' } },
  });
  try {
    const tok = await sub(['private:*']);
    const before = Date.now();
    const p = await api(gw.port, '/api/publish', { channel: 'private:ttl', data: 1 });
    await api(gw.port, '/api/publish', { channel: 'private:ttl', data: 2 });
    const c = await RawClient.connect(gw.port, tok);
    const since = { epoch: p.body.epoch, offset: 1 };
    /** Whether a resubscribe from offset 1 recovers (and leaves the channel again if it did). */
    const recovers = async (): Promise<boolean> => {
      const reply = await c.request({ op: 'subscribe', channel: 'private:ttl', since });
      assert.equal(reply['op'], 'subscribed', JSON.stringify(reply));
      if (reply['recovered'] === true) assert.equal((await c.request({ op: 'unsubscribe', channel: 'private:ttl' }))['op'], 'ok');
      return reply['recovered'] === true;
    };
    const first = await recovers();
    // Before the TTL the publication is still recoverable; checked only when the machine got here
    // well within the TTL (a margin for the server's own clock), so a slow run cannot fail it.
    if (Date.now() - before < 800) assert.equal(first, true, 'history was gone before its TTL');
    // Then wait for the expiry itself: recovery turns false once the TTL has passed.
    await waitFor('recovery to report the history expired', async () => !(await recovers()), 10_000, 50);
    c.close();
  } finally {
    await gw.close();
  }
});
