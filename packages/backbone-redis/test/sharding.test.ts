/**
 * Channels sharded over two private redis-server instances: each channel's keys and pub/sub
 * traffic land on the shard rendezvous hashing picks, each shard's pub/sub delivers, and losing
 * one shard leaves the other's channels working.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RecordingHandler } from '@gatehouse/conformance';
import { BackboneUnavailableError, RendezvousHash } from '@gatehouse/backbone-kit';
import { serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { channelKeys, parseRedisUrl, RedisBackbone } from '../src/index.js';
import { redisClient, startPrivateRedis, redisServerInstalled, type PrivateRedis } from './support.js';

const skip = await serviceSkipReason('redis', 'redis sharding (private redis-server)', redisServerInstalled);
const KEEP = { historySize: 10, historyTtlSeconds: 60 };

describe('redis sharding over two servers', { skip: skip ?? false }, () => {
  let s1: PrivateRedis;
  let s2: PrivateRedis;
  before(async () => {
    [s1, s2] = await Promise.all([startPrivateRedis(), startPrivateRedis()]);
  });
  after(async () => {
    await Promise.all([s1?.stop(), s2?.stop()]);
  });

  for (const sharded of [false, true]) {
    test(`keys and ${sharded ? 'sharded ' : ''}pub/sub of each channel live on the shard rendezvous hashing picks`, async () => {
      const urls = [s1.url, s2.url];
      const ring = new RendezvousHash(urls.map((u) => parseRedisUrl(u).id));
      const a = new RedisBackbone({ urls, sharded });
      const b = new RedisBackbone({ urls: [...urls].reverse(), sharded });
      const ra = new RecordingHandler();
      const rb = new RecordingHandler();
      await Promise.all([a.start(ra), b.start(rb)]);
      const clients = [redisClient(s1.url), redisClient(s2.url)];
      try {
        const channels = Array.from({ length: 24 }, (_, i) => `shard${sharded ? 's' : 'p'}:ch-${i}`);
        const owners = channels.map((c) => ring.indexOf(c));
        assert.ok(owners.includes(0) && owners.includes(1), 'the sample covers both shards');
        for (const [i, ch] of channels.entries()) {
          assert.equal(a.shardOf(ch), b.shardOf(ch), 'both nodes agree whatever the URL order');
          assert.equal(a.shardOf(ch), ring.pick(ch));
          await a.subscribe(ch);
          const sent = await b.publish(ch, JSON.stringify({ i }), KEEP);
          const got = await ra.waitCount(ch, 1, 'node a', 10_000);
          assert.deepEqual([got[0]?.offset, got[0]?.epoch], [sent.offset, sent.epoch]);

          const keys = channelKeys('gh', ch);
          const owner = owners[i] as number;
          const [own, other] = [clients[owner], clients[1 - owner]] as const;
          assert.equal(await own!.exists(keys.pos, keys.log), 2, `${ch}: keys on its shard`);
          assert.equal(await other!.exists(keys.pos, keys.log), 0, `${ch}: no keys on the other shard`);
          const numsub = async (c: typeof own) =>
            sharded
              ? ((await c!.call('PUBSUB', 'SHARDNUMSUB', keys.pubsub)) as [string, number])[1]
              : ((await c!.pubsub('NUMSUB', keys.pubsub)) as [string, number])[1];
          assert.equal(await numsub(own), 1, `${ch}: node a subscribed on the owning shard`);
          assert.equal(await numsub(other), 0, `${ch}: nobody subscribed on the other shard`);
        }
      } finally {
        for (const c of clients) c.disconnect();
        await Promise.all([a.close(), b.close()]);
      }
    });
  }

  test("losing one shard reports 'down' but channels on the other shard keep working", async () => {
    const urls = [s1.url, s2.url];
    const ring = new RendezvousHash(urls.map((u) => parseRedisUrl(u).id));
    const a = new RedisBackbone({ urls, reconnectMinDelayMs: 20, reconnectMaxDelayMs: 200 });
    const ra = new RecordingHandler();
    await a.start(ra);
    const names = Array.from({ length: 40 }, (_, i) => `loss:ch-${i}`);
    const on1 = names.find((c) => ring.indexOf(c) === 0) as string;
    const on2 = names.find((c) => ring.indexOf(c) === 1) as string;
    try {
      await a.subscribe(on1);
      await s2.kill();
      await waitFor("state 'down' after a shard died", () => a.state === 'down');
      await assert.rejects(a.publish(on2, '{"x":1}', KEEP), BackboneUnavailableError);
      const sent = await a.publish(on1, '{"x":2}', KEEP);
      const got = await ra.waitCount(on1, 1, 'node a', 10_000);
      assert.equal(got[0]?.offset, sent.offset, 'the healthy shard still delivers');
      await s2.restart();
      await waitFor("state 'up' after the shard came back", () => a.state === 'up');
      const again = await a.publish(on2, '{"x":3}', KEEP);
      assert.equal(again.offset, 1, 'the restarted shard lost its data (nothing saved): a fresh stream');
    } finally {
      await a.close();
    }
  });
});
