import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CONTROL_MAX_BYTES } from '../src/contract.js';
import {
  BackboneInputError,
  checkChannel,
  checkControlMessage,
  checkPublishData,
  checkPublishOptions,
  checkRecord,
  isValidNodeId,
  type BackboneInputCode,
} from '../src/validate.js';

/** Asserts `fn` throws a BackboneInputError with `code` and a message matching `message`. */
function throwsInput(fn: () => void, code: BackboneInputCode, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BackboneInputError, `a BackboneInputError, got ${String(err)}`);
    assert.ok(err instanceof TypeError, 'still a TypeError, as adapters threw before');
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

test('checkChannel takes the protocol rule and names the bad name', () => {
  checkChannel('chat:room-1');
  checkChannel('a:b/c@d=e+f.g:h');
  throwsInput(() => checkChannel('no-namespace'), 'invalid_channel', /"no-namespace".*namespace:name/);
  throwsInput(() => checkChannel(''), 'invalid_channel', /invalid channel name ""/);
  throwsInput(() => checkChannel(42), 'invalid_channel', /invalid channel name 42/);
  throwsInput(() => checkChannel(`ns:${'x'.repeat(300)}`), 'invalid_channel', /\.\.\./);
});

test('checkPublishData wants non-empty JSON text and honours a byte limit', () => {
  for (const ok of ['1', '"x"', 'null', '{"a":[1,2]}', ' true ']) checkPublishData(ok);
  throwsInput(() => checkPublishData(''), 'invalid_data', /empty/);
  throwsInput(() => checkPublishData('{oops'), 'invalid_data', /not valid JSON/);
  throwsInput(() => checkPublishData({ a: 1 }), 'invalid_data', /a string\), got object/);
  checkPublishData('"éé"', 6);
  throwsInput(() => checkPublishData('"éé"', 5), 'data_too_large', /6 bytes, more than the 5 allowed/);
});

test('checkPublishOptions wants integer history settings >= 0', () => {
  checkPublishOptions({ historySize: 0, historyTtlSeconds: 0 });
  throwsInput(() => checkPublishOptions({ historySize: -1, historyTtlSeconds: 0 }), 'invalid_publish_options', /historySize .* got -1/);
  throwsInput(() => checkPublishOptions({ historySize: 1, historyTtlSeconds: 1.5 }), 'invalid_publish_options', /historyTtlSeconds/);
  throwsInput(() => checkPublishOptions(undefined), 'invalid_publish_options', /historySize/);
});

test('checkControlMessage applies the contract to type, from, to and data', () => {
  checkControlMessage({ type: 'node.announce', from: 'gh-1', data: '{}' });
  checkControlMessage({ type: 'token.revoke', from: 'gh-1', to: 'gh-2', data: '"x"' });
  throwsInput(() => checkControlMessage(null), 'invalid_control', /must be an object/);
  throwsInput(() => checkControlMessage({ type: 'Node', from: 'a', data: '1' }), 'invalid_control', /type "Node"/);
  throwsInput(() => checkControlMessage({ type: 'x'.repeat(65), from: 'a', data: '1' }), 'invalid_control', /1-64 characters/);
  throwsInput(() => checkControlMessage({ type: 'a', from: '', data: '1' }), 'invalid_control', /from "" must be a node id/);
  throwsInput(() => checkControlMessage({ type: 'a', from: 'n', to: 'bad id', data: '1' }), 'invalid_control', /to "bad id"/);
  throwsInput(() => checkControlMessage({ type: 'a', from: 'n', data: '{' }), 'invalid_control', /control message data is not valid JSON/);
  checkControlMessage({ type: 'a', from: 'n', data: JSON.stringify('x'.repeat(CONTROL_MAX_BYTES - 2)) });
  throwsInput(
    () => checkControlMessage({ type: 'a', from: 'n', data: JSON.stringify('x'.repeat(CONTROL_MAX_BYTES - 1)) }),
    'data_too_large',
    new RegExp(`more than the ${CONTROL_MAX_BYTES} allowed`),
  );
});

test('checkRecord applies the contract to kind, key, value and expiry', () => {
  const ok = { key: 'jti-1', value: '{"sub":"u"}', expiresAt: Date.now() + 1000 };
  checkRecord('token.revoked', ok);
  throwsInput(() => checkRecord('Tokens', ok), 'invalid_record', /record kind "Tokens"/);
  throwsInput(() => checkRecord('t', { ...ok, key: '' }), 'invalid_record', /record key ""/);
  throwsInput(() => checkRecord('t', { ...ok, key: 'k'.repeat(257) }), 'invalid_record', /1-256 characters/);
  throwsInput(() => checkRecord('t', { ...ok, key: 'a\nb' }), 'invalid_record', /control characters/);
  throwsInput(() => checkRecord('t', { ...ok, key: '\ud800' }), 'invalid_record', /lone surrogates/);
  throwsInput(() => checkRecord('t', { ...ok, value: 'nope' }), 'invalid_record', /record value is not valid JSON/);
  throwsInput(() => checkRecord('t', { ...ok, expiresAt: Number.NaN }), 'invalid_record', /expiresAt NaN/);
  throwsInput(() => checkRecord('t', 'x'), 'invalid_record', /must be an object/);
});

test('isValidNodeId follows the gateway nodeId rule', () => {
  assert.ok(isValidNodeId('gh-abc_1.2'));
  assert.ok(!isValidNodeId(''));
  assert.ok(!isValidNodeId('a b'));
  assert.ok(!isValidNodeId('x'.repeat(65)));
});
