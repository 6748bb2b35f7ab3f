/**
 * The shared wire format: what the adapters write decodes back to the same publication, control
 * message or record; whatever bytes arrive, decoding answers a value or a reason and never throws;
 * and only well-formed JSON comes out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeControl,
  decodeEnvelope,
  decodeRecord,
  encodeControl,
  encodeEnvelope,
  encodeRecord,
  envelopeHead,
  type DecodedEnvelope,
} from '../src/envelope.js';

const channelArb = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}:[A-Za-z0-9_.:@=/+-]{1,20}$/);
const tsArb = fc.nat({ max: 4_000_000_000_000 }).map((n) => n / 1000);
/** JSON text of any value, compact or pretty-printed (publishers send both). */
const dataArb = fc.tuple(fc.jsonValue(), fc.boolean()).map(([v, pretty]) => (pretty ? JSON.stringify(v, null, 2) : JSON.stringify(v)));
const nodeArb = fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/);

function decoded(result: DecodedEnvelope | string): DecodedEnvelope {
  assert.equal(typeof result, 'object', `decoded, not rejected: ${String(result)}`);
  return result as DecodedEnvelope;
}

test('every form the adapters write decodes to the same publication, data re-serialized', () => {
  fc.assert(
    fc.property(channelArb, tsArb, dataArb, fc.nat(), fc.nat(), (channel, ts, data, historySize, historyTtlSeconds) => {
      const canonical = JSON.stringify(JSON.parse(data));
      const plain = decoded(decodeEnvelope(encodeEnvelope({ channel, ts, data }), channel));
      assert.deepEqual(plain, { channel, ts, data: canonical, historySize: undefined, historyTtlSeconds: undefined });
      const kafka = decoded(decodeEnvelope(Buffer.from(encodeEnvelope({ channel, ts, data, historySize, historyTtlSeconds })), channel));
      assert.equal(kafka.historySize, historySize);
      assert.equal(kafka.historyTtlSeconds, historyTtlSeconds);
      assert.equal(kafka.data, canonical);
      const redis = decoded(
        decodeEnvelope(encodeEnvelope({ channel, ts, data, epoch: 'e1', offset: 7 }), channel, { requirePosition: true }),
      );
      assert.equal(redis.epoch, 'e1');
      assert.equal(redis.offset, 7);
    }),
  );
});

test('the encoded forms are byte for byte the v1 wire format', () => {
  assert.equal(envelopeHead('a:b'), '{"v":1,"channel":"a:b"');
  assert.equal(encodeEnvelope({ channel: 'a:b', ts: 1.5, data: '{"x": 1}' }), '{"v":1,"channel":"a:b","ts":1.5,"data":{"x": 1}}');
  assert.equal(
    encodeEnvelope({ channel: 'a:b', ts: 2, data: '1', epoch: '', offset: 0 }),
    '{"v":1,"channel":"a:b","epoch":"","offset":0,"ts":2,"data":1}',
  );
  assert.equal(
    encodeEnvelope({ channel: 'a:b', ts: 2, data: '1', historySize: 10, historyTtlSeconds: 60 }),
    '{"v":1,"channel":"a:b","ts":2,"historySize":10,"historyTtlSeconds":60,"data":1}',
  );
});

test('decoding arbitrary text or bytes answers a publication or a reason, never throws', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json(), fc.uint8Array()), channelArb, (input, channel) => {
      const result = decodeEnvelope(input, channel);
      if (typeof result !== 'string') JSON.parse(result.data);
    }),
  );
});

test('mutated envelopes are rejected or decode to well-formed JSON of the right channel', () => {
  fc.assert(
    fc.property(channelArb, tsArb, dataArb, fc.nat(), fc.string({ minLength: 1, maxLength: 1 }), (channel, ts, data, at, ch) => {
      const text = encodeEnvelope({ channel, ts, data });
      const i = at % text.length;
      const result = decodeEnvelope(text.slice(0, i) + ch + text.slice(i + 1), channel);
      if (typeof result === 'string') return;
      assert.equal(result.channel, channel);
      JSON.parse(result.data);
    }),
  );
});

