/**
 * A private nats-server (JetStream on, file storage in a temp dir) killed and restarted under
 * running backbones: state goes down then up, publish, subscribe and sendControl reject while
 * down, and subscriptions (the control subject's too) come back by themselves; JetStream's fleet
 * records outlive the server restart. The shared server is never touched.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertDownThenUp, RecordingHandler } from '@gatehouse/conformance';
import { BackboneUnavailableError } from '@gatehouse/backbone-kit';
import { serviceSkipReason, waitFor, withDeadline } from '@gatehouse/testkit';
import { JetStreamBackbone, NatsBackbone } from '../src/index.js';
import { freePort } from '@gatehouse/testkit';
import { natsServerInstalled, startPrivateNats, type PrivateNats } from './support.js';

const skip = await serviceSkipReason('nats', 'nats restart (private nats-server)', natsServerInstalled);
const KEEP = { historySize: 100, historyTtlSeconds: 600 };
const FAST = { reconnectTimeWaitMs: 50 };

describe('nats backbones across a server restart', { skip: skip ?? false }, () => {
  let server: PrivateNats;
  before(async () => {
    server = await startPrivateNats();
  });
  after(async () => {
    await server?.stop();
  });

  test('nats core: down then up is reported, publish and sendControl reject while down, subscriptions and control resume', async () => {
    const a = new NatsBackbone({ servers: [server.url], ...FAST });
    const b = new NatsBackbone({ servers: [server.url], ...FAST });
    const ra = new RecordingHandler();
    const rb = new RecordingHandler();
    await Promise.all([a.start(ra), b.start(rb)]);
    try {
      const ch = 'restart:core';
      await Promise.all([a.subscribe(ch), b.subscribe(ch)]);
      await a.publish(ch, '{"n":1}', KEEP);
      await rb.waitCount(ch, 1, 'node b', 10_000);

      await server.kill();
      await waitFor("both nodes report 'down'", () => a.state === 'down' && b.state === 'down');
      await withDeadline('publish while down to reject', assert.rejects(a.publish(ch, '{"n":2}', KEEP), BackboneUnavailableError));
      await withDeadline('subscribe while down to reject', assert.rejects(a.subscribe('restart:other'), BackboneUnavailableError));
      await withDeadline(
        'sendControl while down to reject',
        assert.rejects(a.sendControl({ type: 'restart.lost', from: 'a', data: '0' }), BackboneUnavailableError),
      );

      await server.restart();
      await waitFor("both nodes report 'up' again", () => a.state === 'up' && b.state === 'up', 20_000);
      // The down -> up transition is what the core turns into a gap notice for its clients.
      assertDownThenUp(ra.states, 'node a');
      assertDownThenUp(rb.states, 'node b');

      await b.publish(ch, '{"n":3}', KEEP);
      await ra.waitCount(ch, 2, 'node a', 10_000);
      await rb.waitCount(ch, 2, 'node b', 10_000);
      assert.deepEqual(
        ra.of(ch).map((p) => JSON.parse(p.data).n),
        [1, 3],
        'the rejected publication never travelled',
      );
      assert.ok(a.stats().reconnects >= 1 && a.stats().publishErrors >= 1);

      // Both nodes listen on the control subject again: each hears the other and itself.
      await b.sendControl({ type: 'restart.back', from: 'b', data: '"from b"' });
      await a.sendControl({ type: 'restart.back', from: 'a', data: '"from a"' });
      for (const [who, rec] of [
        ['node a', ra],
        ['node b', rb],
      ] as const) {
        for (const from of ['a', 'b'])
          await rec.waitControl(`${who} hears ${from} after the restart`, (m) => m.type === 'restart.back' && m.from === from, 10_000);
      }
      assert.ok(![...ra.controls, ...rb.controls].some((m) => m.type === 'restart.lost'), 'the rejected control message never travelled');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('jetstream: the stream, its epoch and the fleet records survive, readers resume in order with no duplicate, control resumes', async () => {
    const opts = { servers: [server.url], stream: 'RESTART', subjectPrefix: 'restart', ...FAST };
    const a = new JetStreamBackbone(opts);
    const b = new JetStreamBackbone(opts);
    const ra = new RecordingHandler();
    const rb = new RecordingHandler();
    await Promise.all([a.start(ra), b.start(rb)]);
    try {
      const ch = 'restart:js';
      await b.subscribe(ch);
      const revoked = { key: 'token-1', value: '{"why":"restart test"}', expiresAt: Date.now() + 600_000 };
      await a.putRecord('restart.revoke', revoked);
      const sent = [];
      for (let n = 1; n <= 3; n++) sent.push(await a.publish(ch, JSON.stringify({ n }), KEEP));
      await rb.waitCount(ch, 3, 'node b', 10_000);
      const epoch = a.currentEpoch;

      await server.kill();
      await waitFor("both nodes report 'down'", () => a.state === 'down' && b.state === 'down');
      await withDeadline('publish while down to reject', assert.rejects(a.publish(ch, '{"n":0}', KEEP), BackboneUnavailableError));
      await withDeadline('history while down to reject', assert.rejects(a.history(ch, undefined, 10), BackboneUnavailableError));
      await withDeadline('records while down to reject', assert.rejects(a.records('restart.revoke'), BackboneUnavailableError));
      await withDeadline(
        'sendControl while down to reject',
        assert.rejects(a.sendControl({ type: 'restart.lost', from: 'a', data: '0' }), BackboneUnavailableError),
      );

      await server.restart();
      await waitFor("both nodes report 'up' again", () => a.state === 'up' && b.state === 'up', 30_000);
      assertDownThenUp(rb.states, 'node b');
      assert.equal(a.currentEpoch, epoch, 'file storage kept the stream: same epoch');
      assert.deepEqual(await b.records('restart.revoke'), [revoked], 'file storage kept the records bucket');
      await a.sendControl({ type: 'restart.back', from: 'a', data: '1' });
      await rb.waitControl('node b hears node a after the restart', (m) => m.type === 'restart.back', 10_000);
      assert.ok(!rb.controls.some((m) => m.type === 'restart.lost'), 'the rejected control message never travelled');

      for (let n = 4; n <= 5; n++) sent.push(await a.publish(ch, JSON.stringify({ n }), KEEP));
      const got = await rb.waitCount(ch, 5, 'node b', 30_000);
      assert.deepEqual(
        got.map((p) => JSON.parse(p.data).n),
        [1, 2, 3, 4, 5],
        'in order, nothing twice',
      );
      assert.deepEqual(
        got.map((p) => p.offset),
        sent.map((p) => p.offset),
      );
      const h = await b.history(ch, { epoch, offset: sent[0]!.offset }, 100);
      assert.equal(h.complete, true);
      assert.deepEqual(
        h.publications.map((p) => p.offset),
        sent.slice(1).map((p) => p.offset),
      );
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('start rejects with a clear error when nothing listens until its deadline', async () => {
    const port = await freePort();
    for (const backbone of [
      new NatsBackbone({ servers: [`nats://127.0.0.1:${port}`], timeoutMs: 500, startTimeoutMs: 1000 }),
      new JetStreamBackbone({ servers: [`jetstream://127.0.0.1:${port}`], timeoutMs: 500, startTimeoutMs: 1000 }),
    ]) {
      await assert.rejects(backbone.start(new RecordingHandler()), (err: unknown) => {
        assert.ok(err instanceof BackboneUnavailableError, String(err));
        assert.match(err.message, new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}`));
        return true;
      });
      assert.equal(backbone.state, 'closed');
    }
  });

  // A gateway started together with its NATS server (a pod restart, a loaded CI machine) must wait
  // for the server rather than exit.
  test('start keeps trying until a server that was down answers', async () => {
    await server.kill();
    const core = new NatsBackbone({ servers: [server.url], timeoutMs: 500, startTimeoutMs: 60_000 });
    const js = new JetStreamBackbone({
      servers: [server.url],
      stream: 'LATE',
      subjectPrefix: 'late',
      timeoutMs: 500,
      startTimeoutMs: 60_000,
    });
    const rc = new RecordingHandler();
    const starting = Promise.all([core.start(rc), js.start(new RecordingHandler())]);
    try {
      await server.restart();
      await withDeadline('both to start once the server is back', starting, 60_000);
      assert.equal(core.state, 'up');
      assert.equal(js.state, 'up');
      await core.subscribe('late:a');
      await js.publish('late:a', '{"n":1}', KEEP);
      await core.publish('late:a', '{"n":2}', KEEP);
      await rc.waitCount('late:a', 1, 'core subscriber', 10_000);
    } finally {
      await starting.catch(() => {});
      await Promise.all([core.close(), js.close()]);
    }
  });
});
