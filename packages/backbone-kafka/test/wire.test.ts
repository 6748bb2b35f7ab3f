/** The record format outside publishers rely on, and the partition a channel maps to. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeEnvelope } from '@gatehouse/backbone-kit';
import { decodePublication } from '../src/wire.js';
import { epochOf, murmur2, partitionFor } from '../src/index.js';

test('murmur2 matches the Java client on its own test vectors', () => {
  // From Kafka's UtilsTest.testMurmur2: the values the Java client's partitioner is built on.
  const cases: [string, number][] = [
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ];
  for (const [text, want] of cases) assert.equal(murmur2(Buffer.from(text)), want, text);
});

test('partitionFor clears the sign bit before the modulo, like the Java default partitioner', () => {
  // murmur2("21") is negative: a plain `>>> 0` would pick another partition.
  assert.equal(partitionFor('21', 7), (-973932308 & 0x7fffffff) % 7);
  for (const n of [1, 3, 8, 64]) {
    const p = partitionFor('chat:room-1', n);
    assert.ok(Number.isInteger(p) && p >= 0 && p < n);
    assert.equal(partitionFor('chat:room-1', n), p, 'stable');
  }
});

test('records are written in the v1 envelope, byte for byte as before, and read back', () => {
  // What this adapter wrote before the kit's codec replaced its own: readers of old logs and
  // outside consumers depend on it.
  const text = encodeEnvelope({
    channel: 'chat:1',
    ts: 1_700_000_000_123,
    data: '{"a":[1,"x"]}',
    historySize: 100,
    historyTtlSeconds: 300,
  });
  assert.equal(text, '{"v":1,"channel":"chat:1","ts":1700000000123,"historySize":100,"historyTtlSeconds":300,"data":{"a":[1,"x"]}}');
  assert.deepEqual(decodePublication('chat:1', Buffer.from(text), 5), {
    channel: 'chat:1',
    ts: 1_700_000_000_123,
    data: '{"a":[1,"x"]}',
    historySize: 100,
    historyTtlSeconds: 300,
  });
});

test('an outside envelope needs only v, channel and data; the record timestamp stands in for ts', () => {
  const d = decodePublication('orders:42', Buffer.from('{"channel":"orders:42","data":null,"v":1}'), 1234);
  assert.deepEqual(d, { channel: 'orders:42', ts: 1234, data: 'null', historySize: undefined, historyTtlSeconds: undefined });
});

test('decodePublication says what is wrong with a malformed record, and never throws', () => {
  const bad: [Buffer | null, RegExp][] = [
    [null, /no value/],
    [Buffer.from(''), /no value/],
    [Buffer.from('{"v":1,'), /not JSON/],
    [Buffer.from('"text"'), /not a JSON object/],
    [Buffer.from('{"v":"1","channel":"a:b","data":1}'), /version/],
    [Buffer.from('{"v":1,"channel":"a:c","data":1}'), /"channel"/],
    [Buffer.from('{"v":1,"channel":"a:b"}'), /"data" is missing/],
    [Buffer.from('{"v":1,"channel":"a:b","data":1,"ts":-5}'), /"ts"/],
    [Buffer.from('{"v":1,"channel":"a:b","data":1,"historySize":1.5}'), /historySize/],
    [Buffer.from([0xff, 0xfe]), /UTF-8/],
  ];
  for (const [value, why] of bad) {
    const got = decodePublication('a:b', value, 0);
    assert.ok(typeof got === 'string' && why.test(got), `${String(value)}: ${JSON.stringify(got)}`);
  }
  assert.match(String(decodePublication('no-colon', Buffer.from('{"v":1,"channel":"no-colon","data":1}'), 0)), /valid channel/);
});

test('epochs differ per topic id and per partition', () => {
  assert.notEqual(epochOf('t1', 0), epochOf('t2', 0));
  assert.notEqual(epochOf('t1', 0), epochOf('t1', 1));
  assert.ok(epochOf('c7f6746d-ada3-4b07-88dd-7ff8df61bbca', 9999).length <= 64, "fits the protocol's 64-character epoch");
});
