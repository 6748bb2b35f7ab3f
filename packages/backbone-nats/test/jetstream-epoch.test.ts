/**
 * A stream deleted and recreated under running gateways is a new history: the backbone adopts the
 * new epoch, reports an outage (so the core tells clients), and its readers continue on the new
 * stream. Old positions no longer recover.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { assertDownThenUp, RecordingHandler } from '@gatehouse/conformance';
import { SERVICES, serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { JetStreamBackbone } from '../src/index.js';
import { deleteStream } from './support.js';

const url = `nats://${SERVICES.nats.host}:${SERVICES.nats.port}`;
const skip = await serviceSkipReason('nats', 'jetstream epoch change');
const KEEP = { historySize: 100, historyTtlSeconds: 600 };

test('a recreated stream means a new epoch, an outage report, and readers on the new stream', { skip: skip ?? false }, async () => {
  const id = randomBytes(4).toString('hex');
  const opts = { servers: [url], stream: `GHTEST_${id}`, subjectPrefix: `ghtest${id}`, storage: 'memory' as const };
  const gw = new JetStreamBackbone(opts);
  const rec = new RecordingHandler();
  await gw.start(rec);
  const admin = await connect({ servers: url });
  try {
    const ch = 'epoch:live';
    await gw.subscribe(ch);
    const before = await gw.publish(ch, '{"n":1}', KEEP);
    await rec.waitCount(ch, 1, 'the gateway', 10_000);

    // An operator deletes and recreates the stream (same name, same subjects).
    const jsm = await jetstreamManager(admin);
    const config = (await jsm.streams.info(opts.stream)).config;
    await jsm.streams.delete(opts.stream);
    await jsm.streams.add({ ...config });

    // The next stream read (here: subscribing another channel) notices.
    await gw.subscribe('epoch:other').catch(() => {});
    await waitFor(
      'the new epoch adopted and the backbone up again',
      () => gw.currentEpoch !== before.epoch && gw.state === 'up' && rec.states.length >= 3,
    );
    assertDownThenUp(rec.states, 'gateway');

    const after = await gw.publish(ch, '{"n":2}', KEEP);
    assert.notEqual(after.epoch, before.epoch);
    assert.equal(after.offset, 1, 'the new stream starts its sequence again');
    const got = await rec.waitCount(ch, 2, 'the gateway', 10_000);
    assert.deepEqual([got[1]?.epoch, got[1]?.offset], [after.epoch, 1], 'the reader follows the new stream');
    const h = await gw.history(ch, { epoch: before.epoch, offset: before.offset }, 10);
    assert.equal(h.complete, false, 'a position in the old epoch cannot recover');
  } finally {
    await admin.close();
    await gw.close();
    await deleteStream(url, opts.stream);
  }
});
