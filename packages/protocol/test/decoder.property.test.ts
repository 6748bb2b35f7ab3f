/// <reference types="node" />
/**
 * Property-based and mutation tests of the decoders with fast-check: whatever text arrives,
 * decodeClientFrame either returns a fully checked frame or throws DecodeError (never a
 * TypeError, RangeError or anything else), and never touches Object.prototype.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DecodeError,
  decodeClientFrame,
  decodeServerFrame,
  encodeClientFrame,
  encodePub,
  formatCloseReason,
  isValidChannel,
  parseRetryHint,
} from '../src/index.js';
import type { ClientFrame } from '../src/index.js';

const RUNS = Number(process.env['GATEHOUSE_FUZZ_RUNS'] ?? 2000);
const baselineProto = Object.getOwnPropertyNames(Object.prototype).sort().join(',');

/** Decodes `text`; returns the frame, or the DecodeError. Anything else thrown fails the property. */
function outcome(text: string): ClientFrame | DecodeError {
  try {
    return decodeClientFrame(text);
  } catch (err) {
    if (err instanceof DecodeError) return err;
    throw new Error(`decodeClientFrame threw ${String(err)} for ${JSON.stringify(text.slice(0, 200))}`, { cause: err });
  }
}

/** What a decoded frame must satisfy, whatever produced it. */
function assertWellFormed(f: ClientFrame | DecodeError): void {
  if (f instanceof DecodeError) {
    assert.ok(['bad_request', 'unknown_op', 'invalid_channel'].includes(f.code), f.code);
    assert.ok(f.message.length > 0 && f.message.length < 300);
    assert.ok(f.id === undefined || (Number.isSafeInteger(f.id) && f.id > 0));
    return;
  }
  assert.equal(Object.getPrototypeOf(f), Object.prototype);
  if (f.op === 'pong') return;
  assert.ok(Number.isSafeInteger(f.id) && f.id > 0);
  switch (f.op) {
    case 'connect':
      assert.ok(Number.isSafeInteger(f.v) && f.v > 0);
      assert.ok(f.token === undefined || (typeof f.token === 'string' && f.token.length > 0 && f.token.length <= 8192));
      return;
    case 'subscribe':
    case 'unsubscribe':
    case 'publish':
      assert.ok(isValidChannel(f.channel));
      if (f.op === 'subscribe' && f.since)
        assert.ok(typeof f.since.epoch === 'string' && Number.isSafeInteger(f.since.offset) && f.since.offset >= 0);
      if (f.op === 'publish') assert.notEqual(f.data, undefined);
      return;
    case 'refresh':
      assert.ok(typeof f.token === 'string' && f.token.length > 0);
      return;
    default:
      assert.fail(`unexpected op ${(f as { op: string }).op}`);
  }
}

function assertPrototypesClean(): void {
  assert.equal(Object.getOwnPropertyNames(Object.prototype).sort().join(','), baselineProto, 'Object.prototype changed');
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined, 'Object.prototype was polluted');
}

// ---- generators ----

const channel = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_-]{1,10}:[A-Za-z0-9_.:@=/+-]{1,20}$/),
  fc.constantFrom('a:b', '__proto__:x', 'constructor:prototype', 'x:__proto__', ''),
  fc.string({ unit: 'binary', maxLength: 30 }),
);
const id = fc.oneof(
  fc.integer({ min: 1, max: 1000 }),
  fc.constantFrom(0, -1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, 1e308),
  fc.jsonValue({ maxDepth: 1 }),
);
const validFrame: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record(
    { op: fc.constant('connect'), id, v: fc.constantFrom(1, 2), token: fc.string({ maxLength: 40 }) },
    { requiredKeys: ['op', 'id', 'v'] },
  ),
  fc.record(
    { op: fc.constant('subscribe'), id, channel, since: fc.record({ epoch: fc.string({ maxLength: 8 }), offset: fc.nat() }) },
    { requiredKeys: ['op', 'id', 'channel'] },
  ),
  fc.record({ op: fc.constant('unsubscribe'), id, channel }),
  fc.record({ op: fc.constant('publish'), id, channel, data: fc.jsonValue({ maxDepth: 4 }) }),
  fc.record({ op: fc.constant('refresh'), id, token: fc.string({ maxLength: 40 }) }),
  fc.constant({ op: 'pong' }),
);
const hostileKey = fc.constantFrom(
  '__proto__',
  'constructor',
  'prototype',
  'polluted',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '__defineGetter__',
);

