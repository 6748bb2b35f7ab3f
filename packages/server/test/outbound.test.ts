/**
 * The outbound queues on their own, over fake transports: a tick's frames reach each session in
 * order and once, and sessions that got the same frames share one queue array instead of one each.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Outbound } from '../src/outbound.js';
import { Session } from '../src/session.js';
import type { SessionHandler } from '../src/session.js';
import { FakeTransport, idleMetrics } from './fake-transport.js';

const handler: SessionHandler = { onMessage() {}, onPing() {}, onClose() {}, onError() {} };

function setup(n: number) {
  let flushes: (() => void)[] = [];
  const out = new Outbound({
    metrics: idleMetrics('outbound-test'),
    maxQueueBytes: 1 << 30,
    maxQueueMessages: 100_000,
    coalesceMs: 0,
    onSlowConsumer: () => assert.fail('no session is slow here'),
    flushTiming: { now: () => 0, cpu: () => 0, next: (fn) => flushes.push(fn), later: (fn) => flushes.push(fn) },
  });
  const sessions = Array.from({ length: n }, () => new Session(new FakeTransport(), handler));
  const flush = () => {
    const due = flushes;
    flushes = [];
    for (const fn of due) fn();
  };
  return { out, sessions, flush };
}

const frame = (s: string) => Buffer.from(s);

/** What `s`'s transport was handed, as strings, one entry per write. */
function written(s: Session): string[] {
  return (s.transport as FakeTransport).writes.map((w) => Buffer.concat(w.chunks).toString());
}

test('subscribers that get the same frames in a tick share one queue array, and each gets them once, in order', () => {
  const { out, sessions, flush } = setup(50);
  const [a, b, c] = [frame('a'), frame('b'), frame('c')];
  for (const f of [a, b, c]) for (const s of sessions) out.enqueue(s, f);
  const first = sessions[0]?.queued;
  assert.ok(Array.isArray(first) && first.length === 3);
  for (const s of sessions) assert.equal(s.queued, first, 'the same array, not one per session');
  flush();
  for (const s of sessions) {
    assert.deepEqual(written(s), ['abc']);
    assert.equal(s.queued, undefined);
  }
});

test('a session with other frames gets its own queue, and the shared ones are never changed under it', () => {
  const { out, sessions, flush } = setup(3);
  const [x, y, z] = sessions as [Session, Session, Session];
  const [reply, a, b] = [frame('R'), frame('a'), frame('b')];
  out.enqueue(y, reply); // y had a reply queued before the publications
  for (const f of [a, b]) for (const s of [x, z, y]) out.enqueue(s, f);
  assert.equal(x.queued, z.queued);
  assert.notEqual(y.queued, x.queued);
  out.enqueue(x, frame('only x'));
  assert.deepEqual(
    (z.queued as Buffer[]).map((f) => f.toString()),
    ['a', 'b'],
    "z's queue is untouched by what x got after it",
  );
  flush();
  assert.deepEqual(written(x), ['abonly x']);
  assert.deepEqual(written(y), ['Rab']);
  assert.deepEqual(written(z), ['ab']);
});

test('past the shared limit each session holds its own queue, and nothing is lost or reordered', () => {
  const { out, sessions, flush } = setup(4);
  const frames = Array.from({ length: 100 }, (_, i) => frame(`${i},`));
  for (const f of frames) for (const s of sessions) out.enqueue(s, f);
  const [s0, s1] = sessions as [Session, Session];
  assert.notEqual(s0.queued, s1.queued, 'long queues are not shared');
  assert.equal(s0.queuedCount, 100);
  flush();
  const expected = frames.map((f) => f.toString()).join('');
  for (const s of sessions) assert.deepEqual(written(s), [expected]);
});
