/**
 * Publishing from outside any gateway, and defensive decoding of what arrives on the pub/sub
 * channels (data and control). Runs against the shared Redis with a private key prefix.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { RecordingHandler } from '@gatehouse/conformance';
import { SERVICES, serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { channelKeys, connectRedisPublisher, controlChannel, PUBLISH_SCRIPT, RedisBackbone } from '../src/index.js';
import { deleteKeys } from './support.js';

const url = `redis://${SERVICES.redis.host}:${SERVICES.redis.port}`;
const skip = await serviceSkipReason('redis', 'redis direct publishing');
const KEEP = { historySize: 100, historyTtlSeconds: 60 };

describe('redis: publishing straight into the backbone', { skip: skip ?? false }, () => {
  const keyPrefix = `ghtest-${randomBytes(4).toString('hex')}`;
  const malformed: string[] = [];
  let gateway: RedisBackbone;
  const rec = new RecordingHandler();
  let raw: Redis;

  before(async () => {
    gateway = new RedisBackbone({ urls: [url], keyPrefix, onMalformed: (reason) => malformed.push(reason) });
    await gateway.start(rec);
    raw = new Redis(url);
  });
  after(async () => {
    await gateway?.close();
    raw?.disconnect();
    await deleteKeys(url, keyPrefix);
  });

  test('a publisher-only connection and a raw EVALSHA both get offsets in the one channel order', async () => {
    const ch = 'direct:orders';
    await gateway.subscribe(ch);
    const service = await connectRedisPublisher([url], { keyPrefix });
    try {
      const first = await service.publish(ch, '{"from":"service","n":1}', KEEP);
      // What a service in another language does, following docs/backbones.md: EVALSHA (EVAL on
      // NOSCRIPT) with the documented KEYS and ARGV.
      const keys = channelKeys(keyPrefix, ch);
      const args = [ch, '{"from":"raw","n":2}', Date.now(), 100, 60, 86_400, 'ext', '0'];
      const [epoch, offset] = (await raw.eval(PUBLISH_SCRIPT.lua, 2, keys.pos, keys.log, ...args)) as [string, number];
      const third = await gateway.publish(ch, '{"from":"gateway","n":3}', KEEP);
      assert.deepEqual([first.offset, offset, third.offset], [1, 2, 3]);
      assert.equal(epoch, first.epoch);
      const got = await rec.waitCount(ch, 3, 'the gateway', 10_000);
      assert.deepEqual(
        got.map((p) => [p.offset, JSON.parse(p.data).from]),
        [
          [1, 'service'],
          [2, 'raw'],
          [3, 'gateway'],
        ],
      );
      const h = await gateway.history(ch, { epoch, offset: 0 }, 10);
      assert.equal(h.complete, true);
      assert.deepEqual(
        h.publications.map((p) => p.offset),
        [1, 2, 3],
      );
      assert.equal(service.stats().malformed, 0);

      // The service can speak on the control plane but does not listen to it: only the gateway
      // is subscribed to the control channel.
      await service.sendControl({ type: 'service.hello', from: 'orders-service', data: '{"n":1}' });
      await rec.waitControl("the service's control message at the gateway", (m) => m.type === 'service.hello', 10_000);
      const [, listeners] = (await raw.pubsub('NUMSUB', controlChannel(keyPrefix))) as [string, number];
      assert.equal(listeners, 1, 'a publisher-only connection does not subscribe to the control channel');
    } finally {
      await service.close();
    }
  });

  test('malformed envelopes are counted and dropped; the next good one still arrives', async () => {
    const ch = 'direct:hostile';
    await gateway.subscribe(ch);
    const name = channelKeys(keyPrefix, ch).pubsub;
    const bad = [
      'not json',
      '[1,2]',
      // Well formed, but PUBLISHed by hand: no offset of its own, no history entry.
      '{"v":1,"channel":"direct:hostile","epoch":"e","offset":1,"ts":1,"data":1}',
      '{"v":2,"channel":"direct:hostile","epoch":"e","offset":1,"ts":1,"data":1}',
      '{"v":1,"via":"publish.lua","channel":"direct:other","epoch":"e","offset":1,"ts":1,"data":1}',
      '{"v":1,"via":"publish.lua","channel":"direct:hostile","epoch":"","offset":1,"ts":1,"data":1}',
      '{"v":1,"via":"publish.lua","channel":"direct:hostile","epoch":"e","offset":-1,"ts":1,"data":1}',
      '{"v":1,"via":"publish.lua","channel":"direct:hostile","epoch":"e","offset":1,"ts":"now","data":1}',
      '{"v":1,"via":"publish.lua","channel":"direct:hostile","epoch":"e","offset":1,"ts":1}',
      `{"v":1,"via":"publish.lua","channel":"direct:hostile","epoch":"${'x'.repeat(65)}","offset":1,"ts":1,"data":1}`,
    ];
    const before = gateway.stats().malformed;
    for (const text of bad) await raw.publish(name, text);
    const good = await gateway.publish(ch, '{"ok":true}', KEEP);
    const got = await rec.waitCount(ch, 1, 'the gateway', 10_000);
    await waitFor('every bad envelope counted', () => gateway.stats().malformed - before === bad.length);
    assert.equal(got.length, 1, 'nothing malformed was delivered');
    assert.equal(got[0]?.offset, good.offset);
    assert.equal(malformed.length, bad.length, 'onMalformed saw each one');
    assert.ok(malformed.some((m) => m.includes('"channel" does not match')));
    assert.ok(malformed.some((m) => m.includes('not written by the publish script')));
  });

  test('data that is not JSON, written by the script run by hand, never reaches a client live or through history', async () => {
    const ch = 'direct:not-json';
    await gateway.subscribe(ch);
    const keys = channelKeys(keyPrefix, ch);
    const before = gateway.stats().malformed;
    const [epoch, offset] = (await raw.eval(
      PUBLISH_SCRIPT.lua,
      2,
      keys.pos,
      keys.log,
      ch,
      'not json',
      '',
      100,
      60,
      86_400,
      'ext',
      '0',
    )) as [string, number];
    assert.equal(offset, 1);
    const good = await gateway.publish(ch, '{"ok":true}', KEEP);
    const got = await rec.waitCount(ch, 1, 'the gateway', 10_000);
    assert.deepEqual(
      got.map((p) => p.offset),
      [good.offset],
      'only the JSON publication was delivered live',
    );
    const h = await gateway.history(ch, { epoch, offset: 0 }, 10);
    assert.equal(h.complete, false, 'a recovery across it is incomplete: the client is told of a gap');
    assert.deepEqual(h.publications, []);
    assert.equal(gateway.stats().malformed - before, 2, 'counted live and when read from history');
  });

  test('the script refuses bad arguments, naming them, and writes nothing', async () => {
    const ch = 'direct:bad-args';
    const keys = channelKeys(keyPrefix, ch);
    const call = (k: string[], args: (string | number)[]) => raw.eval(PUBLISH_SCRIPT.lua, k.length, ...k, ...args);
    const good = [ch, '{}', '', 100, 60, 86_400, 'ext', '0'];
    const cases: [string[], (string | number)[], RegExp][] = [
      [[keys.pos, keys.log], good.slice(0, 7), /expects 2 keys and 8 arguments/],
      [[keys.log, keys.log], good, /KEYS\[1\] must be/],
      [[keys.pos, keys.log], ['direct:other', ...good.slice(1)], /ARGV\[1\] channel must be the one in the braces/],
      [[keys.pos, `${keys.pubsub}:x`], good, /KEYS\[2\] must be/],
      [[keys.pos, keys.log], [ch, '', ...good.slice(2)], /ARGV\[2\] data/],
      [[keys.pos, keys.log], [ch, '{}', 'now', ...good.slice(3)], /ARGV\[3\] ts/],
      [[keys.pos, keys.log], [ch, '{}', '', -1, ...good.slice(4)], /ARGV\[4\] historySize/],
      [[keys.pos, keys.log], [ch, '{}', '', 100, '1.5', ...good.slice(5)], /ARGV\[5\] historyTtlSeconds/],
      [[keys.pos, keys.log], [ch, '{}', '', 100, 60, 0, 'ext', '0'], /ARGV\[6\] idleTtlSeconds/],
      [[keys.pos, keys.log], [ch, '{}', '', 100, 60, 86_400, 'a"b', '0'], /ARGV\[7\] epochNonce/],
      [[keys.pos, keys.log], [ch, '{}', '', 100, 60, 86_400, 'ext', 'yes'], /ARGV\[8\] sharded/],
    ];
    for (const [k, args, re] of cases) await assert.rejects(call(k, args), re);
    assert.equal(await raw.exists(keys.pos, keys.log), 0, 'nothing was written');
  });

  test('hostile text on the control channel is counted and dropped; the next good message still arrives', async () => {
    const bad = [
      'not json',
      '[1]',
      '{"v":2,"type":"x","from":"n","data":1}',
      '{"v":1,"type":"Bad Type","from":"n","data":1}',
      '{"v":1,"type":"x","from":"","data":1}',
      '{"v":1,"type":"x","from":"n","to":5,"data":1}',
      '{"v":1,"type":"x","from":"n"}',
      // A publication envelope does not pass for a control message.
      '{"v":1,"channel":"a:b","epoch":"e","offset":1,"ts":1,"data":1}',
    ];
    const before = gateway.stats().controlMalformed;
    const reported = malformed.length;
    const heard = rec.controls.length;
    for (const text of bad) await raw.publish(controlChannel(keyPrefix), text);
    await gateway.sendControl({ type: 'test.after', from: 'tester', data: '{"ok":true}' });
    await rec.waitControl('the good control message', (m) => m.type === 'test.after', 10_000);
    await waitFor('every bad control message counted', () => gateway.stats().controlMalformed - before === bad.length);
    assert.deepEqual(
      rec.controls.slice(heard).map((m) => m.type),
      ['test.after'],
      'nothing malformed was delivered',
    );
    assert.ok(
      malformed.slice(reported).every((m) => m.startsWith('control: ')),
      'onMalformed says it was the control channel',
    );
  });

  test('a handler that throws is counted and does not stop delivery of publications or control messages', async () => {
    const seen: string[] = [];
    const fragile = new RedisBackbone({ urls: [url], keyPrefix });
    await fragile.start({
      onStateChange: () => {},
      onControl: (m) => {
        seen.push(m.type);
        if (m.type === 'test.boom') throw new Error('handler bug');
      },
      onPublication: (p) => {
        seen.push(String(p.offset));
        if (p.offset === 1) throw new Error('handler bug');
      },
    });
    try {
      const ch = 'direct:fragile';
      await fragile.subscribe(ch);
      await fragile.publish(ch, '1', KEEP);
      await fragile.publish(ch, '2', KEEP);
      await fragile.sendControl({ type: 'test.boom', from: 'tester', data: '1' });
      await fragile.sendControl({ type: 'test.calm', from: 'tester', data: '2' });
      await waitFor(
        'the publication and the control message after the throwing ones',
        () => seen.includes('2') && seen.includes('test.calm'),
      );
      assert.equal(fragile.stats().handlerErrors, 2);
      assert.equal(fragile.state, 'up');
    } finally {
      await fragile.close();
    }
  });

  test('bad arguments reject with a clear error', async () => {
    await assert.rejects(gateway.publish('no-namespace', '{}', KEEP), /invalid channel name/);
    await assert.rejects(gateway.publish('a:b', '{}', { historySize: -1, historyTtlSeconds: 0 }), /historySize/);
    await assert.rejects(gateway.publish('a:b', '', KEEP), /data/);
    await assert.rejects(gateway.history('a:b', { epoch: 'e', offset: -3 }, 10), /after/);
    await assert.rejects(gateway.subscribe('a b'), /invalid channel name/);
  });
});

test('options are checked at construction, naming the field', () => {
  assert.throws(() => new RedisBackbone({ urls: [] }), /"urls" must be a non-empty array/);
  assert.throws(() => new RedisBackbone({ urls: ['http://x:1'] }), /unsupported scheme "http:"/);
  assert.throws(() => new RedisBackbone({ urls: ['redis://a:1', 'redis://A:1/0'] }), /names one server twice/);
  assert.throws(() => new RedisBackbone({ urls: ['redis://a:1/x'] }), /database must be a number/);
  assert.throws(() => new RedisBackbone({ urls: ['redis://a:1'], keyPrefix: 'a{b}' }), /"keyPrefix"/);
  assert.throws(() => new RedisBackbone({ urls: ['redis://a:1'], idleTtlSeconds: 0 }), /"idleTtlSeconds"/);
  assert.throws(
    () => new RedisBackbone({ urls: ['redis://a:1'], reconnectMinDelayMs: 500, reconnectMaxDelayMs: 100 }),
    /exceeds "reconnectMaxDelayMs"/,
  );
  const ok = new RedisBackbone({ urls: ['redis://127.0.0.1'] });
  assert.equal(ok.options.keyPrefix, 'gh');
  assert.equal(ok.state, 'connecting');
});
