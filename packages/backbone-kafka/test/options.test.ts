/** Options: defaults in one place, nonsense rejected at construction with the field named. */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { BackboneUnavailableError } from '@gatehouse/backbone-kit';
import { createKafkaBackbone, KafkaBackbone } from '../src/index.js';

test('fills in the defaults', () => {
  const kb = createKafkaBackbone(['127.0.0.1:9092']);
  assert.equal(kb.options.topic, 'gatehouse');
  assert.equal(kb.options.partitions, 8);
  assert.equal(kb.options.createTopic, true);
  assert.equal(kb.state, 'connecting');
});

test('accepts kafka:// URLs as well as host:port', () => {
  const kb = createKafkaBackbone(['kafka://127.0.0.1:19092', 'kafka://broker.internal', '[::1]:9092']);
  assert.deepEqual(kb.options.brokers, ['127.0.0.1:19092', 'broker.internal:9092', '[::1]:9092']);
  assert.throws(() => createKafkaBackbone(['kafka://h:1/some/path']), /kafka:\/\/host\[:port\] and nothing more/);
  assert.throws(() => createKafkaBackbone(['kafka://user:pw@h:1']), TypeError);
});

test('rejects bad options with a TypeError naming the field', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ brokers: [] }, /"brokers"/],
    [{ brokers: ['localhost'] }, /"brokers": "localhost"/],
    [{ brokers: ['h:0'] }, /"brokers"/],
    [{ brokers: ['h:1'], topic: 'a topic' }, /"topic"/],
    [{ brokers: ['h:1'], topic: '..' }, /"topic"/],
    [{ brokers: ['h:1'], partitions: 0 }, /"partitions"/],
    [{ brokers: ['h:1'], partitions: 2.5 }, /"partitions"/],
    [{ brokers: ['h:1'], replicationFactor: 0 }, /"replicationFactor"/],
    [{ brokers: ['h:1'], createTopic: 'yes' }, /"createTopic"/],
    [{ brokers: ['h:1'], reconnectMinMs: 500, reconnectMaxMs: 100 }, /"reconnectMaxMs" \(100\) is below "reconnectMinMs" \(500\)/],
    [{ brokers: ['h:1'], fetchMaxWaitMs: 10_000, requestTimeoutMs: 5_000 }, /"fetchMaxWaitMs"/],
    [{ brokers: ['h:1'], maxMessageBytes: 8_000_000 }, /"maxMessageBytes"/],
    [{ brokers: ['h:1'], clientId: 'sp ace' }, /"clientId"/],
  ];
  for (const [opts, why] of cases) {
    assert.throws(
      () => new KafkaBackbone(opts as never),
      (e: unknown) => e instanceof TypeError && why.test(e.message),
      JSON.stringify(opts),
    );
  }
});

test('start rejects with BackboneUnavailableError when no broker answers in time, and the backbone is closed', async () => {
  // A port that accepts and hangs up: nothing Kafka-like is there.
  const server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  try {
    const kb = createKafkaBackbone([`127.0.0.1:${port}`], {
      startTimeoutMs: 700,
      requestTimeoutMs: 600,
      fetchMaxWaitMs: 100,
      reconnectMinMs: 50,
      reconnectMaxMs: 100,
    });
    const states: string[] = [];
    await assert.rejects(
      kb.start({ onPublication: () => {}, onStateChange: (s) => states.push(s), onControl: () => {} }),
      (e: unknown) => e instanceof BackboneUnavailableError && /not usable within 700 ms/.test(e.message),
    );
    assert.equal(kb.state, 'closed');
    await assert.rejects(kb.publish('ns:x', '1', { historySize: 1, historyTtlSeconds: 0 }), BackboneUnavailableError);
  } finally {
    server.close();
  }
});
