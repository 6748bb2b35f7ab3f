/**
 * LiveBarriers: a history read of a subscribed channel waits until the live reader has passed the
 * position it answered, is released by the live reader (never by polling), and never waits
 * forever nor piles up without bound. The live reader is played by a position table here; the
 * conformance suite's barrier case checks the whole against the real broker.
 */
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { test } from 'node:test';
import { BackboneUnavailableError } from '@gatehouse/backbone-kit';
import { LiveBarriers } from '../src/barrier.js';

/** A fake live reader: next offset per partition and the epoch each partition is in. */
function fakeLive(partitions: number): { positions: bigint[]; epochs: string[]; barriers: LiveBarriers } {
  const positions = Array.from({ length: partitions }, () => 0n);
  const epochs = Array.from({ length: partitions }, () => 'e0');
  const barriers = new LiveBarriers((p, epoch, through) => epochs[p] !== epoch || (positions[p] as bigint) >= through, {
    timeoutMs: 10_000,
    maxWaiting: 3,
  });
  return { positions, epochs, barriers };
}

/** Tracks whether a promise has settled, and how. */
function track(p: Promise<void>): { done: () => boolean; error: () => unknown } {
  let done = false;
  let error: unknown;
  p.then(
    () => (done = true),
    (e: unknown) => {
      done = true;
      error = e;
    },
  );
  return { done: () => done, error: () => error };
}

test('a live reader already past the position: resolves at once, nothing waits', async () => {
  const { positions, barriers } = fakeLive(2);
  positions[1] = 10n;
  await barriers.wait(1, 'e0', 10n, 'ch');
  assert.equal(barriers.size, 0);
});

test('a live reader behind: resolves only when it settles the partition past the position', async () => {
  const { positions, barriers } = fakeLive(2);
  positions[0] = 4n;
  const w = track(barriers.wait(0, 'e0', 7n, 'ch'));
  await nextTurn();
  assert.equal(w.done(), false, 'behind: waits');

  positions[0] = 6n;
  barriers.settle(0);
  await nextTurn();
  assert.equal(w.done(), false, 'still below the position: waits');

  positions[0] = 7n;
  barriers.settle(1);
  await nextTurn();
  assert.equal(w.done(), false, 'another partition settled: not this one');

  barriers.settle(0);
  await nextTurn();
  assert.equal(w.done(), true, 'passed and settled: resolves');
  assert.equal(w.error(), undefined);
  assert.equal(barriers.size, 0);
});

test('waits on one partition resolve each at its own position', async () => {
  const { positions, barriers } = fakeLive(1);
  const low = track(barriers.wait(0, 'e0', 3n, 'a'));
  const high = track(barriers.wait(0, 'e0', 9n, 'b'));
  positions[0] = 5n;
  barriers.settle(0);
  await nextTurn();
  assert.deepEqual([low.done(), high.done()], [true, false]);
  assert.equal(barriers.size, 1);
  positions[0] = 9n;
  barriers.settle(0);
  await nextTurn();
  assert.equal(high.done(), true);
});

test('a new epoch (a reset, a new topic) releases waits on the old one at the next re-plan', async () => {
  const { epochs, barriers } = fakeLive(2);
  const w = track(barriers.wait(1, 'e0', 50n, 'ch'));
  epochs[1] = 'e1';
  barriers.settleAll();
  await nextTurn();
  assert.equal(w.done(), true);
  assert.equal(w.error(), undefined);
});

test('a live reader that never gets there: rejects with BackboneUnavailableError after the timeout', async () => {
  const barriers = new LiveBarriers(() => false, { timeoutMs: 20, maxWaiting: 10 });
  await assert.rejects(barriers.wait(0, 'e0', 1n, 'the history position of ch'), (e: unknown) => {
    assert.ok(e instanceof BackboneUnavailableError);
    assert.match(e.message, /did not pass the history position of ch \(position 1\) within 20 ms/);
    return true;
  });
  assert.equal(barriers.size, 0, 'the timed-out wait is gone');
});

test('waits are bounded: one more than maxWaiting rejects at once; rejectAll (close) rejects the rest', async () => {
  const { barriers } = fakeLive(1);
  const waits = [1n, 2n, 3n].map((through) => barriers.wait(0, 'e0', through, 'ch'));
  await assert.rejects(barriers.wait(0, 'e0', 4n, 'ch'), BackboneUnavailableError);
  const closed = new BackboneUnavailableError('closed');
  barriers.rejectAll(closed);
  for (const w of waits) await assert.rejects(w, (e) => e === closed);
  assert.equal(barriers.size, 0);
});
