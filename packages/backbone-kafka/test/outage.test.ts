/**
 * The broker goes away and comes back: the backbone reports 'down', rejects publishes (and control
 * messages, record writes and reads) meanwhile, reconnects by itself, and the history and records
 * written before the crash are still there. Uses a private broker (SIGKILL, then a restart on the
 * same data), never the shared one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BackboneUnavailableError, type ControlMessage, type ControlRecord, type PublishOptions } from '@gatehouse/backbone-kit';
import { assertDownThenUp } from '@gatehouse/conformance';
import { serviceSkipReason, withDeadline } from '@gatehouse/testkit';
import { createKafkaBackbone } from '../src/index.js';
import { BrokerRig, privateBrokerAvailable } from './private-broker.js';
import { Recorder, uniqueChannel, uniqueTopic, WAIT } from './support.js';

const skip = await serviceSkipReason('kafka', 'backbone-kafka: outage.test (needs Java and .services/kafka/lib)', async () =>
  privateBrokerAvailable(),
);
const KEEP: PublishOptions = { historySize: 100, historyTtlSeconds: 3600 };

describe('KafkaBackbone when the broker dies and returns', { skip: skip ?? false }, () => {
  let rig: BrokerRig;
  before(async () => {
    rig = await BrokerRig.start({ topic: uniqueTopic('outage'), partitions: 2, requestTimeoutMs: 3000 });
  });
  after(() => rig?.close());

  test('control messages and records: rejected while down, working again after, records kept', async () => {
    const { broker, pub, sub, recPub, recSub } = rig;
    const kind = 'outage.revoked';
    const record: ControlRecord = { key: 'jti-1', value: '{"by":"test"}', expiresAt: Date.now() + 3_600_000 };
    const hello = (n: number): ControlMessage => ({ type: 'outage.hello', from: 'pub', data: JSON.stringify({ n }) });
    await pub.putRecord(kind, record);
    await pub.sendControl(hello(1));
    await recSub.waitControl('the first control message at the subscriber', (m) => m.data === hello(1).data, WAIT);

    await broker.kill('SIGKILL');
    await Promise.all([recPub.state('down', 'publisher'), recSub.state('down', 'subscriber')]);
    await withDeadline('sendControl while down to reject', assert.rejects(pub.sendControl(hello(2)), BackboneUnavailableError), 10_000);
    await withDeadline('putRecord while down to reject', assert.rejects(pub.putRecord(kind, record), BackboneUnavailableError), 10_000);
    await withDeadline('records while down to reject', assert.rejects(sub.records(kind), BackboneUnavailableError), 10_000);

    await broker.start();
    await Promise.all([recPub.state('up', 'publisher', 60_000), recSub.state('up', 'subscriber', 60_000)]);
    await pub.sendControl(hello(3));
    await recSub.waitControl('a control message sent after the restart at the subscriber', (m) => m.data === hello(3).data, 60_000);
    await recPub.waitControl('and at the sender itself', (m) => m.data === hello(3).data, WAIT);
    assert.equal(recSub.controls.filter((m) => m.type === 'outage.hello').length, 2, 'the rejected one never arrived, none arrived twice');
    assert.deepEqual(await sub.records(kind), [record], 'the record written before the crash survived it');

    // A node started after the restart reads it too, and hears the fleet.
    const recLate = new Recorder();
    const late = createKafkaBackbone([broker.address], { topic: pub.options.topic, fetchMaxWaitMs: 200 });
    try {
      await late.start(recLate);
      assert.deepEqual(await late.records(kind), [record]);
      await sub.sendControl({ type: 'outage.hello', from: 'sub', data: '{"n":4}' });
      await recLate.waitControl('a control message at the late node', (m) => m.data === '{"n":4}', WAIT);
    } finally {
      await late.close();
    }
  });

  test('reports down, rejects publishes, comes back up and continues without loss', async () => {
    const { broker, pub, sub, recPub, recSub } = rig;
    const ch = uniqueChannel('outage');
    await Promise.all([sub.subscribe(ch), pub.subscribe(ch)]);
    const first = await pub.publish(ch, '"before"', KEEP);
    await recSub.waitCount(ch, 1, 'subscriber', WAIT);

    await broker.kill('SIGKILL');
    await Promise.all([recPub.state('down', 'publisher'), recSub.state('down', 'subscriber')]);
    assert.equal(pub.state, 'down');
    await withDeadline('publish while down to reject', assert.rejects(pub.publish(ch, '"lost?"', KEEP), BackboneUnavailableError), 10_000);

    await broker.start();
    await Promise.all([recPub.state('up', 'publisher', 60_000), recSub.state('up', 'subscriber', 60_000)]);
    assert.ok(sub.stats().reconnects >= 1, 'the reconnect was counted');

    const second = await pub.publish(ch, '"after"', KEEP);
    assert.equal(second.epoch, first.epoch, 'same topic, same data: same epoch');
    assert.ok(second.offset > first.offset);
    const got = await recSub.waitCount(ch, 2, 'subscriber', WAIT);
    assert.deepEqual(
      got.map((p) => p.data),
      ['"before"', '"after"'],
      'nothing lost, nothing doubled, the rejected one never appeared',
    );

    assertDownThenUp(recSub.states, 'subscriber');
    assertDownThenUp(recPub.states, 'publisher');

    const h = await sub.history(ch, { epoch: first.epoch, offset: 0 }, 10);
    assert.equal(h.complete, true, 'history written before the crash survived it');
    assert.deepEqual(
      h.publications.map((p) => p.data),
      ['"before"', '"after"'],
    );
  });
});
