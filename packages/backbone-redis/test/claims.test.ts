/**
 * Idempotency claims on Redis (the contract's optional `claims`): two backbones on the shared
 * server race for one key and exactly one takes it; the loser reads the value held; settle
 * replaces it, release frees it, and a claim expires with its TTL. The key lives beside the
 * channel's own keys (same hash tag), so a cluster keeps it on the channel's slot.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { SERVICES, serviceSkipReason } from '@gatehouse/testkit';
import { RedisBackbone } from '../src/index.js';
import { deleteKeys } from './support.js';
import { RecordingHandler } from '@gatehouse/conformance';

const url = `redis://${SERVICES.redis.host}:${SERVICES.redis.port}`;
const skip = await serviceSkipReason('redis', 'redis idempotency claims');

describe('redis claims', { skip: skip ?? false }, () => {
  const keyPrefix = `ghclaim-${randomBytes(4).toString('hex')}`;
  const a = new RedisBackbone({ urls: [url], keyPrefix });
  const b = new RedisBackbone({ urls: [url], keyPrefix });
  before(async () => {
    await a.start(new RecordingHandler());
    await b.start(new RecordingHandler());
  });
  after(async () => {
    await a.close();
    await b.close();
    await deleteKeys(url, keyPrefix);
  });

  test('one of two racing claims takes the key; the other reads what it holds', async () => {
    const results = await Promise.all([a.claims.claim('chat:x', 'k', 'from-a', 10_000), b.claims.claim('chat:x', 'k', 'from-b', 10_000)]);
    assert.equal(results.filter((r) => r === undefined).length, 1, JSON.stringify(results));
    const held = results.find((r) => r !== undefined);
    assert.ok(held === 'from-a' || held === 'from-b');
    await a.claims.settle('chat:x', 'k', 'result', 10_000);
    assert.equal(await b.claims.claim('chat:x', 'k', 'again', 10_000), 'result');
    assert.equal(await b.claims.claim('chat:y', 'k', 'other channel', 10_000), undefined, 'keys are per channel');
    await b.claims.release('chat:x', 'k');
    assert.equal(await a.claims.claim('chat:x', 'k', 'after release', 10_000), undefined);
  });

  test('a claim expires with its TTL', async () => {
    assert.equal(await a.claims.claim('chat:ttl', 'k', 'short', 50), undefined);
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(await b.claims.claim('chat:ttl', 'k', 'later', 10_000), undefined);
  });
});
