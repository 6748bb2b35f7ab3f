import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TypedEmitter } from '../src/emitter.js';

interface Events {
  tick: number;
}

class Ticker extends TypedEmitter<Events> {
  tick(n: number): void {
    this.emit('tick', n);
  }
}

test('listeners run in order; removing or adding one during a round affects only later rounds', () => {
  const failures: unknown[] = [];
  const t = new Ticker((err) => failures.push(err));
  const seen: string[] = [];
  const offB = t.on('tick', (n) => seen.push(`b${n}`));
  t.on('tick', (n) => {
    seen.push(`c${n}`);
    offB();
    t.on('tick', (m) => seen.push(`d${m}`));
  });
  t.once('tick', (n) => seen.push(`once${n}`));
  t.tick(1);
  assert.deepEqual(seen, ['b1', 'c1', 'once1']);
  seen.length = 0;
  t.tick(2);
  assert.deepEqual(seen, ['c2', 'd2']);
  assert.deepEqual(failures, []);
});

test('a throwing listener goes to the hook and the others still run', () => {
  const failures: [unknown, string][] = [];
  const t = new Ticker((err, event) => failures.push([err, event]));
  const seen: number[] = [];
  t.on('tick', () => {
    throw new Error('boom');
  });
  t.on('tick', (n) => seen.push(n));
  t.tick(7);
  assert.deepEqual(seen, [7]);
  assert.equal(failures.length, 1);
  assert.equal(failures[0]![1], 'tick');
  assert.equal(t.listenerCount('tick'), 2);
});
