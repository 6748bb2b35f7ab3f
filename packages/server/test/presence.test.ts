/**
 * Presence across two in-process gateways on one memory bus: members, stats, join/leave frames,
 * the HTTP API, a crashed node's members leaving exactly once, and lifecycle webhooks (signed,
 * sent once for the fleet, no offline for a refresh inside the grace period).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from '@gatehouse/testkit';
import { MemoryBackbone, MemoryBus, NAMESPACE_DEFAULTS } from '../src/index.js';
import type { Gateway } from '../src/index.js';
import { signWebhook } from '../src/webhooks.js';
import { API_KEY, RawClient, api, startGateway, token } from './helpers.js';

const SECRET_HOOK = 'hook-secret-123456';
const INTERVAL = 250;

interface Hook {
  name: string;
  channel?: string;
  user_id?: string;
  client_id?: string;
}

let receiver: Server;
let hookUrl = '';
const hooks: Hook[] = [];
let badSignatures = 0;

before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.headers['x-gatehouse-signature'] !== signWebhook(SECRET_HOOK, body)) badSignatures++;
      else hooks.push(...(JSON.parse(body) as { events: Hook[] }).events);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
});

after(() => receiver.close());

async function pair(graceMs = 600): Promise<[Gateway, Gateway]> {
  const bus = new MemoryBus();
  const opts = {
    announceIntervalMs: INTERVAL,
    namespaces: { room: { ...NAMESPACE_DEFAULTS, presence: true, joinLeave: true, subscribe: 'authenticated' as const } },
    webhookUrl: hookUrl,
    webhookSecret: SECRET_HOOK,
    webhookGraceMs: graceMs,
  };
  const a = await startGateway({ ...opts, nodeId: 'pa' }, { backbone: new MemoryBackbone({ bus }) });
  const b = await startGateway({ ...opts, nodeId: 'pb' }, { backbone: new MemoryBackbone({ bus }) });
  // Both nodes settled (each has held the other's lease for a full ttl) before anything counts.
  const settled = (g: Gateway) => g.presence.book.liveNodes().length === 2 && g.presence.book.connectedMs() > 2 * g.presence.book.ttlMs;
  await waitFor('both nodes settled', () => (settled(a) && settled(b) ? true : undefined), 10_000, 20);
  return [a, b];
}

async function member(port: number, user: string, channel: string, info?: Record<string, unknown>): Promise<RawClient> {
  const c = await RawClient.connect(port, await token(user, info ? { info } : {}));
  const r = await c.request({ op: 'subscribe', channel });
  assert.equal(r['op'], 'subscribed');
  return c;
}

function joins(c: RawClient, kind: 'join' | 'leave', user: string): number {
  return c.frames.filter((f) => f['op'] === kind && f['info']?.['user'] === user).length;
}

test('members, stats, join frames and the HTTP API agree across nodes', async () => {
  const [a, b] = await pair();
  const ch = 'room:r1';
  try {
    const alice = await member(a.port, 'alice', ch, { name: 'Alice' });
    const bob1 = await member(b.port, 'bob', ch);
    const bob2 = await member(b.port, 'bob', ch);
    await waitFor('alice sees bob twice', () => (joins(alice, 'join', 'bob') === 2 ? true : undefined), 5000);
    const p = await bob1.request({ op: 'presence', channel: ch });
    assert.deepEqual((p['members'] as { user: string }[]).map((m) => m.user).sort(), ['alice', 'bob', 'bob']);
    assert.deepEqual((p['members'] as { user: string; info?: unknown }[]).find((m) => m.user === 'alice')?.info, { name: 'Alice' });
    const st = await alice.request({ op: 'presence_stats', channel: ch });
    assert.deepEqual([st['clients'], st['users']], [3, 2]);
    const http = await api(a.port, '/api/presence_stats', { channel: ch });
    assert.deepEqual(http.body, { channel: ch, clients: 3, users: 2 });
    const list = await api(b.port, '/api/presence', { channel: ch });
    assert.equal(list.body.members.length, 3);
    assert.equal((await api(b.port, '/api/presence', { channel: ch }, 'wrong-key-123')).status, 401);
    const notSub = await (await RawClient.connect(a.port, await token('carol'))).request({ op: 'presence', channel: ch });
    assert.equal(notSub['code'], 'not_subscribed');
    bob2.send({ op: 'unsubscribe', id: 99, channel: ch });
    await waitFor('alice sees one bob leave', () => (joins(alice, 'leave', 'bob') === 1 ? true : undefined), 5000);
    assert.deepEqual((await api(a.port, '/api/presence_stats', { channel: ch })).body, { channel: ch, clients: 2, users: 2 });
    alice.close();
    bob1.close();
  } finally {
    await a.close();
    await b.close();
  }
});

test('a crashed node: each of its members leaves exactly once, no ghost stays, one offline webhook', async () => {
  const [a, b] = await pair(300);
  const ch = 'room:crash';
  try {
    const alice = await member(a.port, 'alice', ch);
    const bob = await member(b.port, 'bob-crash', ch);
    await waitFor('alice sees bob', () => (joins(alice, 'join', 'bob-crash') === 1 ? true : undefined), 5000);
    await waitFor('online webhook', () => hooks.find((h) => h.name === 'user_online' && h.user_id === 'bob-crash'), 5000);
    // The crash: b's backbone goes first, so nothing b does afterwards reaches the fleet.
    await b.backbone.close();
    await b.close();
    bob.close();
    await waitFor('alice sees bob leave', () => (joins(alice, 'leave', 'bob-crash') === 1 ? true : undefined), 5000);
    const p = await alice.request({ op: 'presence', channel: ch });
    assert.deepEqual(
      (p['members'] as { user: string }[]).map((m) => m.user),
      ['alice'],
    );
    await waitFor('offline webhook', () => hooks.find((h) => h.name === 'user_offline' && h.user_id === 'bob-crash'), 5000);
    // Two more lease periods: nothing doubles.
    await new Promise<void>((r) => setTimeout(r, a.presence.book.ttlMs * 2));
    assert.equal(joins(alice, 'leave', 'bob-crash'), 1);
    assert.equal(hooks.filter((h) => h.name === 'user_offline' && h.user_id === 'bob-crash').length, 1);
    assert.equal(hooks.filter((h) => h.name === 'user_online' && h.user_id === 'bob-crash').length, 1);
    assert.equal(hooks.filter((h) => h.name === 'member_removed' && h.user_id === 'bob-crash').length, 1);
    assert.equal(badSignatures, 0);
    alice.close();
  } finally {
    await a.close();
    await b.close();
  }
});

test('a refresh inside the grace period sends neither offline nor a second online', async () => {
  const [a, b] = await pair(2000);
  const ch = 'room:refresh';
  try {
    const first = await member(b.port, 'dora', ch);
    await waitFor('online webhook', () => hooks.find((h) => h.name === 'user_online' && h.user_id === 'dora'), 5000);
    first.close();
    await waitFor('member removed', () => hooks.find((h) => h.name === 'member_removed' && h.user_id === 'dora'), 5000);
    const again = await member(a.port, 'dora', ch);
    await waitFor(
      'member added again',
      () => (hooks.filter((h) => h.name === 'member_added' && h.user_id === 'dora').length === 2 ? true : undefined),
      5000,
    );
    // Past the grace period: still no offline, and one online in all.
    await new Promise<void>((r) => setTimeout(r, 2500));
    assert.equal(hooks.filter((h) => h.name === 'user_offline' && h.user_id === 'dora').length, 0);
    assert.equal(hooks.filter((h) => h.name === 'user_online' && h.user_id === 'dora').length, 1);
    assert.equal(hooks.filter((h) => h.name === 'channel_occupied' && h.channel === ch).length, 2);
    again.close();
  } finally {
    await a.close();
    await b.close();
  }
});

test('API key rules: a key limited to patterns sees only those channels', async () => {
  const gw = await startGateway({
    apiKeys: [{ key: API_KEY }, { key: 'limited-key-1234', channels: ['room:open-*'] }],
    namespaces: { room: { ...NAMESPACE_DEFAULTS, presence: true } },
  });
  try {
    assert.equal((await api(gw.port, '/api/presence', { channel: 'room:secret' }, 'limited-key-1234')).status, 403);
    assert.deepEqual((await api(gw.port, '/api/presence', { channel: 'room:open-1' }, 'limited-key-1234')).body, {
      channel: 'room:open-1',
      members: [],
    });
  } finally {
    await gw.close();
  }
});
