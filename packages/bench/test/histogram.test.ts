import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram } from '../src/histogram.js';

function close(actual: number | null, expected: number, rel = 0.02): void {
  assert.ok(actual !== null, 'expected a value, got null');
  assert.ok(Math.abs(actual - expected) <= expected * rel, `${actual} is not within ${rel * 100}% of ${expected}`);
}

describe('Histogram', () => {
  test('reports percentiles within its 2% precision and the exact maximum', () => {
    const h = new Histogram();
    for (let i = 1; i <= 10_000; i++) h.record(i / 100); // 0.01 .. 100 ms, uniform
    const s = h.summary();
    close(s.p50, 50);
    close(s.p99, 99);
    close(s.p999, 99.9);
    assert.equal(s.max, 100);
    assert.equal(h.count, 10_000);
  });

  test('is empty until something is recorded', () => {
    assert.deepEqual(new Histogram().summary(), { p50: null, p99: null, p999: null, max: null });
  });

  test('merges snapshots as if every value had been recorded in one place', () => {
    const a = new Histogram();
    const b = new Histogram();
    const all = new Histogram();
    for (let i = 0; i < 1000; i++) {
      const v = (i * 7919) % 997;
      (i % 2 === 0 ? a : b).record(v);
      all.record(v);
    }
    const merged = Histogram.from(JSON.parse(JSON.stringify(a.snapshot())));
    merged.merge(b.snapshot());
    assert.deepEqual(merged.summary(), all.summary());
    assert.equal(merged.count, all.count);
  });

  test('counts negative values instead of hiding them', () => {
    const h = new Histogram();
    h.record(-0.5);
    h.record(1);
    assert.equal(h.negative, 1);
    assert.equal(h.count, 2);
  });
});
