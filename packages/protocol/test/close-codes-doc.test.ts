/// <reference types="node" />
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CLOSE_CODES, closeClass, formatCloseReason, parseRetryHint } from '../src/index.js';

test('docs/protocol.md carries exactly the close-code table the code uses', () => {
  const doc = readFileSync(new URL('../../../../docs/protocol.md', import.meta.url), 'utf8');
  const block = /<!-- close-codes:start -->\n([\s\S]*?)<!-- close-codes:end -->/.exec(doc);
  assert.ok(block, 'docs/protocol.md has the close-codes block');
  const rows = (block[1] as string).trim().split('\n').slice(2);
  const expected = CLOSE_CODES.map((c) => `| ${c.code} | ${c.name} | ${c.class} | ${c.meaning} |`);
  assert.deepEqual(rows, expected);
});

test('codes outside the table follow their range', () => {
  assert.equal(closeClass(4050), 'terminal');
  assert.equal(closeClass(4150), 'backoff');
  assert.equal(closeClass(4250), 'reconnect');
  assert.equal(closeClass(4350), 'resumable');
  assert.equal(closeClass(1006), 'backoff');
});

test('retry hints survive the 123-byte close reason limit', () => {
  const reason = formatCloseReason('x'.repeat(500), 1500);
  assert.ok(Buffer.byteLength(reason) <= 123);
  assert.equal(parseRetryHint(reason), 1500);
  assert.equal(parseRetryHint('no hint here'), undefined);
  assert.equal(parseRetryHint('drain; retry=250'), 250);
});
