/// <reference types="node" />
/**
 * Codec unit tests on real bytes: each frame is the UTF-8 a client puts in a WebSocket text
 * message, decoded the way the server does (bytes -> text -> decodeClientFrame).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DecodeError,
  MAX_CHANNEL_LENGTH,
  decodeClientFrame,
  decodeServerFrame,
  encodeClientFrame,
  encodePub,
  encodeServerFrame,
  isValidChannel,
  namespaceOf,
} from '../src/index.js';
import type { ClientFrame, ErrorCode } from '../src/index.js';

/** Decodes wire bytes as the server does. */
function decodeBytes(bytes: Buffer): ClientFrame {
  return decodeClientFrame(bytes.toString('utf8'));
}

/** Asserts `text` is refused with `code`, a message matching `message`, and the request `id` when readable. */
function refuses(text: string, code: ErrorCode, message: RegExp, id?: number): void {
  assert.throws(
    () => decodeBytes(Buffer.from(text, 'utf8')),
    (err: unknown) => {
      assert.ok(err instanceof DecodeError, `threw ${String(err)}`);
      assert.equal(err.name, 'DecodeError');
      assert.equal(err.code, code, `${text}: ${err.message}`);
      assert.match(err.message, message, text);
      assert.equal(err.id, id, `${text}: id`);
      return true;
    },
  );
}

describe('decodeClientFrame: each client frame', () => {
  test('decodes connect with a token and the reconnect flag', () => {
    const bytes = Buffer.from('{"op":"connect","id":1,"v":1,"token":"eyJ.a.b","reconnect":true}', 'utf8');
    assert.deepEqual(decodeBytes(bytes), { op: 'connect', id: 1, v: 1, token: 'eyJ.a.b', reconnect: true });
  });

  test('decodes connect without a token; a reconnect that is not true is dropped', () => {
    assert.deepEqual(decodeBytes(Buffer.from('{"op":"connect","id":7,"v":1,"reconnect":"yes"}')), { op: 'connect', id: 7, v: 1 });
  });

  test('decodes subscribe, with and without a recovery position', () => {
    assert.deepEqual(decodeBytes(Buffer.from('{"op":"subscribe","id":2,"channel":"chat:room-1"}')), {
      op: 'subscribe',
      id: 2,
      channel: 'chat:room-1',
    });
    assert.deepEqual(decodeBytes(Buffer.from('{"op":"subscribe","id":3,"channel":"chat:room-1","since":{"epoch":"e1","offset":0}}')), {
      op: 'subscribe',
      id: 3,
      channel: 'chat:room-1',
      since: { epoch: 'e1', offset: 0 },
    });
  });

  test('decodes unsubscribe', () => {
    assert.deepEqual(decodeBytes(Buffer.from('{"op":"unsubscribe","id":4,"channel":"user:42:inbox"}')), {
      op: 'unsubscribe',
      id: 4,
      channel: 'user:42:inbox',
    });
  });

  test('decodes publish with any JSON data, multi-byte UTF-8 included', () => {
    // "κόσμε 🎉" as raw UTF-8 bytes inside the JSON string.
    const bytes = Buffer.concat([
      Buffer.from('{"op":"publish","id":5,"channel":"chat:a","data":{"t":"'),
      Buffer.from('cebae1bdb9cf83cebcceb520f09f8e89', 'hex'),
      Buffer.from('","n":[1,null,false]}}'),
    ]);
    assert.deepEqual(decodeBytes(bytes), {
      op: 'publish',
      id: 5,
      channel: 'chat:a',
      data: { t: '\u03ba\u1f79\u03c3\u03bc\u03b5 \u{1f389}', n: [1, null, false] },
    });
    for (const data of ['null', '0', 'false', '""', '[]']) {
      const f = decodeBytes(Buffer.from(`{"op":"publish","id":6,"channel":"chat:a","data":${data}}`));
      assert.deepEqual(f, { op: 'publish', id: 6, channel: 'chat:a', data: JSON.parse(data) });
    }
  });

  test('decodes refresh and pong (pong needs no id)', () => {
    assert.deepEqual(decodeBytes(Buffer.from('{"op":"refresh","id":8,"token":"t"}')), { op: 'refresh', id: 8, token: 't' });
    assert.deepEqual(decodeBytes(Buffer.from('{"op":"pong"}')), { op: 'pong' });
  });

  test('ignores unknown fields and never copies them into the frame', () => {
    const f = decodeBytes(Buffer.from('{"op":"unsubscribe","id":9,"channel":"a:b","admin":true,"__proto__":{"x":1}}'));
    assert.deepEqual(Object.keys(f).sort(), ['channel', 'id', 'op']);
    assert.equal(Object.getPrototypeOf(f), Object.prototype);
  });

  test('round-trips every frame through encodeClientFrame', () => {
    const frames: ClientFrame[] = [
      { op: 'connect', id: 1, v: 1, token: 'x' },
      { op: 'subscribe', id: 2, channel: 'a:b', since: { epoch: 'e', offset: 5 } },
      { op: 'unsubscribe', id: 3, channel: 'a:b' },
      { op: 'publish', id: 4, channel: 'a:b', data: { deep: [{ x: 'ü' }] } },
      { op: 'refresh', id: 5, token: 'y' },
      { op: 'pong' },
    ];
    for (const f of frames) assert.deepEqual(decodeClientFrame(encodeClientFrame(f)), f);
  });
});

