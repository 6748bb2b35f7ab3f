import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '@gatehouse/testkit';
import { RawClient, api, startGateway, token } from '../helpers.js';
import type { Frame } from '../helpers.js';

test('frames sent right after connect wait for it and are answered in order', async () => {
  const gw = await startGateway();
  try {
    const tok = await token('alice', { channels: ['private:alice:*'] });
    const c = await RawClient.open(gw.port);
    c.sendTogether([
      { op: 'connect', id: 1, v: 1, token: tok },
      { op: 'subscribe', id: 2, channel: 'private:alice:inbox' },
      { op: 'subscribe', id: 3, channel: 'public:news' },
      { op: 'publish', id: 4, channel: 'private:alice:inbox', data: {} },
    ]);
    const replies = await waitFor('four replies', () =>
      c.frames.filter((f) => f['id'] !== undefined).length >= 4 ? c.frames.filter((f) => f['id'] !== undefined) : undefined,
    );
    // connected comes first; the others answer as each operation completes (subscribe reads history).
    assert.equal(replies[0]?.['op'], 'connected');
    const byId = [...replies].sort((x, y) => x['id'] - y['id']);
    assert.deepEqual(
      byId.map((f) => [f['id'], f['op']]),
      [
        [1, 'connected'],
        [2, 'subscribed'],
        [3, 'subscribed'],
        [4, 'error'],
      ],
    );
    // The token grants no publishing: the fourth frame was still read as an operation, after connect.
    assert.equal(byId[3]?.['code'], 'forbidden');
    assert.equal(c.closed, undefined);
    const published = await api(gw.port, '/api/publish', { channel: 'private:alice:inbox', data: { n: 1 } });
    assert.equal(published.status, 200);
    await c.waitPubs(1, 'private:alice:inbox');
    c.close();
  } finally {
    await gw.close();
  }
});

test('an expired token sent with pipelined frames is refused with its own code, 4001', async () => {
  const gw = await startGateway();
  try {
    const expired = await token('bob', { channels: ['private:bob:*'] }, -60);
    const c = await RawClient.open(gw.port);
    c.sendTogether([
      { op: 'connect', id: 1, v: 1, token: expired },
      { op: 'subscribe', id: 2, channel: 'private:bob:inbox' },
    ]);
    const closed = await c.waitClose();
    assert.equal(closed.code, 4001);
    assert.match(closed.reason, /expired/);
    assert.equal(
      c.frames.find((f) => f['op'] === 'subscribed'),
      undefined,
    );
  } finally {
    await gw.close();
  }
});

test('more frames before connected than the bound closes the connection with 1008', async () => {
  const gw = await startGateway({ maxMessagesPerSecond: 1000 });
  try {
    const tok = await token('carol', { channels: ['private:carol:*'] });
    const c = await RawClient.open(gw.port);
    const frames: Frame[] = [{ op: 'connect', id: 1, v: 1, token: tok }];
    for (let i = 0; i < 65; i++) frames.push({ op: 'subscribe', id: 2 + i, channel: `private:carol:${i}` });
    c.sendTogether(frames);
    const closed = await c.waitClose();
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /before connected/);
  } finally {
    await gw.close();
  }
});