/** Splices hostile key/value pairs into a frame's JSON text (JSON.stringify would drop a real __proto__ key). */
const hostileText = fc
  .tuple(
    validFrame,
    fc.array(
      fc.tuple(
        hostileKey,
        fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant({ polluted: 1 }), fc.constant({ prototype: { polluted: 1 } })),
      ),
      { minLength: 1, maxLength: 4 },
    ),
    fc.boolean(),
  )
  .map(([frame, pairs, inData]) => {
    const extra = pairs.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',');
    const text = JSON.stringify(frame);
    if (inData && 'data' in frame) return text.replace('"data":', `"data":{${extra},"v":`).replace(/}$/, '}}');
    return `{${extra},${text.slice(1)}`;
  });

/** Applies insert/delete/replace edits at arbitrary positions. */
function mutate(text: string, edits: { at: number; op: number; ch: string }[]): string {
  let s = text;
  for (const e of edits) {
    const i = s.length === 0 ? 0 : e.at % (s.length + 1);
    if (e.op === 0) s = s.slice(0, i) + e.ch + s.slice(i);
    else if (e.op === 1) s = s.slice(0, i) + s.slice(i + 1);
    else s = s.slice(0, i) + e.ch + s.slice(i + 1);
  }
  return s;
}
const edit = fc.record({
  at: fc.nat(),
  op: fc.integer({ min: 0, max: 2 }),
  ch: fc.oneof(
    fc.constantFrom('{', '}', '[', ']', '"', ':', ',', '\\', '-', '0', '9', 'e', '.', ' ', '\u0000', '\ud800', '\uffff', 'n', 't'),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  ),
});

/** Replaces one field of a valid frame with an arbitrary JSON value (type confusion). */
const typeConfused = fc
  .tuple(validFrame, fc.constantFrom('op', 'id', 'v', 'channel', 'since', 'data', 'token', 'reconnect'), fc.jsonValue({ maxDepth: 3 }))
  .map(([f, key, v]) => JSON.stringify({ ...f, [key]: v }));

const deeplyNested = fc
  .tuple(fc.integer({ min: 1, max: 20_000 }), fc.constantFrom('[', '{"a":'), fc.constantFrom('top', 'data', 'since', 'channel'))
  .map(([depth, open, where]) => {
    const close = open === '[' ? ']' : '}';
    const nest = `${open.repeat(depth)}1${close.repeat(depth)}`;
    if (where === 'top') return nest;
    if (where === 'data') return `{"op":"publish","id":1,"channel":"a:b","data":${nest}}`;
    if (where === 'since') return `{"op":"subscribe","id":1,"channel":"a:b","since":${nest}}`;
    return `{"op":"subscribe","id":1,"channel":${nest}}`;
  });

const hugeNumber = fc.oneof(
  fc.constantFrom(
    '1e400',
    '-1e400',
    '1e-400',
    '-0',
    '0.0',
    '9007199254740993',
    '123456789012345678901234567890123456789',
    '1E+21',
    '0x10',
    'NaN',
    'Infinity',
    '01',
  ),
  fc.double().map(String),
  fc.bigInt().map(String),
);
const numberInFields = fc
  .tuple(hugeNumber, fc.constantFrom('id', 'v', 'offset'))
  .map(([n, field]) =>
    field === 'offset'
      ? `{"op":"subscribe","id":1,"channel":"a:b","since":{"epoch":"e","offset":${n}}}`
      : field === 'v'
        ? `{"op":"connect","id":1,"v":${n}}`
        : `{"op":"unsubscribe","id":${n},"channel":"a:b"}`,
  );

