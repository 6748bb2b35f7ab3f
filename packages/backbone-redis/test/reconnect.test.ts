/**
 * A private redis-server killed and restarted under a running backbone: state goes down then up,
 * publish and sendControl reject (never queue) while down, subscriptions and the control channel
 * come back by themselves.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertDownThenUp, RecordingHandler } from '@gatehouse/conformance';
import { BackboneUnavailableError } from '@gatehouse/backbone-kit';
import { serviceSkipReason, waitFor, withDeadline } from '@gatehouse/testkit';
import { RedisBackbone } from '../src/index.js';
import { freePort } from '@gatehouse/testkit';
import { startPrivateRedis, redisServerInstalled, type PrivateRedis } from './support.js';

const skip = await serviceSkipReason('redis', 'redis reconnect (private redis-server)', redisServerInstalled);
const KEEP = { historySize: 10, historyTtlSeconds: 60 };
const FAST = { reconnectMinDelayMs: 20, reconnectMaxDelayMs: 200 };

describe('redis backbone across a server restart', { skip: skip ?? false }, () => {
  let server: PrivateRedis;
  before(async () => {
    server = await startPrivateRedis();
  });
  after(async () => {
    await server?.stop();
  });

  for (const sharded of [false, true]) {
    test(`${sharded ? 'sharded: ' : ''}goes down and up, rejects while down, resumes subscriptions and control`, async () => {
      const a = new RedisBackbone({ urls: [server.url], sharded, ...FAST });
      const b = new RedisBackbone({ urls: [server.url], sharded, ...FAST });
      const ra = new RecordingHandler();
      const rb = new RecordingHandler();
      await Promise.all([a.start(ra), b.start(rb)]);
      try {
        const ch = `restart:${sharded ? 's' : 'p'}`;
        await Promise.all([a.subscribe(ch), b.subscribe(ch)]);
        const before = await a.publish(ch, '{"n":1}', KEEP);
        await rb.waitCount(ch, 1, 'node b', 10_000);

        await server.kill();
        await waitFor("node a reports 'down'", () => a.state === 'down');
        await waitFor("node b reports 'down'", () => b.state === 'down');
        assert.ok(ra.states.at(-1) === 'down' && rb.states.at(-1) === 'down', 'onStateChange reported down');
        await withDeadline('publish while down to reject', assert.rejects(a.publish(ch, '{"n":2}', KEEP), BackboneUnavailableError));
        await withDeadline('history while down to reject', assert.rejects(a.history(ch, undefined, 10), BackboneUnavailableError));
        await withDeadline('subscribe while down to reject', assert.rejects(a.subscribe(`${ch}-new`), BackboneUnavailableError));
        const lost = { type: 'test.lost', from: 'node-a', data: '1' };
        await withDeadline('sendControl while down to reject', assert.rejects(a.sendControl(lost), BackboneUnavailableError));
        await withDeadline('records while down to reject', assert.rejects(a.records('test.kind'), BackboneUnavailableError));

        await server.restart();
        await waitFor("node a reports 'up' again", () => a.state === 'up' && ra.states.at(-1) === 'up');
        await waitFor("node b reports 'up' again", () => b.state === 'up' && rb.states.at(-1) === 'up');
        assertDownThenUp(ra.states, 'node a');
        assertDownThenUp(rb.states, 'node b');

        // Both nodes still receive the channel without subscribing again.
        const after = await a.publish(ch, '{"n":3}', KEEP);
        await ra.waitCount(ch, 2, 'node a', 10_000);
        await rb.waitCount(ch, 2, 'node b', 10_000);
        assert.notEqual(after.epoch, before.epoch, 'the restarted server kept nothing: a new epoch');
        assert.equal(after.offset, 1);
        assert.ok(a.stats().reconnects >= 1, 'reconnects are counted');
        assert.ok(a.stats().publishErrors >= 1, 'the rejected publish is counted');
        assert.equal(rb.of(ch).length, 2, 'the rejected publication was never delivered');

        // The control channel is listened on again without anyone asking.
        await b.sendControl({ type: 'test.back', from: 'node-b', data: '2' });
        for (const [who, rec] of [
          ['node a', ra],
          ['node b', rb],
        ] as const) {
          await rec.waitControl(`the control message after the restart at ${who}`, (m) => m.type === 'test.back', 10_000);
          assert.deepEqual(
            rec.controls.map((m) => m.type),
            ['test.back'],
            `${who}: the rejected control message was never delivered`,
          );
        }
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  }

  test('start rejects with a clear error when nothing listens', async () => {
    const port = await freePort();
    const a = new RedisBackbone({ urls: [`redis://127.0.0.1:${port}`], connectTimeoutMs: 300, ...FAST });
    await assert.rejects(a.start(new RecordingHandler()), (err: unknown) => {
      assert.ok(err instanceof BackboneUnavailableError);
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}/0`));
      return true;
    });
    assert.equal(a.state, 'closed');
  });
});
