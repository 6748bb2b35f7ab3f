import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { backoffDelay, retryUntilDeadline } from '../src/backoff.js';

test('backoffDelay doubles from the floor and stops at the cap', () => {
  const top = () => 1;
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, 100, 2_000, top)),
    [100, 200, 400, 800, 1600, 2000, 2000],
  );
  assert.equal(backoffDelay(1_000_000, 100, 2_000, top), 2_000, 'a huge attempt number still ends at the cap');
});

test('backoffDelay never goes below half the floor', () => {
  const bottom = () => 0;
  assert.deepEqual(
    [1, 5, 50].map((n) => backoffDelay(n, 100, 5_000, bottom)),
    [50, 50, 50],
  );
});

test('backoffDelay stays inside [floor/2, min(cap, floor * 2^(attempt-1))] for any input', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 200 }),
      fc.integer({ min: 0, max: 10_000 }),
      fc.integer({ min: 0, max: 100_000 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (attempt, floor, cap, r) => {
        const d = backoffDelay(attempt, floor, cap, () => r);
        const ceiling = Math.min(Math.max(cap, floor), floor * 2 ** Math.min(attempt - 1, 30));
        assert.ok(Number.isInteger(d), `integer ms, got ${d}`);
        assert.ok(d >= Math.floor(floor / 2) && d <= Math.ceil(ceiling), `${d} within [${floor / 2}, ${ceiling}]`);
      },
    ),
  );
});

test('backoffDelay turns nonsense into a usable delay instead of throwing', () => {
  for (const [attempt, floor, cap, r] of [
    [0, 100, 1000, 0.5],
    [-3, 100, 1000, 0.5],
    [Number.NaN, 100, 1000, 0.5],
    [2, -5, 1000, 0.5],
    [2, Number.NaN, Number.NaN, 0.5],
    [2, 100, 10, 0.5],
    [2, 100, 1000, Number.NaN],
    [2, 100, 1000, 7],
  ] as const) {
    const d = backoffDelay(attempt, floor, cap, () => r);
    assert.ok(Number.isFinite(d) && d >= 0, `backoffDelay(${attempt}, ${floor}, ${cap}, ${r}) = ${d}`);
  }
  assert.equal(
    backoffDelay(3, 100, 10, () => 1),
    100,
    'a cap below the floor counts as the floor',
  );
});

test('retryUntilDeadline retries until the attempt succeeds', async () => {
  const seen: number[] = [];
  const result = await retryUntilDeadline(
    Date.now() + 10_000,
    async (n) => {
      seen.push(n);
      if (n < 3) throw new Error(`try ${n}`);
      return 'ok';
    },
    { floorMs: 2, capMs: 4 },
  );
  assert.equal(result, 'ok');
  assert.deepEqual(seen, [1, 2, 3]);
});

test('retryUntilDeadline rethrows a final error at once', async () => {
  let tries = 0;
  const final = new Error('bad password');
  await assert.rejects(
    retryUntilDeadline(
      Date.now() + 10_000,
      async () => {
        tries++;
        throw final;
      },
      { giveUp: (err) => err === final },
    ),
    (err) => err === final,
  );
  assert.equal(tries, 1);
});

test('retryUntilDeadline rethrows the last error when the deadline would pass', async () => {
  let tries = 0;
  await assert.rejects(
    retryUntilDeadline(
      Date.now() + 50,
      async (n) => {
        tries = n;
        throw new Error(`try ${n}`);
      },
      { floorMs: 1_000, capMs: 1_000 },
    ),
    /try 1/,
  );
  assert.equal(tries, 1, 'a wait that would end past the deadline is not started');
});

test('retryUntilDeadline stops waiting when aborted', async () => {
  const stop = new AbortController();
  const pending = retryUntilDeadline(
    Date.now() + 60_000,
    async (n) => {
      if (n === 1) queueMicrotask(() => stop.abort());
      throw new Error(`try ${n}`);
    },
    { floorMs: 30_000, capMs: 30_000, signal: stop.signal },
  );
  await assert.rejects(pending, /try 1/);
});
