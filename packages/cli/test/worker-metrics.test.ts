/**
 * `--workers`: a scrape of the shared port answers for every worker, not for whichever one the
 * cluster module handed the HTTP connection to.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { WebSocket } from 'ws';
import { waitFor } from '@gatehouse/testkit';
import { startChild, stopChild } from './helpers.js';

/** One scrape on a connection of its own (no keep-alive), so successive scrapes may reach different workers. */
function scrape(port: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** `gatehouse_connections` per `node` label in one exposition. */
function connectionsByNode(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^gatehouse_connections\{[^}]*node="([^"]+)"[^}]*\} (\S+)$/gm)) out.set(m[1] as string, Number(m[2]));
  return out;
}

test('--workers: every scrape of the shared port counts the connections of both workers', async () => {
  const { child, port } = await startChild(['--workers', '2', '--drain-window', '0'], {}, 2);
  const sockets: WebSocket[] = [];
  try {
    // Connect until clients sit on both workers (the cluster module hands connections out in turn).
    const perNode = new Map<string, number>();
    while (perNode.size < 2 || sockets.length < 5) {
      assert.ok(sockets.length < 20, `clients landed on ${[...perNode.keys()].join(', ')} only`);
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      sockets.push(ws);
      const frames: { op: string; node?: string }[] = [];
      ws.on('message', (d) => frames.push(JSON.parse(String(d)) as { op: string; node?: string }));
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      ws.send(JSON.stringify({ op: 'connect', id: 1, v: 1 }));
      const connected = await waitFor('connected', () => frames.find((f) => f.op === 'connected'));
      const node = connected.node as string;
      perNode.set(node, (perNode.get(node) ?? 0) + 1);
    }

    for (let i = 0; i < 4; i++) {
      const { status, text } = await scrape(port);
      assert.equal(status, 200, text);
      const seen = connectionsByNode(text);
      assert.deepEqual(
        [...seen.entries()].sort(),
        [...perNode.entries()].sort(),
        `scrape ${i + 1}: gatehouse_connections per worker (the clients sit ${JSON.stringify([...perNode])})`,
      );
      assert.equal(text.match(/^# TYPE gatehouse_connections gauge$/gm)?.length, 1, 'one exposition: each metric described once');
    }
  } finally {
    for (const ws of sockets) ws.terminate();
    assert.equal(await stopChild(child), 0);
  }
});
