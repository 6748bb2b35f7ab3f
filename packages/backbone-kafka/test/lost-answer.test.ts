/**
 * A produce request the broker wrote but whose answer never came back (the broker died after
 * writing, or the network cut): the publish rejects, and it may be in the log. What must not
 * happen is what the fleet's broker-restart scenario found: the client library does not advance
 * its idempotence sequence after a failure, so the next batch carried the same sequence, the broker
 * took it for a retry of the written one, answered with that one's offset and dropped it: a publish
 * acknowledged and never delivered. A relay the broker advertises sits between the backbones and
 * the broker and drops the broker's answers on demand.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PublishOptions } from '@gatehouse/backbone-kit';
import { serviceSkipReason, TcpRelay, withDeadline } from '@gatehouse/testkit';
import { BrokerRig, privateBrokerAvailable } from './private-broker.js';
import { uniqueChannel, uniqueTopic, WAIT } from './support.js';

const skip = await serviceSkipReason('kafka', 'backbone-kafka: lost-answer.test (needs Java and .services/kafka/lib)', async () =>
  privateBrokerAvailable(),
);
const KEEP: PublishOptions = { historySize: 100, historyTtlSeconds: 3600 };

describe('KafkaBackbone when a produce answer is lost', { skip: skip ?? false }, () => {
  let relay: TcpRelay;
  let rig: BrokerRig;
  before(async () => {
    relay = await TcpRelay.start();
    rig = await BrokerRig.start({ topic: uniqueTopic('lost-answer'), partitions: 1, requestTimeoutMs: 1500 }, relay);
  });
  after(async () => {
    await rig?.close();
    await relay?.close();
  });

  test('the next publish is written and delivered, not taken for a retry of the unanswered one', async () => {
    const { pub, sub, recPub, recSub } = rig;
    const ch = uniqueChannel('lost-answer');
    await sub.subscribe(ch);
    const first = await pub.publish(ch, '"first"', KEEP);
    await recSub.waitCount(ch, 1, 'subscriber', WAIT);

    relay.dropReplies();
    // The broker writes it (and each retry is a duplicate to it); no answer reaches the client.
    await withDeadline('the unanswered publish to reject', assert.rejects(pub.publish(ch, '"unanswered"', KEEP)), 30_000);
    // Their fetches go unanswered too: both report 'down' before the answers flow again, so the
    // 'up' waited for below is the one after the cut, not the one from before it.
    await Promise.all([recPub.state('down', 'publisher', 30_000), recSub.state('down', 'subscriber', 30_000)]);
    relay.cut();
    await Promise.all([recPub.state('up', 'publisher', 60_000), recSub.state('up', 'subscriber', 60_000)]);

    const third = await pub.publish(ch, '"third"', KEEP);
    const got = await recSub.waitCount(ch, 3, 'subscriber', WAIT);
    assert.deepEqual(
      got.map((p) => p.data),
      ['"first"', '"unanswered"', '"third"'],
      'the unanswered one was written; the next one too',
    );
    assert.equal(got[2]?.offset, third.offset, 'the acknowledged offset is the one delivered');
    assert.ok(third.offset > (got[1]?.offset ?? Infinity) && (got[1]?.offset ?? 0) > first.offset);
  });
});