test('each way an envelope can be wrong has its own reason', () => {
  const cases: [string | Uint8Array, string, RegExp][] = [
    [Uint8Array.of(0xff, 0xfe), 'a:b', /not UTF-8/],
    ['{"v":1', 'a:b', /not JSON/],
    ['[1]', 'a:b', /not a JSON object/],
    ['{"channel":"a:b","ts":1,"data":1}', 'a:b', /unsupported envelope version undefined/],
    ['{"v":2,"channel":"a:b","ts":1,"data":1}', 'a:b', /unsupported envelope version 2/],
    ['{"v":1,"channel":"a:c","ts":1,"data":1}', 'a:b', /"channel" does not match/],
    ['{"v":1,"channel":"bad","ts":1,"data":1}', 'bad', /not a valid channel name/],
    ['{"v":1,"channel":"a:b","ts":1}', 'a:b', /"data" is missing/],
    ['{"v":1,"channel":"a:b","data":1}', 'a:b', /"ts" must be/],
    ['{"v":1,"channel":"a:b","ts":-1,"data":1}', 'a:b', /"ts" must be/],
    ['{"v":1,"channel":"a:b","ts":1,"historySize":-1,"data":1}', 'a:b', /"historySize"/],
    ['{"v":1,"channel":"a:b","ts":1,"historyTtlSeconds":"9","data":1}', 'a:b', /"historyTtlSeconds"/],
  ];
  for (const [input, channel, reason] of cases) {
    const result = decodeEnvelope(input, channel);
    assert.equal(typeof result, 'string', `${String(input)} is rejected`);
    assert.match(result as string, reason);
  }
});

test('a missing ts takes the default only when the reader gives one', () => {
  assert.equal(decoded(decodeEnvelope('{"v":1,"channel":"a:b","data":1}', 'a:b', { defaultTs: 42 })).ts, 42);
  assert.equal(decoded(decodeEnvelope('{"v":1,"channel":"a:b","ts":7,"data":1}', 'a:b', { defaultTs: 42 })).ts, 7);
});

test('requirePosition demands a real position; without it the position is not read', () => {
  const core = '{"v":1,"channel":"a:b","epoch":"","offset":0,"ts":1,"data":1}';
  const plain = decoded(decodeEnvelope(core, 'a:b'));
  assert.equal(plain.epoch, undefined);
  assert.equal(plain.offset, undefined);
  assert.match(decodeEnvelope(core, 'a:b', { requirePosition: true }) as string, /"epoch" must be a string of 1-64/);
  const longEpoch = `{"v":1,"channel":"a:b","epoch":"${'e'.repeat(65)}","offset":1,"ts":1,"data":1}`;
  assert.match(decodeEnvelope(longEpoch, 'a:b', { requirePosition: true }) as string, /"epoch"/);
  const zero = '{"v":1,"channel":"a:b","epoch":"e","offset":0,"ts":1,"data":1}';
  assert.match(decodeEnvelope(zero, 'a:b', { requirePosition: true }) as string, /"offset" must be an integer >= 1/);
});

test('control messages survive the wire, with and without a recipient', () => {
  fc.assert(
    fc.property(
      fc.stringMatching(/^[a-z0-9._-]{1,64}$/),
      nodeArb,
      fc.option(nodeArb, { nil: undefined }),
      dataArb,
      (type, from, to, data) => {
        const msg = to === undefined ? { type, from, data } : { type, from, to, data };
        const back = decodeControl(encodeControl(msg));
        assert.deepEqual(back, { ...msg, data: JSON.stringify(JSON.parse(data)) });
        assert.deepEqual(decodeControl(Buffer.from(encodeControl(msg))), back);
      },
    ),
  );
});

test('bad control messages on the wire are reasons, never exceptions', () => {
  assert.match(decodeControl('{"v":1,"type":"Bad","from":"n","data":1}') as string, /type "Bad"/);
  assert.match(decodeControl('{"v":1,"type":"a","from":"n","to":7,"data":1}') as string, /to 7/);
  assert.match(decodeControl('{"v":1,"type":"a","from":"n"}') as string, /"data" is missing/);
  assert.match(decodeControl('{"v":3,"type":"a","from":"n","data":1}') as string, /version 3/);
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json(), fc.uint8Array()), (input) => {
      const result = decodeControl(input);
      if (typeof result !== 'string') JSON.parse(result.data);
    }),
  );
});

test('records survive storage; bad stored records are reasons', () => {
  fc.assert(
    fc.property(
      fc.string({ minLength: 1, maxLength: 40 }).filter((k) => !/[\u0000-\u001f\u007f]|\p{Surrogate}/u.test(k)),
      dataArb,
      tsArb,
      (key, value, expiresAt) => {
        const back = decodeRecord('token.revoked', encodeRecord({ key, value, expiresAt }));
        assert.deepEqual(back, { key, value: JSON.stringify(JSON.parse(value)), expiresAt });
      },
    ),
  );
  assert.match(decodeRecord('token.revoked', '{"v":1,"key":"","expiresAt":1,"value":1}') as string, /record key ""/);
  assert.match(decodeRecord('token.revoked', '{"v":1,"key":"k","expiresAt":"soon","value":1}') as string, /expiresAt/);
  assert.match(decodeRecord('token.revoked', '{"v":1,"key":"k","expiresAt":1}') as string, /"value" is missing/);
  assert.match(decodeRecord('Bad Kind', '{"v":1,"key":"k","expiresAt":1,"value":1}') as string, /record kind/);
});
