/**
 * What the NATS backbones add to the shared control-plane suite: where control traffic and records
 * live on the server, what a stranger writing there achieves (nothing but a counter), and how the
 * records bucket stays bounded. Runs against the shared NATS server with private prefixes and
 * streams, deleted afterwards.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { encodeControl, encodeRecord } from '@gatehouse/backbone-kit';
import { RecordingHandler } from '@gatehouse/conformance';
import { SERVICES, serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { controlSubject, JetStreamBackbone, NatsBackbone, recordKvKey, recordsBucket } from '../src/index.js';
import { sharedServerPlace } from './support.js';

const url = `nats://${SERVICES.nats.host}:${SERVICES.nats.port}`;
const skip = await serviceSkipReason('nats', 'nats control plane');
const KEEP = { historySize: 100, historyTtlSeconds: 600 };

describe('nats control plane on the server', { skip: skip ?? false }, () => {
  const { prefix, stream, raw } = sharedServerPlace(url);

  test('control travels on <prefix>~control, never under <prefix>.>, and the stream stores none of it', async () => {
    const js = new JetStreamBackbone({ servers: [url], stream, subjectPrefix: prefix, storage: 'memory' });
    const rec = new RecordingHandler();
    await js.start(rec);
    const onControl: string[] = [];
    const underPrefix: string[] = [];
    const ctl = raw().subscribe(controlSubject(prefix), { callback: (_e, m) => void onControl.push(m.string()) });
    const data = raw().subscribe(`${prefix}.>`, { callback: (_e, m) => void underPrefix.push(m.subject) });
    await raw().flush();
    try {
      assert.equal(controlSubject(prefix), `${prefix}~control`);
      const jsm = await jetstreamManager(raw());
      const stored = (await jsm.streams.info(stream)).state.messages;
      await js.sendControl({ type: 'test.where', from: 'n1', data: '{"n":1}' });
      await rec.waitControl('own control message', (m) => m.type === 'test.where', 10_000);
      await waitFor('the raw control subscriber to see it', () => onControl.length === 1);
      assert.deepEqual(JSON.parse(onControl[0] as string), { v: 1, type: 'test.where', from: 'n1', data: { n: 1 } });
      // A publication after the control message: once it is seen under the prefix, anything the
      // control message would have put there has had its chance.
      const pub = await js.publish('sync:x', '{}', KEEP);
      await waitFor('the sync publication under the prefix', () => underPrefix.length >= 1);
      assert.deepEqual(underPrefix, [`${prefix}.sync.x`], 'only the data subject appears under the prefix');
      assert.equal((await jsm.streams.info(stream)).state.messages, stored + 1, 'the stream stored the publication and nothing else');
      assert.equal(pub.offset, (await jsm.streams.info(stream)).state.last_seq);
    } finally {
      ctl.unsubscribe();
      data.unsubscribe();
      await js.close();
    }
  });

  test('malformed control messages are counted and dropped; a good one sent by anyone is delivered', async () => {
    const reasons: string[] = [];
    const core = new NatsBackbone({ servers: [url], subjectPrefix: prefix, onMalformed: (r) => reasons.push(r) });
    const rec = new RecordingHandler();
    await core.start(rec);
    try {
      const hostile = [
        'not json',
        '[1]',
        JSON.stringify({ v: 2, type: 'test.bad', from: 'x', data: 1 }),
        JSON.stringify({ v: 1, type: 'Bad Type', from: 'x', data: 1 }),
        JSON.stringify({ v: 1, type: 'test.bad', from: '', data: 1 }),
        JSON.stringify({ v: 1, type: 'test.bad', from: 'x' }),
        JSON.stringify({ v: 1, type: 'test.bad', from: 'x', data: 'y'.repeat(70_000) }),
      ];
      for (const text of hostile) raw().publish(controlSubject(prefix), text);
      raw().publish(controlSubject(prefix), encodeControl({ type: 'test.good', from: 'outside', to: 'n2', data: '{"ok":true}' }));
      await raw().flush();
      const got = await rec.waitControl('the well-formed message', (m) => m.type === 'test.good', 10_000);
      assert.deepEqual(got, { type: 'test.good', from: 'outside', to: 'n2', data: '{"ok":true}' });
      await waitFor('every hostile message counted', () => core.stats().controlMalformed === hostile.length);
      assert.equal(reasons.length, hostile.length);
      assert.ok(
        reasons.every((r) => r.startsWith('control message: ')),
        reasons.join('; '),
      );
      assert.equal(rec.controls.length, 1, 'nothing malformed reached the handler');
      assert.equal(core.stats().malformed, 0, 'data-plane counter untouched');
    } finally {
      await core.close();
    }
  });

  test('nested subject prefixes are separate fleets: neither hears the other', async () => {
    const outer = new NatsBackbone({ servers: [url], subjectPrefix: prefix });
    const inner = new NatsBackbone({ servers: [url], subjectPrefix: `${prefix}.inner` });
    const ro = new RecordingHandler();
    const ri = new RecordingHandler();
    await Promise.all([outer.start(ro), inner.start(ri)]);
    try {
      // The outer fleet's data subject for this channel is <prefix>.inner.control: it must not be
      // the inner fleet's control subject either.
      await outer.subscribe('inner:control');
      await outer.sendControl({ type: 'test.nested', from: 'outer', data: '1' });
      await inner.sendControl({ type: 'test.nested', from: 'inner', data: '2' });
      await ro.waitControl('the outer fleet hears itself', (m) => m.from === 'outer', 10_000);
      await ri.waitControl('the inner fleet hears itself', (m) => m.from === 'inner', 10_000);
      // Sync: a second message of each fleet arrived, so a stray first one would have too.
      await outer.sendControl({ type: 'test.nested', from: 'outer', data: '3' });
      await inner.sendControl({ type: 'test.nested', from: 'inner', data: '4' });
      await ro.waitControl('the outer sync', (m) => m.data === '3', 10_000);
      await ri.waitControl('the inner sync', (m) => m.data === '4', 10_000);
      assert.deepEqual(
        ro.controls.map((m) => m.from),
        ['outer', 'outer'],
      );
      assert.deepEqual(
        ri.controls.map((m) => m.from),
        ['inner', 'inner'],
      );
      assert.deepEqual(ro.of('inner:control'), [], 'control traffic never arrives as a publication');
      assert.equal(outer.stats().malformed, 0, 'nor on a data subject at all (it would be counted there)');
    } finally {
      await Promise.all([outer.close(), inner.close()]);
    }
  });

  test('records: expired ones are purged from the bucket as they are read; junk in the bucket is skipped and counted', async () => {
    const reasons: string[] = [];
    const js = new JetStreamBackbone({
      servers: [url],
      stream,
      subjectPrefix: prefix,
      storage: 'memory',
      onMalformed: (r) => reasons.push(r),
    });
    await js.start(new RecordingHandler());
    try {
      const kind = 'test.purge';
      const kv = await new Kvm(raw()).open(recordsBucket(stream));
      const listed = async () => {
        const keys: string[] = [];
        for await (const k of await kv.keys(`test=purge.*`)) keys.push(k);
        return keys.sort();
      };
      const live = { key: 'live', value: '1', expiresAt: Date.now() + 300_000 };
      await js.putRecord(kind, live);
      await js.putRecord(kind, { key: 'gone', value: '2', expiresAt: Date.now() - 1 });
      // Written by a stranger: not a record envelope; and a record filed under another key's name.
      await kv.put(recordKvKey(kind, 'junk'), 'not json');
      await kv.put(recordKvKey(kind, 'moved'), encodeRecord({ key: 'other', value: '3', expiresAt: Date.now() + 300_000 }));
      assert.deepEqual(
        await listed(),
        [recordKvKey(kind, 'gone'), recordKvKey(kind, 'junk'), recordKvKey(kind, 'live'), recordKvKey(kind, 'moved')].sort(),
      );

      assert.deepEqual(await js.records(kind), [live]);
      assert.equal(js.stats().recordsMalformed, 2);
      assert.equal(reasons.length, 2);
      await waitFor('the expired record to be purged from the bucket', async () => !(await listed()).includes(recordKvKey(kind, 'gone')));
      assert.ok((await listed()).includes(recordKvKey(kind, 'live')));
    } finally {
      await js.close();
    }
  });

  test('records: any key round-trips; a record outliving the bucket age is refused naming expiresAt', async () => {
    const js = new JetStreamBackbone({ servers: [url], stream, subjectPrefix: prefix, storage: 'memory', recordsMaxAgeSeconds: 3600 });
    await js.start(new RecordingHandler());
    try {
      const kind = 'test.keys';
      const keys = ['a.b', 'with space', 'ünïcødé ✓', '*', '>', '$x', '/=+-_', 'k'.repeat(256)];
      const expiresAt = Date.now() + 60_000;
      for (const key of keys) await js.putRecord(kind, { key, value: JSON.stringify(key), expiresAt });
      const got = await js.records(kind);
      assert.deepEqual(got.map((r) => r.key).sort(), [...keys].sort());
      assert.ok(got.every((r) => JSON.parse(r.value) === r.key && r.expiresAt === expiresAt));
      await assert.rejects(js.putRecord(kind, { key: 'far', value: '1', expiresAt: Date.now() + 2 * 3600_000 }), (err: Error) => {
        assert.equal(err.name, 'BackboneInputError');
        assert.match(err.message, /expiresAt .* recordsMaxAgeSeconds \(3600\)/);
        return true;
      });
    } finally {
      await js.close();
    }
  });
});

test('records options are checked at construction, naming the field', () => {
  assert.throws(() => new JetStreamBackbone({ servers: ['nats://x'], recordsMaxAgeSeconds: -1 }), /"recordsMaxAgeSeconds"/);
  assert.throws(
    () => new JetStreamBackbone({ servers: ['nats://x'], recordsMaxBytes: 1000 }),
    /"recordsMaxBytes" must be an integer from 1048576/,
  );
  const js = new JetStreamBackbone({ servers: ['nats://x'] });
  assert.deepEqual([js.options.recordsMaxAgeSeconds, js.options.recordsMaxBytes], [30 * 86_400, 64 * 1024 ** 2]);
  assert.equal(recordsBucket(js.options.stream), 'GATEHOUSE_records');
});
