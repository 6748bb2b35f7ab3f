/**
 * The presence book's rules, with the control plane replaced by a hand-driven one (the point of
 * the fake: deliver, drop, reorder and repeat messages at will; the real backbones are in the
 * conformance suite), and a clock the test moves.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PresenceBook, PresenceControl, type PresenceChange } from '../src/presence-book.js';
import type { ControlMessage } from '../src/contract.js';

/** A node whose sent messages are kept, not delivered, and whose clock is the test's. */
function node(name: string, clock: { now: number }, maxMessageBytes?: number) {
  const sent: ControlMessage[] = [];
  const book = new PresenceBook({
    node: name,
    intervalMs: 1000,
    now: () => clock.now,
    ...(maxMessageBytes !== undefined ? { maxMessageBytes } : {}),
    send: async (type, data) => void sent.push({ type, from: name, data }),
  });
  const changes: PresenceChange[] = [];
  book.onChange((c) => changes.push(c));
  return { book, sent, changes };
}

const flush = () => new Promise<void>((r) => queueMicrotask(r));

test('deltas apply once; an older message from the same node is ignored', async () => {
  const clock = { now: 0 };
  const a = node('a', clock);
  const b = node('b', clock);
  a.book.join('ch', { client: 'a-1', user: 'u1' });
  await flush();
  a.book.leave('ch', 'a-1');
  await flush();
  const [join, leave] = a.sent;
  b.book.onControl(join as ControlMessage);
  b.book.onControl(leave as ControlMessage);
  // Redelivered and late: the join must not bring the member back.
  b.book.onControl(join as ControlMessage);
  assert.deepEqual(b.book.members('ch'), []);
  assert.deepEqual(
    b.changes.map((c) => c.kind),
    ['join', 'leave'],
  );
});

test('a lease in several parts applies once every part arrived, and replaces what it covers', async () => {
  const clock = { now: 0 };
  const a = node('a', clock, 2000);
  const b = node('b', clock);
  for (let i = 0; i < 200; i++) a.book.join(i % 2 ? 'odd' : 'even', { client: `a-${i}`, user: `u${i % 7}`, info: { i } });
  await flush();
  a.sent.length = 0;
  a.book.sendLease();
  const parts = a.sent.filter((m) => m.type === PresenceControl.Lease);
  assert.ok(parts.length > 2, `${parts.length} parts`);
  for (const m of parts) assert.ok(Buffer.byteLength(m.data) <= 2000, 'every part under the limit');
  // Parts out of order, one repeated: nothing counts until the last one arrives.
  const shuffled = [...parts].reverse();
  for (const m of shuffled.slice(0, -1)) b.book.onControl(m);
  b.book.onControl(shuffled[0] as ControlMessage);
  assert.equal(b.book.members('odd').length, 0);
  b.book.onControl(shuffled[shuffled.length - 1] as ControlMessage);
  assert.equal(b.book.members('odd').length, 100);
  assert.deepEqual(b.book.stats('even'), { clients: 100, users: 7 });
  // The next lease no longer lists a-0 (it left, and its delta was lost): it leaves, once.
  a.book.leave('even', 'a-0');
  await flush();
  a.sent.length = 0;
  a.book.sendLease();
  for (const m of a.sent.filter((x) => x.type === PresenceControl.Lease)) b.book.onControl(m);
  assert.equal(b.book.members('even').length, 99);
  assert.equal(b.changes.filter((c) => c.kind === 'leave').length, 1);
});

test('a node whose lease runs out loses every member once; a new incarnation replaces the old at once', async () => {
  const clock = { now: 0 };
  const a = node('a', clock);
  const b = node('b', clock);
  a.book.join('ch', { client: 'a-1', user: 'u1' });
  a.book.join('ch', { client: 'a-2', user: 'u1' });
  await flush();
  for (const m of a.sent) b.book.onControl(m);
  assert.equal(b.book.userMemberships('u1'), 2);
  clock.now += b.book.ttlMs - 1;
  b.book.expire();
  assert.equal(b.book.members('ch').length, 2, 'still inside the window');
  clock.now += 2;
  b.book.expire();
  b.book.expire();
  assert.deepEqual(b.book.members('ch'), []);
  assert.equal(b.changes.filter((c) => c.kind === 'leave').length, 2);
  assert.equal(b.book.userMemberships('u1'), 0);
  assert.deepEqual(b.book.liveNodes(), ['b']);
  // The same name, a new process: its first message replaces whatever the old one held.
  const old = node('c', clock);
  old.book.join('ch', { client: 'c-1', user: 'x' });
  await flush();
  for (const m of old.sent) b.book.onControl(m);
  const reborn = node('c', clock);
  reborn.book.sendLease();
  for (const m of reborn.sent) b.book.onControl(m);
  assert.deepEqual(b.book.members('ch'), []);
});

test('settled nodes: this node only after hearing itself for a full window, others after holding their lease as long', () => {
  const clock = { now: 0 };
  const a = node('a', clock);
  const b = node('b', clock);
  a.book.sendLease();
  b.book.sendLease();
  for (const m of [...a.sent, ...b.sent]) a.book.onControl(m);
  assert.deepEqual(a.book.settledNodes(''), []);
  for (let t = 0; t <= a.book.ttlMs + 1000; t += 1000) {
    clock.now = t;
    a.sent.length = 0;
    b.sent.length = 0;
    a.book.sendLease();
    b.book.sendLease();
    for (const m of [...a.sent, ...b.sent]) a.book.onControl(m);
  }
  assert.deepEqual(a.book.settledNodes(''), ['a', 'b']);
  assert.deepEqual(a.book.settledNodes('other'), []);
  // Cut off: a no longer hears itself, so it no longer speaks for the fleet.
  clock.now += a.book.ttlMs + 1;
  assert.equal(a.book.connectedMs(), 0);
  assert.deepEqual(a.book.settledNodes(''), ['b']);
});

test('malformed messages change nothing and never throw', () => {
  const b = node('b', { now: 0 });
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json()), fc.constantFrom(PresenceControl.Delta, PresenceControl.Lease), (data, type) => {
      b.book.onControl({ type, from: 'z', data });
    }),
  );
  for (const data of [
    '{"i":"x","s":1,"o":[["j","ch",5,"u"]]}',
    '{"i":"x","s":2,"n":1,"p":3,"c":[]}',
    '{"i":"x","s":3,"n":1,"p":0,"c":[["ch",[[1,2]]]]}',
  ]) {
    b.book.onControl({ type: data.includes('"o"') ? PresenceControl.Delta : PresenceControl.Lease, from: 'y', data });
  }
  assert.equal(b.book.memberCount, 0);
});
