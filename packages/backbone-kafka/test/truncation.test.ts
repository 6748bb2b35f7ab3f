/**
 * The broker loses records it acknowledged and its log restarts below positions already delivered
 * (an unclean restart whose log recovery truncated the tail). New records then reuse those
 * offsets: the adapter must move the partition to a new epoch, so the core reports a gap, and
 * must never deliver a reused offset under the old epoch (the core would drop it as a duplicate:
 * a silent loss). Deterministic: the private broker is killed, its segment file is cut back to a
 * size recorded earlier, and it is started again, so its log recovery finds the shorter log.
 */
import assert from 'node:assert/strict';
import { statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { PublishOptions } from '@gatehouse/backbone-kit';
import { serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { BrokerRig, privateBrokerAvailable } from './private-broker.js';
import { uniqueChannel, uniqueTopic, WAIT } from './support.js';

const skip = await serviceSkipReason('kafka', 'backbone-kafka: truncation.test (needs Java and .services/kafka/lib)', async () =>
  privateBrokerAvailable(),
);
const KEEP: PublishOptions = { historySize: 100, historyTtlSeconds: 3600 };

describe('KafkaBackbone when the broker restarts with a truncated log', { skip: skip ?? false }, () => {
  let rig: BrokerRig;
  const topic = uniqueTopic('truncation');
  before(async () => {
    rig = await BrokerRig.start({ topic, partitions: 1, requestTimeoutMs: 3000 });
  });
  after(() => rig?.close());

  test('switches the partition to a new epoch, reports old positions incomplete, never reuses an old offset', async () => {
    const { broker, pub, sub, recPub, recSub } = rig;
    const ch = uniqueChannel('truncation');
    await Promise.all([sub.subscribe(ch), pub.subscribe(ch)]);
    const segment = join(broker.dir, 'data', `${topic}-0`, '00000000000000000000.log');
    const kept = [];
    for (const d of ['"a1"', '"a2"', '"a3"']) kept.push(await pub.publish(ch, d, KEEP));
    await recSub.waitCount(ch, 3, 'subscriber', WAIT);
    // Acknowledged with acks=all: the records are in the segment file (page cache) by now.
    const keptBytes = statSync(segment).size;
    const lost = [];
    for (const d of ['"b1"', '"b2"', '"b3"']) lost.push(await pub.publish(ch, d, KEEP));
    await recSub.waitCount(ch, 6, 'subscriber', WAIT);
    const old = (kept[0] as { epoch: string }).epoch;
    assert.deepEqual(
      recSub.of(ch).map((p) => [p.epoch, p.offset]),
      [...kept, ...lost].map((p) => [old, p.offset]),
    );
    assert.ok(statSync(segment).size > keptBytes);

    await broker.kill('SIGKILL');
    await Promise.all([recPub.state('down', 'publisher'), recSub.state('down', 'subscriber')]);
    // What an unclean shutdown loses when the tail never reached the disk.
    truncateSync(segment, keptBytes);
    await broker.start();
    await Promise.all([recPub.state('up', 'publisher', 60_000), recSub.state('up', 'subscriber', 60_000)]);
    assert.equal(sub.stats().resets, 1, 'the subscriber saw the log end below its position');
    assert.equal(pub.stats().resets, 1, 'so did the publisher');

    // The producer may need a moment to learn the broker is back; retry within a deadline.
    let why: unknown;
    const next = await waitFor(
      'a publish after the restart to be accepted',
      () => pub.publish(ch, '"c1"', KEEP).catch((err: unknown) => void (why = err)),
      WAIT,
      100,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}; last publish error: ${String(why)} ${String((why as { cause?: unknown })?.cause)}`, { cause: why });
    });
    assert.notEqual(next.epoch, old, 'a new epoch for the partition');
    assert.equal(next.offset, (kept[2] as { offset: number }).offset + 1, 'the first lost offset is reused by the new record');
    const got = await recSub.waitCount(ch, 7, 'subscriber', WAIT);
    assert.deepEqual([got[6]?.epoch, got[6]?.offset, got[6]?.data], [next.epoch, next.offset, '"c1"'], 'delivered under the new epoch');
    for (const p of got.slice(0, 6)) assert.equal(p.epoch, old, 'only what was delivered before carries the old epoch');

    const h = await sub.history(ch, { epoch: old, offset: (lost[2] as { offset: number }).offset }, 10);
    assert.deepEqual(
      [h.complete, h.epoch, h.offset],
      [false, next.epoch, next.offset],
      'a position in the old epoch cannot be recovered: a gap',
    );
    const h2 = await sub.history(ch, { epoch: next.epoch, offset: next.offset - 1 }, 10);
    assert.equal(h2.complete, true);
    assert.deepEqual(
      h2.publications.map((p) => [p.epoch, p.offset, p.data]),
      [[next.epoch, next.offset, '"c1"']],
    );
    console.log(JSON.stringify({ oldEpoch: old, newEpoch: next.epoch, reusedOffset: next.offset }));
  });
});
