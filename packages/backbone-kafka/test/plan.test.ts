/**
 * planPartition: where the live reader continues, and when a partition's history counts as reset
 * (the log now ends below what this node had seen: acknowledged records were lost, their offsets
 * will be reused, so the epoch must change).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planPartition } from '../src/plan.js';

test('a partition read for the first time starts at the end, no reset', () => {
  assert.deepEqual(planPartition({ at: undefined, seen: -1n, start: 0n, end: 7n }), { position: 7n, skipped: 0, reset: false });
});

test('the same log, grown or not: continue where we were, same epoch', () => {
  assert.deepEqual(planPartition({ at: 5n, seen: 5n, start: 0n, end: 5n }), { position: 5n, skipped: 0, reset: false });
  assert.deepEqual(planPartition({ at: 5n, seen: 6n, start: 0n, end: 9n }), { position: 5n, skipped: 0, reset: false });
});

test('retention removed unread records: skip them, same epoch', () => {
  assert.deepEqual(planPartition({ at: 2n, seen: 4n, start: 4n, end: 9n }), { position: 4n, skipped: 2, reset: false });
});

test('the log ends below our position: resume at the new end under a new epoch (was: clamped under the same one)', () => {
  assert.deepEqual(planPartition({ at: 6n, seen: 6n, start: 0n, end: 3n }), { position: 3n, skipped: 0, reset: true });
});

test('a node that was behind also resets when the log ends below an end it saw, and keeps its position', () => {
  // Other nodes may have delivered offsets 4..5 under the old epoch; the new records there differ.
  assert.deepEqual(planPartition({ at: 2n, seen: 6n, start: 0n, end: 4n }), { position: 2n, skipped: 0, reset: true });
});
