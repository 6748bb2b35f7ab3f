/**
 * The control plane on Redis: the shared control-plane conformance cases on the shared server
 * (plain and sharded pub/sub) and on two private servers (channels sharded by rendezvous
 * hashing), then what is particular to this adapter: the record scripts' bound and cleanup, and
 * the control shard lost under a sharded fleet. Hostile control traffic is in direct.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { ControlRecorder, runControlConformance } from '@gatehouse/conformance';
import { SERVICES, serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { controlChannel, parseRedisUrl, PUT_RECORD_SCRIPT, recordKeys, RedisBackbone, REDIS_DEFAULTS } from '../src/index.js';
import { deleteKeys, redisServerInstalled, startPrivateRedis, type PrivateRedis } from './support.js';

const url = `redis://${SERVICES.redis.host}:${SERVICES.redis.port}`;
const skip = await serviceSkipReason('redis', 'redis control plane');
const privateSkip = await serviceSkipReason('redis', 'redis control plane over two private servers', redisServerInstalled);
const FAST = { reconnectMinDelayMs: 20, reconnectMaxDelayMs: 200 };

const freshPrefix = () => `ghtest-${randomBytes(4).toString('hex')}`;

for (const sharded of [false, true]) {
  runControlConformance(
    sharded ? 'redis (sharded pub/sub)' : 'redis',
    async () => {
      const keyPrefix = freshPrefix();
      return { node: () => new RedisBackbone({ urls: [url], sharded, keyPrefix }), cleanup: () => deleteKeys(url, keyPrefix) };
    },
    { skip },
  );
}

// Two private servers for the whole file: the sharded fleet's conformance run and the shard-loss test.
let shards: PrivateRedis[] = [];
if (!privateSkip) shards = await Promise.all([startPrivateRedis(), startPrivateRedis()]);
after(async () => {
  await Promise.all(shards.map((s) => s.stop()));
});

runControlConformance(
  'redis (two shards)',
  async () => {
    const keyPrefix = freshPrefix();
    const urls = shards.map((s) => s.url);
    return { node: () => new RedisBackbone({ urls, keyPrefix, ...FAST }), cleanup: async () => {} };
  },
  { skip: privateSkip },
);

describe('redis control plane specifics', { skip: skip ?? false }, () => {
  const keyPrefix = freshPrefix();
  let node: RedisBackbone;
  let raw: Redis;

  before(async () => {
    node = new RedisBackbone({ urls: [url], keyPrefix });
    await node.start(new ControlRecorder());
    raw = new Redis(url);
  });
  after(async () => {
    await node?.close();
    raw?.disconnect();
    await deleteKeys(url, keyPrefix);
  });

  test('records: keys expire with their longest-lived record, expired entries are removed, an expired put deletes', async () => {
    const kind = 'test.cleanup';
    const keys = recordKeys(keyPrefix, kind);
    const now = Date.now();
    await node.putRecord(kind, { key: 'long', value: '1', expiresAt: now + 120_000 });
    await node.putRecord(kind, { key: 'short', value: '2', expiresAt: now + 300 });
    const ttl = await raw.pttl(keys.values);
    assert.ok(ttl > 100_000 && ttl <= 120_000 + 60_000, `the kind's keys expire after its longest record (+ slack): PTTL ${ttl}`);
    assert.ok((await raw.pttl(keys.expiry)) > 100_000, 'both keys of the kind expire together');
    await waitFor('the short record to expire', () => Date.now() > now + 300, 5_000);
    assert.deepEqual(
      (await node.records(kind)).map((r) => r.key),
      ['long'],
    );
    // The read removed the expired entry from the server, not only from the answer.
    assert.deepEqual(await raw.hkeys(keys.values), ['long']);
    assert.deepEqual(await raw.zrange(keys.expiry, 0, -1), ['long']);
    // Writing a key with an expiry already past removes it; with nothing left, nothing is kept.
    await node.putRecord(kind, { key: 'long', value: '1', expiresAt: Date.now() - 1 });
    assert.equal(await raw.exists(keys.values, keys.expiry), 0, 'an emptied kind leaves no keys behind');
    assert.deepEqual(await node.records(kind), []);
  });

  test('records: the put script refuses a new key past the bound, still replaces an existing one', async () => {
    const keys = recordKeys(keyPrefix, 'test.bound');
    const put = (key: string, max: number) => {
      const later = Date.now() + 60_000;
      const args = [Date.now(), key, JSON.stringify({ v: 1, key, expiresAt: later, value: 1 }), later, max, 1_000];
      return raw.eval(PUT_RECORD_SCRIPT.lua, 2, keys.values, keys.expiry, ...args) as Promise<number>;
    };
    assert.equal(await put('a', 2), 1);
    assert.equal(await put('b', 2), 2);
    assert.equal(await put('c', 2), -1, 'a third key is refused');
    assert.equal(await put('a', 2), 2, 'an existing key is still replaced');
    assert.deepEqual((await raw.hkeys(keys.values)).sort(), ['a', 'b']);
  });

  test('a stored record that does not decode is skipped and counted, the others still answer', async () => {
    const kind = 'test.hostile';
    const keys = recordKeys(keyPrefix, kind);
    await node.putRecord(kind, { key: 'good', value: '"fine"', expiresAt: Date.now() + 60_000 });
    await raw.hset(keys.values, 'bad', 'not json');
    await raw.zadd(keys.expiry, Date.now() + 60_000, 'bad');
    const before = node.stats().recordsMalformed;
    assert.deepEqual(
      (await node.records(kind)).map((r) => r.key),
      ['good'],
    );
    assert.equal(node.stats().recordsMalformed, before + 1);
  });

  test('control and records use only names under the key prefix, none a channel could have', () => {
    assert.equal(controlChannel('gh'), 'gh:{gh#control}');
    assert.deepEqual(recordKeys('gh', 'token.revoke'), {
      values: 'gh:{gh#records.token.revoke}:v',
      expiry: 'gh:{gh#records.token.revoke}:x',
    });
    assert.equal(REDIS_DEFAULTS.keyPrefix, 'gh');
  });
});

describe('redis control plane over two shards, one lost', { skip: privateSkip ?? false }, () => {
  test('control messages still reach every node through the shard that stays up', async () => {
    const keyPrefix = freshPrefix();
    const urls = shards.map((s) => s.url);
    const a = new RedisBackbone({ urls, keyPrefix, ...FAST });
    const b = new RedisBackbone({ urls, keyPrefix, ...FAST });
    const ra = new ControlRecorder();
    const rb = new ControlRecorder();
    await Promise.all([a.start(ra), b.start(rb)]);
    // The server the control channel's name picks is the one to lose.
    const victim = shards.find((s) => a.shardOf(controlChannel(keyPrefix)) === parseRedisUrl(s.url).id) as PrivateRedis;
    try {
      assert.ok(victim, 'the control channel picks one of the two servers');
      await victim.kill();
      await waitFor("node a reports 'down'", () => a.state === 'down');
      await a.sendControl({ type: 'test.degraded', from: 'node-a', data: '{"n":1}' });
      for (const [who, rec] of [
        ['node a', ra],
        ['node b', rb],
      ] as const) {
        await waitFor(`the message at ${who}`, () => rec.controls.some((m) => m.type === 'test.degraded'));
      }
      await victim.restart();
      await waitFor("node a reports 'up' again", () => a.state === 'up');
      await waitFor("node b reports 'up' again", () => b.state === 'up');
      // Back on the preferred shard, which both nodes listen on again without being asked.
      await b.sendControl({ type: 'test.restored', from: 'node-b', data: '{"n":2}' });
      for (const [who, rec] of [
        ['node a', ra],
        ['node b', rb],
      ] as const) {
        await waitFor(`the message after the restart at ${who}`, () => rec.controls.some((m) => m.type === 'test.restored'));
        assert.deepEqual(
          rec.controls.map((m) => m.type),
          ['test.degraded', 'test.restored'],
          `${who}: each message once`,
        );
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