describe('decodeClientFrame: each malformed field is refused with the right code', () => {
  test('text that is not a JSON object', () => {
    refuses('', 'bad_request', /not valid JSON/);
    refuses('{"op":"connect"', 'bad_request', /not valid JSON/);
    refuses('\u00ff\u00fe', 'bad_request', /not valid JSON/);
    for (const t of ['[]', '[{"op":"pong"}]', '"connect"', '42', 'null', 'true']) refuses(t, 'bad_request', /JSON object/);
  });

  test('op missing or not a string', () => {
    refuses('{}', 'bad_request', /"op"/);
    // A valid id is echoed even when the op is not a string.
    refuses('{"op":1,"id":1}', 'bad_request', /"op"/, 1);
    refuses('{"op":["connect"],"id":1}', 'bad_request', /"op"/, 1);
    refuses('{"op":1,"id":0}', 'bad_request', /"op"/);
  });

  test('id missing, zero, negative, fractional, a string or beyond 2^53', () => {
    for (const id of ['', ',"id":0', ',"id":-1', ',"id":1.5', ',"id":"1"', ',"id":9007199254740992', ',"id":1e400', ',"id":null']) {
      refuses(`{"op":"unsubscribe","channel":"a:b"${id}}`, 'bad_request', /"id" must be a positive integer/);
    }
  });

  test('connect: v missing or not a positive integer; token empty, too long or not a string', () => {
    refuses('{"op":"connect","id":1}', 'bad_request', /"v"/, 1);
    refuses('{"op":"connect","id":1,"v":0}', 'bad_request', /"v"/, 1);
    refuses('{"op":"connect","id":1,"v":"1"}', 'bad_request', /"v"/, 1);
    refuses('{"op":"connect","id":1,"v":1,"token":""}', 'bad_request', /"token"/, 1);
    refuses('{"op":"connect","id":1,"v":1,"token":7}', 'bad_request', /"token"/, 1);
    refuses(`{"op":"connect","id":1,"v":1,"token":"${'a'.repeat(8193)}"}`, 'bad_request', /8192/, 1);
    assert.equal(
      (decodeClientFrame(`{"op":"connect","id":1,"v":1,"token":"${'a'.repeat(8192)}"}`) as { token: string }).token.length,
      8192,
    );
  });

  test('channel: missing or not a string is bad_request; a malformed name is invalid_channel', () => {
    refuses('{"op":"subscribe","id":2}', 'bad_request', /"channel"/, 2);
    refuses('{"op":"subscribe","id":2,"channel":5}', 'bad_request', /"channel"/, 2);
    for (const ch of ['nocolon', ':x', 'a:', 'a b:c', 'a:b c', 'a:b\\u0000', 'a:é', `${'n'.repeat(65)}:x`, `a:${'x'.repeat(254)}`, '']) {
      refuses(`{"op":"subscribe","id":3,"channel":"${ch}"}`, 'invalid_channel', /namespace:name/, 3);
    }
    // 255 characters in all is the limit, whatever the namespace's share.
    assert.equal(isValidChannel(`a:${'x'.repeat(253)}`), true);
    assert.equal(isValidChannel(`${'n'.repeat(64)}:${'x'.repeat(190)}`), true);
    assert.equal(isValidChannel(`${'n'.repeat(64)}:${'x'.repeat(191)}`), false);
  });

  test('since: anything but {epoch: string up to 64, offset: integer >= 0}', () => {
    for (const since of [
      '"e:5"',
      '[]',
      'null',
      '{"epoch":"e"}',
      '{"offset":1}',
      '{"epoch":1,"offset":1}',
      '{"epoch":"e","offset":-1}',
      '{"epoch":"e","offset":1.5}',
      `{"epoch":"${'e'.repeat(65)}","offset":1}`,
    ]) {
      refuses(`{"op":"subscribe","id":4,"channel":"a:b","since":${since}}`, 'bad_request', /"since"/, 4);
    }
  });

  test('publish without data, refresh without a token', () => {
    refuses('{"op":"publish","id":5,"channel":"a:b"}', 'bad_request', /"data" is required/, 5);
    refuses('{"op":"refresh","id":6}', 'bad_request', /"token"/, 6);
  });

  test('an unknown op is unknown_op, names the op (cut to 32 characters) and keeps the id', () => {
    refuses('{"op":"frobnicate","id":7}', 'unknown_op', /"frobnicate"/, 7);
    refuses(`{"op":"${'x'.repeat(100)}","id":8}`, 'unknown_op', new RegExp(`"${'x'.repeat(32)}"$`), 8);
    refuses('{"op":"__proto__","id":9}', 'unknown_op', /__proto__/, 9);
    refuses('{"op":"ping","id":10}', 'unknown_op', /ping/, 10);
  });
});

