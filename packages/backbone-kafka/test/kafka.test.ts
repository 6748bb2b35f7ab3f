/**
 * KafkaBackbone against the real broker (scripts/services.sh start): fan-out between two nodes,
 * per-channel order, offsets, exact recovery, epochs, and records written by an outside producer
 * with the documented envelope. Each run uses its own topic, so runs never see each other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Producer } from '@platformatic/kafka';
import { BackboneUnavailableError, type Publication, type PublishOptions } from '@gatehouse/backbone-kit';
import { serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { createKafkaBackbone, partitionFor, type KafkaBackbone } from '../src/index.js';
import { BROKERS, deleteTopics, Recorder, uniqueChannel, uniqueTopic, WAIT } from './support.js';

const skip = await serviceSkipReason('kafka', 'backbone-kafka: kafka.test');
const KEEP: PublishOptions = { historySize: 1000, historyTtlSeconds: 3600 };
const PARTITIONS = 4;

/** Channels (from `label`) that all land in one partition, so they share a log. */
function channelsInOnePartition(label: string, n: number): string[] {
  const first = uniqueChannel(`${label}-0`);
  const p = partitionFor(first, PARTITIONS);
  const out = [first];
  for (let i = 1; out.length < n; i++) {
    const c = uniqueChannel(`${label}-${i}`);
    if (partitionFor(c, PARTITIONS) === p) out.push(c);
  }
  return out;
}

