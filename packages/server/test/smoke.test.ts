import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackbone } from '../src/index.js';
import { RawClient, api, startGateway, token } from './helpers.js';

test('a subscriber receives a publication made through the HTTP API', async () => {
  const gw = await startGateway();
  try {
    const c = await RawClient.connect(gw.port, await token('u1', { channels: ['private:*'] }));
    const sub = await c.request({ op: 'subscribe', channel: 'private:a' });
    assert.equal(sub['op'], 'subscribed');
    const res = await api(gw.port, '/api/publish', { channel: 'private:a', data: { hello: 'world' } });
    assert.equal(res.status, 200);
    assert.equal(res.body.offset, 1);
    const [p] = await c.waitPubs(1, 'private:a');
    assert.deepEqual(p?.['data'], { hello: 'world' });
    assert.equal(p?.['offset'], 1);
    c.close();
  } finally {
    await gw.close();
  }
});

test('a port that is taken: start rejects and closes the backbone it opened (nothing keeps the process alive)', async () => {
  const holder = await startGateway();
  const backbone = new MemoryBackbone();
  try {
    await assert.rejects(startGateway({ port: holder.port }, { backbone }), /EADDRINUSE/);
    assert.equal(backbone.state, 'closed', 'the backbone was closed');
  } finally {
    await holder.close();
  }
});
