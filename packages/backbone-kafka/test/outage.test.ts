/**
 * The broker goes away and comes back: the backbone reports 'down', rejects publishes meanwhile,
 * reconnects by itself, and the history written before the crash is still there under the same
 * epoch. Uses a private broker (SIGKILL, then a restart on the same data), never the shared one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BackboneUnavailableError, type PublishOptions } from '@gatehouse/backbone-kit';
import { assertDownThenUp } from '@gatehouse/conformance';
import { serviceSkipReason, withDeadline } from '@gatehouse/testkit';
import { BrokerRig, privateBrokerAvailable } from './private-broker.js';
import { uniqueChannel, uniqueTopic, WAIT } from './support.js';

const skip = await serviceSkipReason('kafka', 'backbone-kafka: outage.test (needs Java and .services/kafka/lib)', async () => privateBrokerAvailable());
const KEEP: PublishOptions = { historySize: 100, historyTtlSeconds: 3600 };

describe('KafkaBackbone when the broker dies and returns', { skip: skip ?? false }, () => {
  let rig: BrokerRig;
  before(async () => {
    rig = await BrokerRig.start({ topic: uniqueTopic('outage'), partitions: 2, requestTimeoutMs: 3000 });
  });
  after(() => rig?.close());

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
    assert.deepEqual(got.map((p) => p.data), ['"before"', '"after"'], 'nothing lost, nothing doubled, the rejected one never appeared');

    assertDownThenUp(recSub.states, 'subscriber');
    assertDownThenUp(recPub.states, 'publisher');

    const h = await sub.history(ch, { epoch: first.epoch, offset: 0 }, 10);
    assert.equal(h.complete, true, 'history written before the crash survived it');
    assert.deepEqual(h.publications.map((p) => p.data), ['"before"', '"after"']);
  });
});
