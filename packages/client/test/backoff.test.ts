import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Backoff } from '../src/backoff.js';

test('every delay lies between the floor and the attempt window, and never under the hint', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5_000 }),
      fc.integer({ min: 0, max: 100_000 }),
      fc.double({ min: 1, max: 10, noNaN: true }),
      fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 40 }),
      fc.option(fc.integer({ min: 0, max: 200_000 }), { nil: undefined }),
      (minMs, extra, factor, samples, hint) => {
        const maxMs = minMs + extra;
        let i = 0;
        const b = new Backoff({ minMs, maxMs, factor }, () => samples[i++]!);
        for (let n = 0; n < samples.length; n++) {
          const window = Math.min(maxMs, minMs * factor ** (n + 1));
          const d = b.next(hint);
          assert.ok(d >= minMs, `attempt ${n}: ${d} < floor ${minMs}`);
          if (hint === undefined) assert.ok(d <= Math.ceil(window), `attempt ${n}: ${d} > window ${window}`);
          else assert.ok(d >= hint && d <= Math.max(Math.ceil(window), hint));
        }
      },
    ),
  );
});

test('the window doubles per failure up to the cap and reset() starts over', () => {
  const b = new Backoff({ minMs: 100, maxMs: 1_000, factor: 2 }, () => 1);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [200, 400, 800, 1_000, 1_000]);
  assert.equal(b.attempt, 5);
  b.reset();
  assert.equal(b.next(), 200);
});

test('jitter spreads delays across the window instead of repeating one value', () => {
  const samples = [0, 0.5, 0.999];
  let i = 0;
  const b = new Backoff({ minMs: 100, maxMs: 100_000, factor: 10 }, () => samples[i++]!);
  assert.deepEqual([b.next(), b.next(), b.next()], [100, 5_050, 99_900]);
});

test('a faulty random source cannot produce delays outside the window', () => {
  const b = new Backoff({ minMs: 100, maxMs: 1_000, factor: 2 }, () => Number.NaN);
  assert.equal(b.next(), 100);
  const c = new Backoff({ minMs: 100, maxMs: 1_000, factor: 2 }, () => 7);
  assert.equal(c.next(), 200);
});
