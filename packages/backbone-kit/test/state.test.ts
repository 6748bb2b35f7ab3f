import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BackboneState } from '../src/contract.js';
import { BackboneStateMachine } from '../src/state.js';

function recorder(): { seen: [BackboneState, Error | undefined][]; listener: (s: BackboneState, e?: Error) => void } {
  const seen: [BackboneState, Error | undefined][] = [];
  return { seen, listener: (s, e) => seen.push([s, e]) };
}

test('starts connecting (or as told) and reports only real changes', () => {
  const m = new BackboneStateMachine();
  assert.equal(m.state, 'connecting');
  const r = recorder();
  m.listen(r.listener);
  const lost = new Error('socket closed');
  assert.equal(m.set('up'), true);
  assert.equal(m.set('up'), false, 'the same state again is no change');
  assert.equal(m.set('down', lost), true);
  assert.equal(m.set('down', new Error('again')), false);
  assert.equal(m.set('up'), true);
  assert.deepEqual(r.seen, [
    ['up', undefined],
    ['down', lost],
    ['up', undefined],
  ]);
  assert.equal(m.state, 'up');
  assert.equal(new BackboneStateMachine({ initial: 'down' }).state, 'down');
});

test('keeps the error of the latest change', () => {
  const m = new BackboneStateMachine();
  const lost = new Error('gone');
  m.set('down', lost);
  assert.equal(m.lastError, lost);
  m.set('up');
  assert.equal(m.lastError, undefined);
});

test('never leaves closed, and says nothing after it', () => {
  const m = new BackboneStateMachine();
  const r = recorder();
  m.listen(r.listener);
  m.set('up');
  assert.equal(m.set('closed'), true);
  for (const s of ['up', 'down', 'connecting', 'closed'] as const) assert.equal(m.set(s), false);
  assert.equal(m.state, 'closed');
  assert.deepEqual(
    r.seen.map(([s]) => s),
    ['up', 'closed'],
  );
});

test('a throwing listener is reported, not propagated, and the state still changes', () => {
  const reported: unknown[] = [];
  const m = new BackboneStateMachine({ onListenerError: (err) => reported.push(err) });
  const boom = new Error('listener bug');
  m.listen(() => {
    throw boom;
  });
  assert.equal(m.set('up'), true);
  assert.equal(m.state, 'up');
  assert.deepEqual(reported, [boom]);
  const quiet = new BackboneStateMachine({
    onListenerError: () => {
      throw new Error('reporter bug too');
    },
  });
  quiet.listen(() => {
    throw boom;
  });
  assert.doesNotThrow(() => quiet.set('down'));
});

test('one listener only: listen replaces the earlier one', () => {
  const m = new BackboneStateMachine();
  const first = recorder();
  const second = recorder();
  m.listen(first.listener);
  m.listen(second.listener);
  m.set('up');
  assert.deepEqual(first.seen, []);
  assert.deepEqual(second.seen, [['up', undefined]]);
});
