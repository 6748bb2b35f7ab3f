/**
 * The lean client's wire code, fed real bytes: handshake answers, server frames whole and split
 * across chunks, fragmented messages, protocol violations, and masked client frames.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  OP_CLOSE,
  OP_PING,
  OP_TEXT,
  acceptFor,
  clientFrame,
  isPub,
  pubOffset,
  pubTs,
  readFrames,
  readHandshake,
  serverTextFrame,
  upgradeRequest,
} from '../src/wire.js';
import type { ReaderState } from '../src/wire.js';

type Got = [number, string];

function reader(): { state: ReaderState; got: Got[]; feed: (hex: string | Buffer) => string | undefined } {
  const state: ReaderState = { rest: null, fragOpcode: 0, frags: null };
  const got: Got[] = [];
  const feed = (bytes: string | Buffer) =>
    readFrames(state, typeof bytes === 'string' ? Buffer.from(bytes.replace(/\s+/g, ''), 'hex') : bytes, (_s, op, data, start, end) => {
      got.push([op, data.toString('utf8', start, end)]);
    });
  return { state, got, feed };
}

/** Unmasks a client frame as a server would, returning opcode and payload. */
function unmask(frame: Buffer): { fin: boolean; opcode: number; masked: boolean; payload: Buffer } {
  const b1 = frame[1] as number;
  let len = b1 & 0x7f;
  let p = 2;
  if (len === 126) {
    len = frame.readUInt16BE(2);
    p = 4;
  } else if (len === 127) {
    len = frame.readUInt32BE(6);
    p = 10;
  }
  const mask = frame.subarray(p, p + 4);
  const payload = Buffer.from(frame.subarray(p + 4, p + 4 + len));
  for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i & 3] as number);
  return { fin: ((frame[0] as number) & 0x80) !== 0, opcode: (frame[0] as number) & 0x0f, masked: (b1 & 0x80) !== 0, payload };
}

describe('handshake', () => {
  test('computes the accept value of the RFC 6455 example', () => {
    assert.equal(acceptFor('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  test('writes an upgrade request with the key and version 13', () => {
    const req = upgradeRequest('127.0.0.1', 8080, '/ws', 'abc=');
    assert.match(req, /^GET \/ws HTTP\/1\.1\r\n/);
    assert.match(req, /\r\nSec-WebSocket-Key: abc=\r\n/);
    assert.match(req, /\r\nSec-WebSocket-Version: 13\r\n\r\n$/);
  });

  test('waits for the whole header block, then says where frames begin', () => {
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    const head =
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n';
    assert.equal(readHandshake(Buffer.from(head.slice(0, 40)), key), undefined);
    const withFrame = Buffer.concat([Buffer.from(head), Buffer.from('8102686b', 'hex')]);
    assert.deepEqual(readHandshake(withFrame, key), { ok: true, bodyStart: head.length });
  });

  test('reports a refusal by its status and a wrong accept value', () => {
    assert.deepEqual(readHandshake(Buffer.from('HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n'), 'k'), {
      ok: false,
      error: 'HTTP 429',
    });
    const bad = 'HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n';
    assert.deepEqual(readHandshake(Buffer.from(bad), 'dGhlIHNhbXBsZSBub25jZQ=='), { ok: false, error: 'wrong Sec-WebSocket-Accept' });
  });
});

describe('reading server frames', () => {
  test('parses an unmasked text message', () => {
    const r = reader();
    assert.equal(r.feed('81 05 48656c6c6f'), undefined);
    assert.deepEqual(r.got, [[OP_TEXT, 'Hello']]);
  });

  test('parses several frames in one chunk and a ping between them', () => {
    const r = reader();
    assert.equal(r.feed('8102 6869 8900 8103 616263'), undefined);
    assert.deepEqual(r.got, [
      [OP_TEXT, 'hi'],
      [OP_PING, ''],
      [OP_TEXT, 'abc'],
    ]);
  });

  test('keeps a frame split across chunks until it is complete, byte by byte', () => {
    const r = reader();
    const bytes = Buffer.from('810548656c6c6f', 'hex');
    for (const b of bytes) assert.equal(r.feed(Buffer.from([b])), undefined);
    assert.deepEqual(r.got, [[OP_TEXT, 'Hello']]);
    assert.equal(r.state.rest, null);
  });

  test('reads 16-bit lengths', () => {
    const r = reader();
    const text = 'x'.repeat(300);
    assert.equal(r.feed(serverTextFrame(text)), undefined);
    assert.deepEqual(r.got, [[OP_TEXT, text]]);
  });

  test('joins a fragmented message', () => {
    const r = reader();
    assert.equal(r.feed('0103 48656c 0000 8002 6c6f'), undefined);
    assert.deepEqual(r.got, [[OP_TEXT, 'Hello']]);
  });

  test('hands over a close frame with its code', () => {
    const r = reader();
    assert.equal(r.feed('8802 03e8'), undefined);
    assert.equal(r.got[0]?.[0], OP_CLOSE);
  });

  test('refuses masked server frames, reserved bits, long control frames and stray continuations', () => {
    assert.match(reader().feed('8185 00000000 48656c6c6f') ?? '', /must not be masked/);
    assert.match(reader().feed('c100') ?? '', /reserved bits/);
    assert.match(reader().feed('897e 007e' + '00'.repeat(126)) ?? '', /control frames/);
    assert.match(reader().feed('8000') ?? '', /continuation/);
  });
});

describe('client frames', () => {
  test('are masked, and unmask to the payload', () => {
    const payload = '{"op":"connect","id":1,"v":1}';
    const f = unmask(clientFrame(OP_TEXT, payload));
    assert.equal(f.masked, true);
    assert.equal(f.fin, true);
    assert.equal(f.opcode, OP_TEXT);
    assert.equal(f.payload.toString(), payload);
  });

  test('use a fresh masking key for every frame', () => {
    const keys = new Set<string>();
    for (let i = 0; i < 50; i++) keys.add(clientFrame(OP_TEXT, 'same').subarray(2, 6).toString('hex'));
    assert.ok(keys.size > 45, `only ${keys.size} distinct keys in 50 frames`);
  });

  test('carry 16-bit lengths for larger payloads', () => {
    const big = 'y'.repeat(1000);
    const f = unmask(clientFrame(OP_TEXT, big));
    assert.equal(f.payload.toString(), big);
  });
});

describe('pub frames', () => {
  test('are recognised by prefix, and their offset and ts read without parsing', () => {
    const text = '{"op":"pub","channel":"public:bench","epoch":"e1","offset":42,"ts":1764300000123.456,"data":{"ts":1,"offset":7}}';
    const buf = Buffer.from(`junk${text}junk`);
    const start = 4;
    const end = 4 + text.length;
    assert.equal(isPub(buf, start, end), true);
    assert.equal(pubOffset(buf, start, end), 42);
    assert.equal(pubTs(buf, start, end), 1764300000123.456);
    assert.equal(isPub(Buffer.from('{"op":"ping"}'), 0, 13), false);
  });
});