describe('KafkaBackbone on a real broker', { skip: skip ?? false }, () => {
  const topic = uniqueTopic('main');
  const recA = new Recorder();
  const recB = new Recorder();
  let a: KafkaBackbone;
  let b: KafkaBackbone;
  let outside: Producer;
  const malformedSeen: string[] = [];

  before(async () => {
    a = createKafkaBackbone(BROKERS, {
      topic,
      partitions: PARTITIONS,
      fetchMaxWaitMs: 200,
      onMalformed: (why, key) => malformedSeen.push(`${key}: ${why}`),
    });
    b = createKafkaBackbone(BROKERS, { topic, partitions: PARTITIONS, fetchMaxWaitMs: 200 });
    await Promise.all([a.start(recA), b.start(recB)]);
    outside = new Producer({ clientId: 'gatehouse-test-outside', bootstrapBrokers: BROKERS, acks: -1 });
  });

  after(async () => {
    await Promise.allSettled([a?.close(), b?.close(), outside?.close()]);
    await deleteTopics(BROKERS, [topic]);
  });

  test('declares a durable, shared, sequenced backbone with non-contiguous offsets and durable records', () => {
    assert.equal(a.kind, 'kafka');
    assert.deepEqual(a.capabilities, {
      sequenced: true,
      history: true,
      contiguousOffsets: false,
      durable: true,
      shared: true,
      durableRecords: true,
    });
    assert.equal(a.state, 'up');
    assert.deepEqual(recA.states, ['up']);
  });

  test('a publication reaches both nodes with the offset publish returned', async () => {
    const ch = uniqueChannel('fanout');
    await Promise.all([a.subscribe(ch), b.subscribe(ch)]);
    const sent = await a.publish(ch, '{"hello":"kafka"}', KEEP);
    assert.ok(sent.offset >= 1, 'offsets start at 1');
    assert.match(sent.epoch, /^[0-9a-f-]{36}:\d+$/, 'epoch is topic id and partition');
    for (const [who, rec] of [
      ['a', recA],
      ['b', recB],
    ] as const) {
      const [got] = await rec.waitCount(ch, 1, who, WAIT);
      assert.deepEqual(got, sent, `node ${who} received exactly what publish returned`);
    }
  });

  test('keeps per-channel order and matching offsets under concurrent publishes on several channels', async () => {
    const channels = channelsInOnePartition('order', 3);
    await Promise.all(channels.flatMap((c) => [a.subscribe(c), b.subscribe(c)]));
    const n = 60;
    const calls: Promise<Publication>[] = [];
    for (let i = 0; i < n; i++) {
      for (const c of channels) calls.push((i % 2 ? b : a).publish(c, JSON.stringify({ i }), KEEP));
    }
    const sent = await Promise.all(calls);
    for (const c of channels) {
      const mine = sent.filter((p) => p.channel === c);
      for (const [who, rec] of [
        ['a', recA],
        ['b', recB],
      ] as const) {
        const got = await rec.waitCount(c, n, who, WAIT);
        assert.equal(got.length, n, `node ${who} got no duplicates on ${c}`);
        const offsets = got.map((p) => p.offset);
        assert.deepEqual(
          offsets,
          [...offsets].sort((x, y) => x - y),
          `node ${who} got ${c} in offset order`,
        );
        assert.deepEqual(
          got.map((p) => [p.offset, p.data]),
          [...mine].sort((x, y) => x.offset - y.offset).map((p) => [p.offset, p.data]),
          `node ${who}: delivered offsets and data match what publish returned`,
        );
      }
      // Calls from one node resolve in call order, so each node's own publications rise.
      for (const node of [0, 1]) {
        const own = mine.filter((p) => (JSON.parse(p.data) as { i: number }).i % 2 === node).map((p) => p.offset);
        assert.deepEqual(
          own,
          [...own].sort((x, y) => x - y),
          "one node's publishes keep their call order",
        );
      }
    }
  });

  test('recovers exactly the missed publications of one channel out of a shared partition', async () => {
    const [ch, other] = channelsInOnePartition('recover', 2) as [string, string];
    const sent: Publication[] = [];
    for (let i = 0; i < 8; i++) {
      sent.push(await a.publish(ch, JSON.stringify({ i }), KEEP));
      await b.publish(other, JSON.stringify({ noise: i }), KEEP);
    }
    const seen = sent[2] as Publication;
    const h = await b.history(ch, { epoch: seen.epoch, offset: seen.offset }, 100);
    assert.equal(h.complete, true);
    assert.deepEqual(h.publications, sent.slice(3), 'exactly the five publications after the one seen, in order');
    assert.deepEqual([h.epoch, h.offset], [seen.epoch, (sent[7] as Publication).offset]);

    const pos = await a.history(ch, undefined, 100);
    assert.deepEqual(
      [pos.epoch, pos.offset, pos.complete],
      [seen.epoch, (sent[7] as Publication).offset, true],
      "position is the channel's newest offset, not the partition's",
    );

    const tooMany = await b.history(ch, { epoch: seen.epoch, offset: (sent[0] as Publication).offset }, 3);
    assert.equal(tooMany.complete, false, 'seven missed publications do not fit a limit of 3');
  });

  test('answers complete:false for an unknown epoch, with the current position', async () => {
    const ch = uniqueChannel('epoch');
    const sent = await a.publish(ch, '{"x":1}', KEEP);
    const h = await b.history(ch, { epoch: 'not-this-topic:0', offset: 0 }, 100);
    assert.deepEqual(h, { epoch: sent.epoch, offset: sent.offset, publications: [], complete: false });
    const beyond = await b.history(ch, { epoch: sent.epoch, offset: sent.offset + 1_000_000 }, 100);
    assert.equal(beyond.complete, false, 'a position past the end of the log is not recoverable');
  });

  test('delivers a record written by an outside producer with the documented envelope', async () => {
    const ch = uniqueChannel('outside');
    await Promise.all([a.subscribe(ch), b.subscribe(ch)]);
    const partition = partitionFor(ch, PARTITIONS);
    const value = JSON.stringify({ v: 1, channel: ch, ts: 1_700_000_000_000, data: { from: 'billing', n: [1, 2] } });
    const res = await outside.send({ messages: [{ topic, partition, key: Buffer.from(ch), value: Buffer.from(value) }] });
    const kafkaOffset = res.offsets?.[0]?.offset;
    assert.ok(kafkaOffset !== undefined);
    for (const [who, rec] of [
      ['a', recA],
      ['b', recB],
    ] as const) {
      const [got] = await rec.waitCount(ch, 1, who, WAIT);
      assert.deepEqual(got, {
        channel: ch,
        epoch: (await a.history(ch, undefined, 0)).epoch,
        offset: Number(kafkaOffset) + 1,
        ts: 1_700_000_000_000,
        data: '{"from":"billing","n":[1,2]}',
      });
    }
    const h = await a.history(ch, { epoch: (recA.of(ch)[0] as Publication).epoch, offset: 0 }, 10);
    assert.deepEqual(h.publications, recA.of(ch), 'history serves the outside record like any other');
  });

  test('counts and drops malformed and misrouted records, and keeps delivering', async () => {
    const ch = uniqueChannel('malformed');
    await a.subscribe(ch);
    const partition = partitionFor(ch, PARTITIONS);
    const wrong = (partition + 1) % PARTITIONS;
    const before = a.stats();
    const bad = [
      'not json',
      '[1,2]',
      JSON.stringify({ v: 2, channel: ch, data: 1 }),
      JSON.stringify({ v: 1, channel: 'kafka-test:someone-else', data: 1 }),
      JSON.stringify({ v: 1, channel: ch }),
      JSON.stringify({ v: 1, channel: ch, ts: 'yesterday', data: 1 }),
    ];
    await outside.send({ messages: bad.map((v) => ({ topic, partition, key: Buffer.from(ch), value: Buffer.from(v) })) });
    await outside.send({
      messages: [
        { topic, partition: wrong, key: Buffer.from(ch), value: Buffer.from(JSON.stringify({ v: 1, channel: ch, data: 'misrouted' })) },
      ],
    });
    // No ts: the record's own timestamp stands in.
    await outside.send({
      messages: [{ topic, partition, key: Buffer.from(ch), value: Buffer.from(JSON.stringify({ v: 1, channel: ch, data: 'good' })) }],
    });
    const [got] = await recA.waitCount(ch, 1, 'a', WAIT);
    assert.equal(got?.data, '"good"');
    assert.ok(got && Math.abs(got.ts - Date.now()) < 600_000, 'ts falls back to the record timestamp');
    await waitFor(
      'the malformed and misrouted counters',
      () => a.stats().malformed - before.malformed === bad.length && a.stats().misrouted - before.misrouted === 1,
    );
    assert.equal(recA.of(ch).length, 1, 'nothing but the good record was delivered');
    assert.deepEqual(
      malformedSeen.filter((m) => m.startsWith(`${ch}: `)).map((m) => m.slice(ch.length + 2)),
      [
        'not JSON',
        'not a JSON object',
        'unsupported envelope version 2',
        '"channel" does not match where the envelope arrived',
        '"data" is missing',
        '"ts" must be a number of ms since the Unix epoch',
      ],
      'onMalformed heard why each record was dropped, in log order',
    );
  });

  test('a handler that throws is counted and does not stop delivery', async () => {
    const ch = uniqueChannel('throws');
    const kb = createKafkaBackbone(BROKERS, { topic, partitions: PARTITIONS, fetchMaxWaitMs: 200 });
    const got: string[] = [];
    await kb.start({
      onPublication: (p) => {
        got.push(p.data);
        if (got.length === 1) throw new Error('handler bug');
      },
      onStateChange: () => {},
      onControl: () => {},
    });
    try {
      await kb.subscribe(ch);
      await a.publish(ch, '1', KEEP);
      await a.publish(ch, '2', KEEP);
      await waitFor('both publications at the node with the throwing handler', () => got.length === 2);
      assert.equal(kb.stats().handlerErrors, 1);
      assert.equal(kb.state, 'up');
    } finally {
      await kb.close();
    }
  });

  test('rejects bad input with clear errors', async () => {
    const errorsBefore = a.stats().publishErrors;
    await assert.rejects(a.publish('no-namespace', '{}', KEEP), TypeError);
    await assert.rejects(a.publish('ns:ok', '{not json', KEEP), /not valid JSON/);
    await assert.rejects(a.publish('ns:ok', '1', { historySize: -1, historyTtlSeconds: 0 }), TypeError);
    await assert.rejects(a.publish('ns:ok', JSON.stringify('x'.repeat(1_100_000)), KEEP), RangeError);
    assert.equal(a.stats().publishErrors - errorsBefore, 4, 'every rejected publish is counted');
    await assert.rejects(a.subscribe('bad channel'), TypeError);
    await assert.rejects(a.history('ns:ok', { epoch: 'e', offset: -1 }, 10), TypeError);
    await assert.rejects(a.history('ns:ok', undefined, 1.5), TypeError);
  });

  test('unsubscribe stops delivery while the other node keeps receiving', async () => {
    const ch = uniqueChannel('unsub');
    const sync = uniqueChannel('unsub-sync');
    await Promise.all([a.subscribe(ch), b.subscribe(ch), a.subscribe(sync)]);
    await b.publish(ch, '1', KEEP);
    await recA.waitCount(ch, 1, 'a', WAIT);
    await a.unsubscribe(ch);
    await b.publish(ch, '2', KEEP);
    await b.publish(sync, '3', KEEP);
    await recB.waitCount(ch, 2, 'b', WAIT);
    await recA.waitCount(sync, 1, 'a', WAIT);
    assert.equal(recA.of(ch).length, 1, 'node a got nothing after unsubscribing');
  });

  test('a recreated topic is a new epoch, and the backbone follows it', async () => {
    const t = uniqueTopic('recreate');
    const rec = new Recorder();
    const kb = createKafkaBackbone(BROKERS, { topic: t, partitions: 2, fetchMaxWaitMs: 200, reconnectMaxMs: 500 });
    try {
      await kb.start(rec);
      const ch = uniqueChannel('recreate');
      await kb.subscribe(ch);
      const first = await kb.publish(ch, '"old"', KEEP);
      await rec.waitCount(ch, 1, 'node', WAIT);
      await deleteTopics(BROKERS, [t]);
      // The backbone notices (the live fetch fails), recreates the topic and reads the new one.
      // Publishes may fail meanwhile; the first that lands in the new topic carries a new epoch.
      const second = await waitFor(
        'a publish into the recreated topic',
        async () => {
          const p = kb.state === 'up' ? await kb.publish(ch, '"new"', KEEP).catch(() => undefined) : undefined;
          return p && p.epoch !== first.epoch ? p : undefined;
        },
        30_000,
        200,
      );
      await waitFor(
        'delivery from the recreated topic',
        () => rec.of(ch).some((p) => p.epoch === second.epoch && p.offset === second.offset),
        30_000,
      );
      const h = await kb.history(ch, { epoch: first.epoch, offset: first.offset }, 10);
      assert.equal(h.complete, false, 'recovery from the old epoch is a reported gap');
      assert.equal(h.epoch, second.epoch);
    } finally {
      await kb.close();
      await deleteTopics(BROKERS, [t]);
    }
  });

  test('publish, subscribe and history reject once closed; close is idempotent', async () => {
    const kb = createKafkaBackbone(BROKERS, { topic, partitions: PARTITIONS });
    const rec = new Recorder();
    await kb.start(rec);
    await kb.close();
    await kb.close();
    assert.equal(kb.state, 'closed');
    assert.deepEqual(rec.states, ['up', 'closed']);
    await assert.rejects(kb.publish('ns:x', '1', KEEP), BackboneUnavailableError);
    await assert.rejects(kb.subscribe('ns:x'), BackboneUnavailableError);
    await assert.rejects(kb.history('ns:x', undefined, 1), BackboneUnavailableError);
  });
});
