/**
 * The control plane on the real broker, beyond the shared conformance cases: the topics it
 * creates and their settings, what an outside writer can put there (garbage is counted and
 * dropped, an operator's tombstone deletes a record), no history for control messages, the
 * retention bound on `expiresAt`, and a records read longer than one fetch.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Admin, ConfigResourceTypes, Producer } from '@platformatic/kafka';
import { BackboneInputError, CONTROL_MAX_BYTES, type ControlMessage } from '@gatehouse/backbone-kit';
import { serviceSkipReason, waitFor, withDeadline } from '@gatehouse/testkit';
import {
  CONTROL_RETENTION_MS,
  controlTopicName,
  createKafkaBackbone,
  RECORDS_RETENTION_MS,
  recordsTopicName,
  type KafkaBackbone,
} from '../src/index.js';
import { BROKERS, deleteTopics, Recorder, uniqueTopic, WAIT } from './support.js';

const skip = await serviceSkipReason('kafka', 'backbone-kafka: control.test');
const DAY = 24 * 3_600_000;

/** A control message tagged with an id no other test uses. */
function ping(from: string, label: string): ControlMessage {
  return { type: 'test.ping', from, data: JSON.stringify({ id: `${label}-${randomBytes(4).toString('hex')}` }) };
}

/** The control messages `rec` got with the same data as `msg`. */
function copies(rec: Recorder, msg: ControlMessage): ControlMessage[] {
  return rec.controls.filter((m) => m.data === msg.data);
}

