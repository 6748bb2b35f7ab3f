/** `gatehouse presence <channel>` prints a presence channel's members (or counts) through the HTTP API. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { waitFor } from '@gatehouse/testkit';
import { BIN, startChild, stopChild } from './helpers.js';

test('members and counts of a presence channel', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gh-cli-presence-'));
  const config = join(dir, 'gatehouse.json');
  writeFileSync(config, JSON.stringify({ namespaces: { lobby: { anonymous: true, presence: true }, plain: { anonymous: true } } }));
  const { child, port } = await startChild(['--api-key', 'dev-key-123', '--config', config]);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  try {
    const frames: { op: string; client?: string }[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString()) as { op: string }));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ op: 'connect', id: 1, v: 1 }));
    ws.send(JSON.stringify({ op: 'subscribe', id: 2, channel: 'lobby:main' }));
    await waitFor('subscribed', () => frames.find((f) => f.op === 'subscribed'));
    const client = frames.find((f) => f.op === 'connected')?.client;
    const common = ['--url', `http://127.0.0.1:${port}`, '--api-key', 'dev-key-123'];
    const members = spawnSync(process.execPath, [BIN, 'presence', 'lobby:main', ...common], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(members.status, 0, members.stderr);
    assert.deepEqual(JSON.parse(members.stdout), { channel: 'lobby:main', members: [{ client, user: '' }] });
    const stats = spawnSync(process.execPath, [BIN, 'presence', 'lobby:main', '--stats', ...common], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(stats.status, 0, stats.stderr);
    assert.deepEqual(JSON.parse(stats.stdout), { channel: 'lobby:main', clients: 1, users: 0 });
    const off = spawnSync(process.execPath, [BIN, 'presence', 'plain:x', ...common], { encoding: 'utf8', timeout: 20_000 });
    assert.notEqual(off.status, 0);
    assert.match(off.stderr, /presence is not enabled/);
  } finally {
    ws.close();
    await stopChild(child);
  }
});
