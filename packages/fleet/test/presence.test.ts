/**
 * The presence drill (issue 12): three real gateway processes on Redis, JetStream and Kafka, a
 * real HTTP webhook receiver, leases renewed every 300 ms.
 * - kill -9 of the node holding bob: alice gets exactly one `leave` for bob, no node shows bob
 *   after the lease window, exactly one `user_offline` webhook for bob arrives;
 * - carol's page refresh (disconnect, reconnect on another node inside the grace period) sends no
 *   offline;
 * - a partition (the backbone connection of one node cut through a relay; not on Kafka, whose
 *   brokers advertise their own address) heals with dave present once, one leave, one join back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { SERVICES, TcpRelay, serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { GatewayNode } from '../src/index.js';

const SECRET = 'presence-drill-secret-0123';
const HOOK_SECRET = 'presence-hook-secret';
const INTERVAL_S = 0.3;
/** The lease ttl the nodes use (2.5 intervals), ms. */
const TTL_MS = INTERVAL_S * 2500;

interface Case {
  readonly name: 'redis' | 'jetstream' | 'kafka';
  readonly service: 'redis' | 'nats' | 'kafka';
  readonly host: string;
  readonly port: number;
  readonly scheme: string;
  readonly partition: boolean;
}

const CASES: Case[] = [
  { name: 'redis', service: 'redis', ...SERVICES.redis, scheme: 'redis', partition: true },
  { name: 'jetstream', service: 'nats', ...SERVICES.nats, scheme: 'jetstream', partition: true },
  { name: 'kafka', service: 'kafka', ...SERVICES.kafka, scheme: 'kafka', partition: false },
];

type Frame = Record<string, any>;

/** A bare protocol client recording every frame. */
class Member {
  readonly frames: Frame[] = [];
  private id = 1;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => this.frames.push(JSON.parse(String(d)) as Frame));
    ws.on('error', () => {});
  }

  static async join(port: number, user: string, channel: string): Promise<Member> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
    const m = new Member(ws);
    const tok = await new SignJWT({ channels: [`${channel.split(':')[0]}:*`], info: { name: user } })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user)
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(SECRET));
    assert.equal((await m.request({ op: 'connect', v: 1, token: tok }))['op'], 'connected');
    assert.equal((await m.request({ op: 'subscribe', channel }))['op'], 'subscribed');
    return m;
  }

  async request(frame: Frame): Promise<Frame> {
    const id = this.id++;
    this.ws.send(JSON.stringify({ ...frame, id }));
    return waitFor(`reply to ${String(frame['op'])}`, () => this.frames.find((f) => f['id'] === id), 10_000);
  }

  count(op: 'join' | 'leave', user: string): number {
    return this.frames.filter((f) => f['op'] === op && f['info']?.['user'] === user).length;
  }

  async users(channel: string): Promise<string[]> {
    const p = await this.request({ op: 'presence', channel });
    return (p['members'] as { user: string }[]).map((m) => m.user).sort();
  }

  close(): void {
    this.ws.terminate();
  }
}

const skips = new Map<string, string | undefined>();
for (const c of CASES) skips.set(c.name, await serviceSkipReason(c.service, `presence drill (${c.name})`));

