import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { waitFor } from '@gatehouse/testkit';
import { startChild, stopChild } from './helpers.js';

test('--workers runs several nodes on one port, and a publication reaches subscribers on every worker', async () => {
  const { child, port } = await startChild(['--workers', '2', '--api-key', 'dev-key-123', '--drain-window', '0'], {}, 2);
  const sockets: WebSocket[] = [];
  try {
    const frames: any[][] = [];
    // Connect until clients sit on both workers (the cluster module hands connections out in turn).
    const nodes = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      const mine: any[] = [];
      frames.push(mine);
      sockets.push(ws);
      ws.on('message', (d) => mine.push(JSON.parse(d.toString())));
      await new Promise((r) => ws.once('open', r));
      ws.send(JSON.stringify({ op: 'connect', id: 1, v: 1 }));
      ws.send(JSON.stringify({ op: 'subscribe', id: 2, channel: 'public:all' }));
      const connected = await waitFor('connected', () => mine.find((f) => f.op === 'connected'));
      await waitFor('subscribed', () => mine.find((f) => f.op === 'subscribed'));
      nodes.add(connected.node);
    }
    assert.equal(nodes.size, 2, `clients landed on ${[...nodes].join(', ')}`);
    for (let i = 1; i <= 3; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/api/publish`, {
        method: 'POST',
        headers: { authorization: 'apikey dev-key-123', 'content-type': 'application/json' },
        body: JSON.stringify({ channel: 'public:all', data: i }),
      });
      assert.equal(res.status, 200);
    }
    for (const mine of frames) {
      const pubs = await waitFor('three publications', () => {
        const p = mine.filter((f) => f.op === 'pub');
        return p.length >= 3 ? p : undefined;
      });
      assert.deepEqual(
        pubs.map((p) => [p.offset, p.data]),
        [
          [1, 1],
          [2, 2],
          [3, 3],
        ],
      );
    }
  } finally {
    for (const ws of sockets) ws.terminate();
    assert.equal(await stopChild(child), 0);
  }
});