describe('channels', () => {
  test('the longest valid channel is 255 characters; namespaceOf takes what precedes the first colon', () => {
    const longest = `${'n'.repeat(64)}:${'x'.repeat(190)}`;
    assert.equal(longest.length, MAX_CHANNEL_LENGTH);
    assert.ok(isValidChannel(longest));
    assert.ok(!isValidChannel(longest + 'x'));
    assert.equal(namespaceOf('user:42:inbox'), 'user');
    for (const v of [undefined, null, 42, {}, ['a:b']]) assert.equal(isValidChannel(v), false);
  });
});

describe('encodePub', () => {
  test('output parses back to the frame, with data spliced in verbatim', () => {
    const data = JSON.stringify({ text: 'héllo "quoted" \\ \u2028 🎉', list: [1, 2.5, null], nested: { a: { b: true } } });
    const text = encodePub('chat:room/1', 'ep0ch', 9007199254740991, 1_700_000_000_123, data);
    const parsed = JSON.parse(text);
    assert.deepEqual(parsed, {
      op: 'pub',
      channel: 'chat:room/1',
      epoch: 'ep0ch',
      offset: 9007199254740991,
      ts: 1_700_000_000_123,
      data: JSON.parse(data),
    });
    assert.deepEqual(decodeServerFrame(text), parsed);
    // The bytes a client receives are valid UTF-8 and decode to the same text.
    assert.equal(Buffer.from(text, 'utf8').toString('utf8'), text);
  });

  test('channel and epoch are escaped, so they cannot break out of their strings', () => {
    const text = encodePub('a:b', 'e","op":"evil', 1, 2, 'null');
    assert.equal(JSON.parse(text).epoch, 'e","op":"evil');
    assert.equal(JSON.parse(text).op, 'pub');
  });

  test('unsequenced publications carry offset 0 and an empty epoch', () => {
    assert.deepEqual(decodeServerFrame(encodePub('a:b', '', 0, 5, '"x"')), {
      op: 'pub',
      channel: 'a:b',
      epoch: '',
      offset: 0,
      ts: 5,
      data: 'x',
    });
  });
});

describe('decodeServerFrame', () => {
  test('decodes every server frame the server encodes', () => {
    for (const f of [
      { op: 'connected', id: 1, client: 'n-1', node: 'n', heartbeat: 25000 },
      { op: 'subscribed', id: 2, channel: 'a:b', epoch: 'e', offset: 0, recovered: true },
      { op: 'published', id: 3, channel: 'a:b', epoch: 'e', offset: 1 },
      { op: 'ok', id: 4 },
      { op: 'error', id: 5, code: 'forbidden', message: 'no' },
      { op: 'ping' },
      { op: 'refresh', in: 1000 },
      { op: 'gap', channel: 'a:b', reason: 'history' },
    ] as const) {
      assert.deepEqual(decodeServerFrame(encodeServerFrame(f)), f);
    }
  });

  test('refuses malformed server frames with DecodeError', () => {
    for (const [text, code] of [
      ['nope', 'bad_request'],
      ['[]', 'bad_request'],
      ['{"op":3}', 'bad_request'],
      ['{"op":"pub","channel":"a:b","epoch":"e"}', 'bad_request'],
      ['{"op":"pub","channel":"a:b","epoch":"e","offset":-1}', 'bad_request'],
      ['{"op":"teleport"}', 'unknown_op'],
    ] as const) {
      assert.throws(
        () => decodeServerFrame(text),
        (e: unknown) => e instanceof DecodeError && e.code === code,
        text,
      );
    }
  });
});