describe('KafkaBackbone control plane on the real broker', { skip: skip ?? false }, () => {
  const topic = uniqueTopic('control');
  const opts = { topic, partitions: 2, fetchMaxWaitMs: 200 };
  const recA = new Recorder();
  const recB = new Recorder();
  let a: KafkaBackbone;
  let b: KafkaBackbone;
  let admin: Admin;
  let outside: Producer;
  const opened: KafkaBackbone[] = [];

  async function node(rec: Recorder, extra: Partial<typeof opts> = {}): Promise<KafkaBackbone> {
    const kb = createKafkaBackbone(BROKERS, { ...opts, ...extra });
    opened.push(kb);
    await withDeadline('a node to start', kb.start(rec), WAIT);
    return kb;
  }

  before(async () => {
    admin = new Admin({ clientId: 'gatehouse-test-admin', bootstrapBrokers: [...BROKERS] });
    outside = new Producer({ clientId: 'gatehouse-test-outside', bootstrapBrokers: [...BROKERS], acks: -1 });
    a = await node(recA);
    b = await node(recB);
  });

  after(async () => {
    await Promise.allSettled(opened.map((kb) => kb.close()));
    await Promise.allSettled([admin?.close(), outside?.close()]);
    await deleteTopics(BROKERS, [topic]);
  });

  async function topicConfig(name: string): Promise<Record<string, string>> {
    const [desc] = await admin.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: name }] });
    return Object.fromEntries((desc?.configs ?? []).map((c) => [c.name, c.value ?? '']));
  }

  test('creates one-partition control and records topics next to the data topic, with their settings', async () => {
    // The shared broker has auto.create.topics.enable=false: these exist because start made them.
    const md = await admin.metadata({ topics: [controlTopicName(topic), recordsTopicName(topic)], forceUpdate: true });
    assert.equal(md.topics.get(`${topic}.control`)?.partitionsCount, 1);
    assert.equal(md.topics.get(`${topic}.records`)?.partitionsCount, 1);
    const control = await topicConfig(controlTopicName(topic));
    assert.equal(control['cleanup.policy'], 'delete');
    assert.equal(control['retention.ms'], String(CONTROL_RETENTION_MS));
    const records = await topicConfig(recordsTopicName(topic));
    assert.equal(records['cleanup.policy'], 'compact,delete', 'compacted: the newest record of a key is kept');
    assert.equal(records['retention.ms'], String(RECORDS_RETENTION_MS), 'and deleted by age, so expired records cannot pile up');
    assert.equal(records['message.timestamp.type'], 'LogAppendTime', 'retention runs on broker time');
  });

  test('a control message written by an outsider that is not valid is counted and dropped; reading goes on', async () => {
    const before = b.stats().controlMalformed;
    const bad = [
      'not json',
      '[1]',
      JSON.stringify({ v: 2, type: 'x', from: 'n', data: 1 }),
      JSON.stringify({ v: 1, type: 'Bad Type', from: 'n', data: 1 }),
      JSON.stringify({ v: 1, type: 'ok', from: 'n' }),
      JSON.stringify({ v: 1, type: 'ok', from: 'n', data: 'x'.repeat(CONTROL_MAX_BYTES) }),
    ];
    await outside.send({ messages: bad.map((v) => ({ topic: controlTopicName(topic), partition: 0, value: Buffer.from(v) })) });
    const good = ping('node-a', 'after-garbage');
    await a.sendControl(good);
    await waitFor('the valid message after the garbage at node b', () => copies(recB, good).length === 1, WAIT);
    assert.equal(b.stats().controlMalformed - before, bad.length, 'each invalid message was counted');
    assert.ok(
      recB.controls.every((m) => m.type !== 'ok' && m.type !== 'x'),
      'none of them reached the handler',
    );
    assert.equal(b.state, 'up');
  });

  test('control messages have no history: a node started later hears only what is sent after', async () => {
    const early = ping('node-a', 'early');
    await a.sendControl(early);
    await waitFor('the early message at node b', () => copies(recB, early).length === 1, WAIT);
    const recC = new Recorder();
    await node(recC);
    const late = ping('node-a', 'late');
    await a.sendControl(late);
    await waitFor('the late message at the new node', () => copies(recC, late).length === 1, WAIT);
    assert.equal(copies(recC, early).length, 0, 'the new node got a message sent before it started');
  });

  test('a handler that throws from onControl is counted, and control messages keep coming', async () => {
    const got: ControlMessage[] = [];
    const kb = createKafkaBackbone(BROKERS, opts);
    opened.push(kb);
    await kb.start({
      onPublication: () => {},
      onStateChange: () => {},
      onControl: (m) => {
        if (m.type !== 'test.throw') return;
        got.push(m);
        if (got.length === 1) throw new Error('handler bug');
      },
    });
    await a.sendControl({ type: 'test.throw', from: 'node-a', data: '1' });
    await a.sendControl({ type: 'test.throw', from: 'node-a', data: '2' });
    await waitFor('both messages at the node with the throwing handler', () => got.length === 2, WAIT);
    assert.equal(kb.stats().handlerErrors, 1);
    assert.equal(kb.state, 'up');
  });

  test("records: outside garbage is counted and skipped, an operator's tombstone deletes, an expired write replaces", async () => {
    const kind = `test.outside.${randomBytes(3).toString('hex')}`;
    const later = Date.now() + 600_000;
    await a.putRecord(kind, { key: 'tombstoned', value: '1', expiresAt: later });
    await a.putRecord(kind, { key: 'expired-by-write', value: '2', expiresAt: later });
    await a.putRecord(kind, { key: 'kept', value: '3', expiresAt: later });
    assert.deepEqual((await b.records(kind)).map((r) => r.key).sort(), ['expired-by-write', 'kept', 'tombstoned']);

    const before = b.stats().recordsMalformed;
    const name = recordsTopicName(topic);
    await outside.send({
      messages: [
        { topic: name, partition: 0, key: Buffer.from(`${kind}/garbage`), value: Buffer.from('not json') },
        { topic: name, partition: 0, key: Buffer.from('no-kind-separator'), value: Buffer.from('{}') },
        {
          topic: name,
          partition: 0,
          key: Buffer.from(`${kind}/other-key`),
          value: Buffer.from(JSON.stringify({ v: 1, key: 'kept', value: 9, expiresAt: later })),
        },
        // A tombstone: what an operator's delete (or kafka-console-producer with a null value) leaves.
        { topic: name, partition: 0, key: Buffer.from(`${kind}/tombstoned`) },
      ],
    });
    // Writing a key again with an expiresAt in the past is how a node takes a record back.
    await a.putRecord(kind, { key: 'expired-by-write', value: '2', expiresAt: Date.now() - 1 });
    assert.deepEqual(await b.records(kind), [{ key: 'kept', value: '3', expiresAt: later }]);
    assert.equal(b.stats().recordsMalformed - before, 3, 'garbage, a key without a kind and a key that disagrees with its value');
    const recC = new Recorder();
    const c = await node(recC);
    assert.deepEqual(await c.records(kind), [{ key: 'kept', value: '3', expiresAt: later }], 'a new node reads the same');
  });

  test('records: a read that takes many fetches gets every record, and only the new ones next time', async () => {
    const kind = `test.many.${randomBytes(3).toString('hex')}`;
    const pad = 'x'.repeat(60_000);
    const expiresAt = Date.now() + 600_000;
    const keys = Array.from({ length: 40 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    // 40 x 60 kB: more than one 1 MiB fetch.
    for (const key of keys) await a.putRecord(kind, { key, value: JSON.stringify({ key, pad }), expiresAt });
    const recC = new Recorder();
    const c = await node(recC);
    const first = await c.records(kind);
    assert.deepEqual(first.map((r) => r.key).sort(), keys);
    assert.ok(first.every((r) => JSON.parse(r.value).key === r.key));
    await b.putRecord(kind, { key: 'k00', value: '"replaced"', expiresAt });
    const second = await c.records(kind);
    assert.equal(second.length, keys.length);
    assert.equal(second.find((r) => r.key === 'k00')?.value, '"replaced"');
  });

  test('putRecord refuses an expiresAt the records topic would not keep, by its retention in force', async () => {
    const kind = 'test.retention';
    await assert.rejects(
      a.putRecord(kind, { key: 'too-far', value: '1', expiresAt: Date.now() + RECORDS_RETENTION_MS }),
      (err: unknown) => err instanceof BackboneInputError && /expiresAt/.test(err.message) && /retention\.ms=/.test(err.message),
    );
    await a.putRecord(kind, { key: 'fits', value: '1', expiresAt: Date.now() + RECORDS_RETENTION_MS - 2 * DAY });

    // An operator made a fleet's records topic keep 10 hours: the bound follows the topic.
    const short = uniqueTopic('short-retention');
    try {
      await admin.createTopics({
        topics: [recordsTopicName(short)],
        partitions: 1,
        configs: [
          { name: 'cleanup.policy', value: 'compact,delete' },
          { name: 'retention.ms', value: String(10 * 3_600_000) },
        ],
      });
      const kb = await node(new Recorder(), { topic: short });
      await assert.rejects(kb.putRecord(kind, { key: 'k', value: '1', expiresAt: Date.now() + 10 * 3_600_000 }), /retention\.ms=36000000/);
      await kb.putRecord(kind, { key: 'k', value: '1', expiresAt: Date.now() + 8 * 3_600_000 });
      assert.deepEqual(
        (await kb.records(kind)).map((r) => r.key),
        ['k'],
      );
    } finally {
      await deleteTopics(BROKERS, [short]);
    }
  });
});
