import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isValidChannel } from '@gatehouse/protocol';
import { channelToSubject, decodeToken, encodeToken, subjectToChannel } from '../src/subject.js';

test('maps channels to subjects as documented', () => {
  assert.equal(channelToSubject('gatehouse', 'chat:room-1'), 'gatehouse.chat.room-1');
  assert.equal(channelToSubject('gatehouse', 'chat:room.42'), 'gatehouse.chat.room%2E42');
  assert.equal(channelToSubject('gatehouse', 'user:42:inbox'), 'gatehouse.user.42:inbox');
  assert.equal(channelToSubject('acme.gw', 'a:b/c@d=e+f'), 'acme.gw.a.b/c@d=e+f');
  assert.equal(channelToSubject('g', 'a:100%'), 'g.a.100%25');
  assert.equal(channelToSubject('g', 'a:*> x'), 'g.a.%2A%3E%20x');
  assert.throws(() => channelToSubject('g', 'no-colon'), /namespace:name/);
});

test('subject tokens never hold ".", "*", ">" or whitespace, and the mapping is injective', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 40, unit: 'binary' }), (text) => {
      const token = encodeToken(text);
      assert.ok(!/[.*>\s]/.test(token), `token ${token} holds a forbidden character`);
      assert.equal(decodeToken(token), text);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 20 }), fc.string({ minLength: 1, maxLength: 20 }), (ns, rest) => {
      fc.pre(!ns.includes(':'));
      const channel = `${ns}:${rest}`;
      assert.equal(subjectToChannel('gatehouse', channelToSubject('gatehouse', channel)), channel);
    }),
    { numRuns: 2000 },
  );
});

test('every valid channel name round-trips', () => {
  const chars = 'abcXYZ019_.:@=/+-';
  fc.assert(
    fc.property(
      fc.string({ minLength: 1, maxLength: 30, unit: fc.constantFrom(...'abcXYZ019_-') }),
      fc.string({ minLength: 1, maxLength: 60, unit: fc.constantFrom(...chars) }),
      (ns, rest) => {
        const channel = `${ns}:${rest}`;
        fc.pre(isValidChannel(channel));
        const subject = channelToSubject('gh', channel);
        assert.equal(subject.split('.').length, 3, `${subject} has exactly prefix, namespace and name tokens`);
        assert.equal(subjectToChannel('gh', subject), channel);
      },
    ),
    { numRuns: 2000 },
  );
});

test('subjects that no channel maps to are refused', () => {
  assert.equal(subjectToChannel('gatehouse', 'other.chat.x'), undefined);
  assert.equal(subjectToChannel('gatehouse', 'gatehouse.chat'), undefined);
  assert.equal(subjectToChannel('gatehouse', 'gatehouse.chat.a.b'), undefined);
  assert.equal(subjectToChannel('gatehouse', 'gatehouse.chat.a%2e'), undefined, 'lower-case escapes are not the canonical spelling');
  assert.equal(subjectToChannel('gatehouse', 'gatehouse.chat.%41'), undefined, 'escaping a kept character is not canonical');
  assert.equal(subjectToChannel('gatehouse', 'gatehouse.chat.%ZZ'), undefined);
});