describe('presence drill', { concurrency: 1 }, () => {
  for (const c of CASES) {
    describe(c.name, { skip: skips.get(c.name) }, () => {
      const run = randomBytes(3).toString('hex');
      const channel = `room:${run}`;
      const hooks: { name: string; user_id?: string }[] = [];
      let badSignatures = 0;
      let receiver: Server;
      let relay: TcpRelay | undefined;
      let dir = '';
      const nodes: GatewayNode[] = [];

      before(async () => {
        receiver = createServer((req, res) => {
          let body = '';
          req.on('data', (d: Buffer) => (body += d.toString()));
          req.on('end', () => {
            const want = `sha256=${createHmac('sha256', HOOK_SECRET).update(body).digest('hex')}`;
            if (req.headers['x-gatehouse-signature'] !== want) badSignatures++;
            else hooks.push(...(JSON.parse(body) as { events: { name: string; user_id?: string }[] }).events);
            res.writeHead(200).end();
          });
        });
        await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
        dir = mkdtempSync(join(tmpdir(), 'gh-presence-'));
        const config = join(dir, 'gatehouse.json');
        writeFileSync(config, JSON.stringify({ namespaces: { room: { presence: true, joinLeave: true } } }));
        if (c.partition) relay = await TcpRelay.start(c.port);
        const extraArgs = [
          ...['--token-secret', SECRET, '--announce-interval', String(INTERVAL_S), '--rebalance-per-round', '0'],
          ...['--backbone-namespace', `presence${run}`, '--webhook-secret', HOOK_SECRET, '--webhook-grace', '1.5'],
          ...['--webhook-url', `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`],
        ];
        const started = await Promise.all(
          [0, 1, 2].map((i) =>
            GatewayNode.start({
              nodeId: `presence-${run}-${i}`,
              backbone: [`${c.scheme}://${c.host}:${i === 2 && relay ? relay.port : c.port}`],
              apiKey: `key-${run}-0123456789`,
              configFile: config,
              heartbeatS: 10,
              drainWindowS: 1,
              extraArgs,
            }),
          ),
        );
        nodes.push(...started);
        // Every node has held every lease for a full lease period: the fleet speaks with one voice.
        await waitFor(
          'every node settled on three nodes',
          async () => {
            const m = await Promise.all(nodes.map((n) => n.metrics()));
            return m.every((x) => x.get('gatehouse_presence_settled_nodes') === 3) ? true : undefined;
          },
          60_000,
          100,
        );
      });

      after(async () => {
        await Promise.allSettled(nodes.map((n) => n.kill()));
        await relay?.close();
        receiver?.close();
        if (dir) rmSync(dir, { recursive: true, force: true });
      });

      test('kill -9 of the node holding bob: one leave, no ghost, one offline webhook', async () => {
        const [n0, n1, n2] = nodes as [GatewayNode, GatewayNode, GatewayNode];
        const alice = await Member.join(n0.port, 'alice', channel);
        const bob = await Member.join(n1.port, 'bob', channel);
        const carol = await Member.join(n2.port, 'carol', channel);
        await waitFor(
          'alice sees bob and carol',
          () => (alice.count('join', 'bob') === 1 && alice.count('join', 'carol') === 1) || undefined,
        );
        assert.deepEqual(await carol.users(channel), ['alice', 'bob', 'carol']);
        await waitFor('online webhook for bob', () => hooks.find((h) => h.name === 'user_online' && h.user_id === 'bob'), 10_000);
        await n1.kill();
        bob.close();
        await waitFor('alice gets bob leave', () => alice.count('leave', 'bob') === 1 || undefined, 20_000);
        await waitFor('offline webhook for bob', () => hooks.find((h) => h.name === 'user_offline' && h.user_id === 'bob'), 20_000);
        assert.deepEqual(await alice.users(channel), ['alice', 'carol']);
        assert.deepEqual(await carol.users(channel), ['alice', 'carol']);
        // Two more lease windows: nothing doubles, nothing comes back.
        await new Promise<void>((r) => setTimeout(r, 2 * TTL_MS));
        assert.equal(alice.count('leave', 'bob'), 1);
        assert.equal(carol.count('leave', 'bob'), 1);
        assert.equal(hooks.filter((h) => h.name === 'user_offline' && h.user_id === 'bob').length, 1);
        assert.equal(hooks.filter((h) => h.name === 'member_removed' && h.user_id === 'bob').length, 1);
        assert.equal(hooks.filter((h) => h.name === 'user_online' && h.user_id === 'bob').length, 1);
        assert.equal(badSignatures, 0);

        // carol refreshes her page: gone from node 2, back on node 0 inside the grace period.
        carol.close();
        await waitFor('alice sees carol leave', () => alice.count('leave', 'carol') === 1 || undefined, 10_000);
        const carol2 = await Member.join(n0.port, 'carol', channel);
        await waitFor('alice sees carol back', () => alice.count('join', 'carol') === 2 || undefined, 10_000);
        await new Promise<void>((r) => setTimeout(r, 2500));
        assert.equal(hooks.filter((h) => h.name === 'user_offline' && h.user_id === 'carol').length, 0);
        assert.equal(hooks.filter((h) => h.name === 'user_online' && h.user_id === 'carol').length, 1);
        alice.close();
        carol2.close();
      });

      test(
        'a partition of one node heals without duplicates',
        { skip: c.partition ? undefined : 'brokers advertise their own address' },
        async () => {
          const [n0, , n2] = nodes as [GatewayNode, GatewayNode, GatewayNode];
          const erin = await Member.join(n0.port, 'erin', channel);
          const dave = await Member.join(n2.port, 'dave', channel);
          await waitFor('erin sees dave', () => erin.count('join', 'dave') === 1 || undefined, 10_000);
          const r = relay as TcpRelay;
          r.accepting = false;
          r.cut();
          await waitFor('erin gets dave leave', () => erin.count('leave', 'dave') === 1 || undefined, 20_000);
          assert.deepEqual(await erin.users(channel), ['erin']);
          r.accepting = true;
          await waitFor('erin sees dave back', () => erin.count('join', 'dave') === 2 || undefined, 60_000);
          await new Promise<void>((res) => setTimeout(res, 2 * TTL_MS));
          assert.deepEqual(await erin.users(channel), ['dave', 'erin']);
          assert.deepEqual(await dave.users(channel), ['dave', 'erin']);
          assert.equal(erin.count('leave', 'dave'), 1);
          assert.equal(erin.count('join', 'dave'), 2);
          assert.equal(dave.count('join', 'dave'), 1, 'dave never saw himself join twice');
          erin.close();
          dave.close();
        },
      );
    });
  }
});
