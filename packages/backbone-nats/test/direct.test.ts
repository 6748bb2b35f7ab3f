/**
 * Publishing from outside any gateway, as docs/backbones.md describes it, and defensive decoding
 * of whatever arrives on a channel's subject. Runs against the shared NATS server with a private
 * subject prefix and stream.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { RecordingHandler } from '@gatehouse/conformance';
import { SERVICES, serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { encodeEnvelope } from '@gatehouse/backbone-kit';
import { channelToSubject, JetStreamBackbone, NatsBackbone } from '../src/index.js';
import { sharedServerPlace } from './support.js';

const url = `nats://${SERVICES.nats.host}:${SERVICES.nats.port}`;
const skip = await serviceSkipReason('nats', 'nats direct publishing');
const KEEP = { historySize: 100, historyTtlSeconds: 600 };

const HOSTILE = (channel: string) => [
  'not json',
  '[1]',
  JSON.stringify({ v: 2, channel, ts: 1, data: 1 }),
  JSON.stringify({ v: 1, channel: 'direct:elsewhere', ts: 1, data: 1 }),
  JSON.stringify({ v: 1, channel, ts: 'yesterday', data: 1 }),
  JSON.stringify({ v: 1, channel, ts: 1 }),
];

describe('publishing straight into NATS', { skip: skip ?? false }, () => {
  const { prefix, stream, raw } = sharedServerPlace(url);

  test('nats core: an envelope sent to the mapped subject is delivered with epoch "" and offset 0', async () => {
    const reasons: string[] = [];
    const gw = new NatsBackbone({ servers: [url], subjectPrefix: prefix, onMalformed: (r) => reasons.push(r) });
    const rec = new RecordingHandler();
    await gw.start(rec);
    try {
      const ch = 'direct:news.world';
      await gw.subscribe(ch);
      const subject = channelToSubject(prefix, ch);
      assert.equal(subject, `${prefix}.direct.news%2Eworld`);
      for (const text of HOSTILE(ch)) raw().publish(subject, text);
      raw().publish(subject, encodeEnvelope({ channel: ch, epoch: '', offset: 0, ts: 1_700_000_000_000, data: '{"headline":"hello"}' }));
      // A sender that fills in offset/epoch cannot make an unsequenced backbone look sequenced.
      raw().publish(subject, JSON.stringify({ v: 1, channel: ch, epoch: 'forged', offset: 99, ts: 1_700_000_000_001, data: [1] }));
      await raw().flush();
      const got = await rec.waitCount(ch, 2, 'the gateway', 10_000);
      assert.deepEqual(
        got.map((p) => [p.epoch, p.offset, p.ts, p.data]),
        [
          ['', 0, 1_700_000_000_000, '{"headline":"hello"}'],
          ['', 0, 1_700_000_000_001, '[1]'],
        ],
      );
      await waitFor('every hostile message counted', () => gw.stats().malformed === HOSTILE(ch).length);
      assert.equal(reasons.length, HOSTILE(ch).length);
      await assert.rejects(gw.publish('bad channel', '{}', KEEP), /invalid channel name/);
    } finally {
      await gw.close();
    }
  });

  test('a handler that throws (publication or control message) is counted and does not stop delivery', async () => {
    const seen: string[] = [];
    const fragile = (data: string) => {
      seen.push(data);
      if (data === '1') throw new Error('handler bug');
    };
    const gw = new NatsBackbone({ servers: [url], subjectPrefix: prefix });
    await gw.start({ onStateChange: () => {}, onControl: (m) => fragile(m.data), onPublication: (p) => fragile(p.data) });
    try {
      await gw.subscribe('direct:fragile');
      await gw.publish('direct:fragile', '1', KEEP);
      await gw.publish('direct:fragile', '2', KEEP);
      await waitFor('the publication after the throwing one', () => seen.length === 2);
      assert.equal(gw.stats().handlerErrors, 1);
      await gw.sendControl({ type: 'test.fragile', from: 'n1', data: '1' });
      await gw.sendControl({ type: 'test.fragile', from: 'n1', data: '2' });
      await waitFor('the control message after the throwing one', () => seen.length === 4);
      assert.equal(gw.stats().handlerErrors, 2);
    } finally {
      await gw.close();
    }
  });

  test('jetstream: a stored value published by a service gets the stream sequence and epoch', async () => {
    const gw = new JetStreamBackbone({ servers: [url], stream, subjectPrefix: prefix, storage: 'memory' });
    const rec = new RecordingHandler();
    await gw.start(rec);
    try {
      const ch = 'direct:orders';
      await gw.subscribe(ch);
      const own = await gw.publish(ch, '{"from":"gateway"}', KEEP);
      const js = jetstream(raw());
      const subject = channelToSubject(prefix, ch);
      for (const text of HOSTILE(ch)) await js.publish(subject, text);
      const ack = await js.publish(subject, JSON.stringify({ v: 1, channel: ch, ts: Date.now(), data: { from: 'service' } }));
      const got = await rec.waitCount(ch, 2, 'the gateway', 10_000);
      assert.deepEqual(
        got.map((p) => [p.offset, JSON.parse(p.data).from]),
        [
          [own.offset, 'gateway'],
          [ack.seq, 'service'],
        ],
      );
      assert.ok(got.every((p) => p.epoch === gw.currentEpoch && p.epoch.length > 0));
      await waitFor('every hostile message counted', () => gw.stats().malformed === HOSTILE(ch).length);

      // Recovery serves the service's publication too; a message without the retention headers
      // falls under the stream's limits only.
      const h = await gw.history(ch, { epoch: own.epoch, offset: own.offset }, 100);
      assert.equal(h.complete, true);
      assert.equal(h.offset, ack.seq);
      assert.deepEqual(
        h.publications.map((p) => p.offset),
        [ack.seq],
        'hostile messages are skipped in history as well',
      );
    } finally {
      await gw.close();
    }
  });
});

test('options are checked at construction, naming the field', () => {
  assert.throws(() => new NatsBackbone({ servers: [] }), /"servers" must be a non-empty array/);
  assert.throws(() => new NatsBackbone({ servers: ['redis://x:1'] }), /unsupported scheme "redis:"/);
  assert.throws(() => new NatsBackbone({ servers: ['nats://u:p@x:1'] }), /credentials/);
  assert.throws(() => new NatsBackbone({ servers: ['nats://x'], subjectPrefix: 'a.*' }), /"subjectPrefix"/);
  assert.throws(() => new NatsBackbone({ servers: ['nats://x', 'tls://y'] }), /mixes tls/);
  assert.throws(() => new JetStreamBackbone({ servers: ['nats://x'], stream: 'a.b' }), /"stream"/);
  assert.throws(() => new JetStreamBackbone({ servers: ['nats://x'], maxAgeSeconds: -1 }), /"maxAgeSeconds"/);
  assert.throws(() => new JetStreamBackbone({ servers: ['nats://x'], storage: 'disk' as 'file' }), /"storage"/);
  const js = new JetStreamBackbone({ servers: ['jetstream://127.0.0.1:4222'] });
  assert.deepEqual([js.options.stream, js.options.subjectPrefix, js.options.servers[0]], ['GATEHOUSE', 'gatehouse', '127.0.0.1:4222']);
});