describe('decodeClientFrame never throws anything but DecodeError', () => {
  test('on random strings (full Unicode, lone surrogates included)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (s) => assertWellFormed(outcome(s))),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom('{', '}', '"', ':', ',', '[', ']', 'o', 'p', 'i', 'd', '1', ' '), maxLength: 60 }),
        (s) => assertWellFormed(outcome(s)),
      ),
      { numRuns: RUNS },
    );
  });

  test('on random JSON documents', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 6 }), (s) => assertWellFormed(outcome(s))),
      { numRuns: RUNS },
    );
  });

  test('on valid-looking frames with random field values (type confusion)', () => {
    fc.assert(
      fc.property(validFrame, (f) => assertWellFormed(outcome(JSON.stringify(f)))),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(typeConfused, (s) => assertWellFormed(outcome(s))),
      { numRuns: RUNS },
    );
  });

  test('on mutated valid frames (random inserts, deletes and replacements)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          validFrame.map((f) => JSON.stringify(f)),
          hostileText,
        ),
        fc.array(edit, { minLength: 1, maxLength: 8 }),
        (text, edits) => {
          assertWellFormed(outcome(mutate(text, edits)));
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('on __proto__, constructor and prototype keys anywhere: no pollution, no inherited op', () => {
    fc.assert(
      fc.property(hostileText, (text) => {
        const f = outcome(text);
        assertWellFormed(f);
        assertPrototypesClean();
        if (!(f instanceof DecodeError))
          assert.ok(!Object.hasOwn(f, '__proto__') || f.op === 'publish', 'a hostile key leaked into the frame');
      }),
      { numRuns: RUNS },
    );
    // A frame whose only op comes through __proto__ has no op of its own.
    const e = outcome('{"__proto__":{"op":"connect","id":1,"v":1}}');
    assert.ok(e instanceof DecodeError && e.code === 'bad_request');
    assertPrototypesClean();
  });

  test('on deep nesting anywhere in the frame', () => {
    fc.assert(
      fc.property(deeplyNested, (s) => assertWellFormed(outcome(s))),
      { numRuns: 100 },
    );
  });

  test('on huge, tiny and non-JSON numbers in the numeric fields', () => {
    fc.assert(
      fc.property(numberInFields, (s) => assertWellFormed(outcome(s))),
      { numRuns: RUNS },
    );
  });

  test('valid frames survive encode/decode unchanged', () => {
    fc.assert(
      fc.property(validFrame, (f) => {
        const first = outcome(JSON.stringify(f));
        if (first instanceof DecodeError) return;
        assert.deepEqual(decodeClientFrame(encodeClientFrame(first)), first);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('decodeServerFrame never throws anything but DecodeError', () => {
  test('on random and mutated input', () => {
    const pub = fc
      .tuple(fc.stringMatching(/^[a-z]{1,5}:[a-z0-9]{1,8}$/), fc.string({ maxLength: 8 }), fc.nat(), fc.nat(), fc.json({ maxDepth: 3 }))
      .map(([c, e, o, t, d]) => encodePub(c, e, o, t, d));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.json({ maxDepth: 4 }),
          fc.tuple(pub, fc.array(edit, { maxLength: 6 })).map(([t, e]) => mutate(t, e)),
        ),
        (s) => {
          try {
            decodeServerFrame(s);
          } catch (err) {
            assert.ok(err instanceof DecodeError, `threw ${String(err)} for ${JSON.stringify(s.slice(0, 100))}`);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe('encoders', () => {
  test('encodePub output always parses back to its inputs', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[A-Za-z0-9_-]{1,64}:[A-Za-z0-9_.:@=/+-]{1,190}$/),
        fc.string({ unit: 'binary', maxLength: 64 }),
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        fc.jsonValue({ maxDepth: 4 }),
        (channel, epoch, offset, ts, value) => {
          const data = JSON.stringify(value);
          const parsed = JSON.parse(encodePub(channel, epoch, offset, ts, data));
          // Compare through JSON: -0 in data serializes as 0.
          assert.deepEqual(parsed, { op: 'pub', channel, epoch: JSON.parse(JSON.stringify(epoch)), offset, ts, data: JSON.parse(data) });
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('formatCloseReason fits a close frame (123 bytes) for ASCII text and keeps a parseable retry hint', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 300 }),
        fc.option(fc.double({ min: 0, max: 999_999_999, noNaN: true }), { nil: undefined }),
        (text, retry) => {
          const reason = formatCloseReason(text, retry);
          assert.ok(Buffer.byteLength(reason) <= 123, `${Buffer.byteLength(reason)} bytes`);
          if (retry !== undefined) assert.equal(parseRetryHint(reason), Math.round(retry));
        },
      ),
      { numRuns: RUNS },
    );
  });
});
