/**
 * Abuse cases 11-29 (../shared/guide/abuse-cases.md, "After the upgrade"): a peer that breaks the
 * WebSocket protocol or the application protocol is closed with the right code, and its memory
 * is freed. Frames are written byte by byte over raw TCP (raw-ws.ts), because a WebSocket library
 * refuses to send them. The gateway runs as a child process; each case ends by checking that the
 * process is alive, that a bystander still receives publications, and (for the heavy cases) that
 * heap and Buffer memory came back to within a few MiB of where they were.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '@gatehouse/testkit';
import { token } from '../helpers.js';
import { Bystander, ChildGateway } from './harness.js';
import type { Memory } from './harness.js';
import { Op, RawWs, closeBody, encodeFrame, rawHttp, upgradeRequest } from './raw-ws.js';
import type { FrameSpec } from './raw-ws.js';

const tokens = new Set<string>();
async function mint(sub: string, claims: Record<string, unknown> = {}, ttl = 3600): Promise<string> {
  const t = await token(sub, claims, ttl);
  tokens.add(t);
  return t;
}

const MAX_SUBSCRIPTIONS = 16;

describe('abuse cases 11-29: after the upgrade (19 cases)', () => {
  let gw: ChildGateway;
  let bystander: Bystander;
  let baseline: Memory;
  let baselineSubscriptions: number;

  before(async () => {
    // Defaults except: few subscriptions per connection (case 24 reaches the cap quickly) and a
    // short linger so backbone subscriptions return to baseline within the test.
    gw = await ChildGateway.start({ maxSubscriptions: MAX_SUBSCRIPTIONS, channelLingerMs: 100 });
    bystander = await Bystander.join(gw.port);
    await bystander.check();
    // Warm up the paths the cases use, so lazily built state does not count as growth.
    for (let i = 0; i < 5; i++) {
      const ws = await RawWs.connect(gw.port);
      ws.sendFrame({ opcode: Op.Text, payload: 'x', mask: false });
      await ws.waitClose();
      ws.destroy();
    }
    baseline = await gw.memory();
    baselineSubscriptions = (await gw.command('backbone'))['subscriptions'] as number;
  });

  after(async () => {
    bystander?.close();
    await gw?.stop();
  });

  async function unharmed(what: string): Promise<void> {
    await gw.assertAlive();
    await bystander.check(`a publication after ${what}`);
  }

  /**
   * Opens a connected client, writes `frames`, and asserts the server closes with `code`, and
   * that the violation was counted in gatehouse_protocol_errors_total under the WebSocket
   * library's error code `wsCode` (ws sends its protocol closes without a reason text).
   */
  async function expectClose(what: string, frames: (FrameSpec | Buffer)[], code: number, wsCode: string): Promise<void> {
    const errorsBefore = await gw.metric('gatehouse_protocol_errors_total', { code: wsCode });
    const ws = await RawWs.connect(gw.port);
    ws.write(Buffer.concat(frames.map((f) => (Buffer.isBuffer(f) ? f : encodeFrame(f)))));
    const close = await ws.waitClose();
    assert.equal(close.code, code, `${what}: closed with ${close.code} ${close.reason}`);
    await ws.waitEnded();
    ws.destroy();
    assert.equal(await gw.metric('gatehouse_protocol_errors_total', { code: wsCode }), errorsBefore + 1, `${what}: counted as ${wsCode}`);
  }

  test('case 11: an unmasked client frame is closed with 1002', async () => {
    await expectClose('unmasked text', [{ opcode: Op.Text, payload: '{"op":"pong"}', mask: false }], 1002, 'WS_ERR_EXPECTED_MASK');
    await expectClose('unmasked ping', [{ opcode: Op.Ping, mask: false }], 1002, 'WS_ERR_EXPECTED_MASK');
    await unharmed('unmasked frames');
  });

  test('case 12: reserved bits without a negotiated extension are closed with 1002', async () => {
    for (const rsv of [4, 2, 1, 7]) {
      await expectClose(
        `RSV ${rsv} on text`,
        [{ opcode: Op.Text, payload: '{"op":"pong"}', rsv }],
        1002,
        rsv & 3 ? 'WS_ERR_UNEXPECTED_RSV_2_3' : 'WS_ERR_UNEXPECTED_RSV_1',
      );
    }
    await expectClose('RSV1 on ping', [{ opcode: Op.Ping, rsv: 4 }], 1002, 'WS_ERR_UNEXPECTED_RSV_1');
    await unharmed('reserved bits');
  });

  test('case 13: reserved opcodes are closed with 1002', async () => {
    for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
      await expectClose(`opcode ${opcode}`, [{ opcode, payload: 'x' }], 1002, 'WS_ERR_INVALID_OPCODE');
    }
    await unharmed('reserved opcodes');
  });

  test('case 14: a control frame longer than 125 bytes, or fragmented, is closed with 1002', async () => {
    await expectClose('126-byte ping', [{ opcode: Op.Ping, payload: Buffer.alloc(126, 1) }], 1002, 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH');
    await expectClose(
      '126-byte close',
      [{ opcode: Op.Close, payload: closeBody(1000, 'x'.repeat(124)) }],
      1002,
      'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH',
    );
    await expectClose('fragmented ping', [{ opcode: Op.Ping, payload: 'a', fin: false }], 1002, 'WS_ERR_EXPECTED_FIN');
    await expectClose('fragmented close', [{ opcode: Op.Close, payload: closeBody(1000), fin: false }], 1002, 'WS_ERR_EXPECTED_FIN');
    await unharmed('bad control frames');
  });

  test('case 15: a continuation without a start, or a new data frame inside a fragmented message, is closed with 1002', async () => {
    await expectClose('lone continuation', [{ opcode: Op.Continuation, payload: 'x' }], 1002, 'WS_ERR_INVALID_OPCODE');
    await expectClose(
      'text inside text',
      [
        { opcode: Op.Text, payload: '{"op":', fin: false },
        { opcode: Op.Text, payload: '"pong"}' },
      ],
      1002,
      'WS_ERR_INVALID_OPCODE',
    );
    await expectClose(
      'binary inside text',
      [
        { opcode: Op.Text, payload: '{', fin: false },
        { opcode: Op.Binary, payload: '}' },
      ],
      1002,
      'WS_ERR_INVALID_OPCODE',
    );
    await unharmed('broken fragmentation');
  });

  test('case 16: invalid UTF-8 in a text message or a close reason, also split across fragments, is closed with 1007', async () => {
    await expectClose('0xff in text', [{ opcode: Op.Text, payload: Buffer.from([0x7b, 0xff, 0x7d]) }], 1007, 'WS_ERR_INVALID_UTF8');
    await expectClose(
      'surrogate half in text',
      [{ opcode: Op.Text, payload: Buffer.from([0xed, 0xa0, 0x80]) }],
      1007,
      'WS_ERR_INVALID_UTF8',
    );
    // Each fragment ends or starts mid-character; only the whole message is invalid.
    await expectClose(
      'split across fragments',
      [
        { opcode: Op.Text, payload: Buffer.from([0x22, 0xce]), fin: false },
        { opcode: Op.Continuation, payload: Buffer.from([0x41, 0x22]) },
      ],
      1007,
      'WS_ERR_INVALID_UTF8',
    );
    await expectClose(
      'code point above U+10FFFF across fragments',
      [
        { opcode: Op.Text, payload: Buffer.from([0x22, 0xf4]), fin: false },
        { opcode: Op.Continuation, payload: Buffer.from([0x90, 0x80]), fin: false },
        { opcode: Op.Continuation, payload: Buffer.from([0x80, 0x22]) },
      ],
      1007,
      'WS_ERR_INVALID_UTF8',
    );
    await expectClose(
      'bad close reason',
      [{ opcode: Op.Close, payload: closeBody(1000, Buffer.from([0xc0, 0xaf])) }],
      1007,
      'WS_ERR_INVALID_UTF8',
    );
    await unharmed('invalid UTF-8');
  });

  test('case 17: a close frame with a one-byte body or an invalid code is closed with 1002', async () => {
    await expectClose(
      'one-byte close',
      [{ opcode: Op.Close, payload: Buffer.from([0x03]) }],
      1002,
      'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH',
    );
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
      await expectClose(`close code ${code}`, [{ opcode: Op.Close, payload: closeBody(code) }], 1002, 'WS_ERR_INVALID_CLOSE_CODE');
    }
    // The control: a valid close is answered in kind, so the checks above can tell them apart.
    const ws = await RawWs.connect(gw.port);
    ws.sendFrame({ opcode: Op.Close, payload: closeBody(4321, 'bye') });
    assert.equal((await ws.waitClose()).code, 4321);
    ws.destroy();
    await unharmed('bad close frames');
  });

  test('case 18: a declared length above the payload limit, including a 64-bit length with the top bit set, is closed with 1009 before the payload arrives', async () => {
    // Only the header is sent: a close that arrives proves nothing waited for (or allocated) the body.
    const headers = [
      encodeFrame({ opcode: Op.Text, declaredLength: 65_537 }),
      encodeFrame({ opcode: Op.Text, declaredLength: 1n << 40n }),
      encodeFrame({ opcode: Op.Binary, declaredLength: 0x8000_0000_0000_0000n }),
      encodeFrame({ opcode: Op.Text, declaredLength: 0xffff_ffff_ffff_ffffn }),
    ]; // header + mask key, no payload
    for (const h of headers)
      await expectClose(
        `declared ${h.toString('hex').slice(0, 20)}`,
        [h],
        1009,
        h.readBigUInt64BE(2) >= 2n ** 53n ? 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH' : 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
      );
    // Fifty at once, then memory.
    const many = await Promise.all(Array.from({ length: 50 }, () => RawWs.connect(gw.port)));
    for (const ws of many) ws.write(headers[1] as Buffer);
    for (const ws of many) {
      assert.equal((await ws.waitClose()).code, 1009);
      ws.destroy();
    }
    await unharmed('lying lengths');
    await gw.assertMemoryBack(baseline, 4, 'after lying lengths');
  });

  test('case 19: fragments that together exceed the payload limit are closed with 1009', async () => {
    await expectClose(
      '40000 + 30000 bytes',
      [
        { opcode: Op.Text, payload: Buffer.alloc(40_000, 0x20), fin: false },
        { opcode: Op.Continuation, payload: Buffer.alloc(30_000, 0x20) },
      ],
      1009,
      'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
    );
    await expectClose(
      '20 x 4000 bytes',
      [
        { opcode: Op.Binary, payload: Buffer.alloc(4000, 1), fin: false },
        ...Array.from({ length: 19 }, () => ({ opcode: Op.Continuation, payload: Buffer.alloc(4000, 1), fin: false })),
      ],
      1009,
      'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
    );
    await unharmed('oversized fragmented messages');
    await gw.assertMemoryBack(baseline, 4, 'after oversized fragmented messages');
  });

  test('case 20: a flood of tiny fragments that never completes is closed by the fragment limit (ws maxFragments/maxBufferedChunks set low), heap bounded', async () => {
    // maxFragments defaults to 64; 5000 one-byte fragments per connection, 40 connections.
    const flood = Buffer.concat([
      encodeFrame({ opcode: Op.Text, payload: ' ', fin: false }),
      ...Array.from({ length: 5000 }, () => encodeFrame({ opcode: Op.Continuation, payload: ' ', fin: false })),
    ]);
    const partsBefore = await gw.metric('gatehouse_protocol_errors_total', { code: 'WS_ERR_TOO_MANY_BUFFERED_PARTS' });
    const conns = await Promise.all(Array.from({ length: 40 }, () => RawWs.connect(gw.port)));
    for (const ws of conns) ws.write(flood);
    for (const ws of conns) {
      const close = await ws.waitClose();
      assert.equal(close.code, 1008, JSON.stringify(close));
      ws.destroy();
    }
    // The buffered-chunk limit: one frame's payload dripped in one-byte writes is cut once the
    // receiver holds maxBufferedChunks (4 x maxFragments = 256) pieces of it.
    const drip = await RawWs.connect(gw.port);
    // 60000 bytes: even if a busy server coalesces 200 bytes per read, that is 300 reads > 256.
    const frame = encodeFrame({ opcode: Op.Text, payload: Buffer.alloc(60_000, 0x20) });
    drip.write(frame.subarray(0, 8)); // 4-byte header + mask
    for (let i = 8; i < frame.length && !drip.closeFrame && !drip.ended; i++) {
      drip.write(frame.subarray(i, i + 1));
      await new Promise((r) => setTimeout(r, 1));
    }
    const close = await drip.waitClose();
    assert.equal(close.code, 1008, `dripped frame: ${JSON.stringify(close)}`);
    drip.destroy();
    assert.equal(
      await gw.metric('gatehouse_protocol_errors_total', { code: 'WS_ERR_TOO_MANY_BUFFERED_PARTS' }),
      partsBefore + 41,
      'every one counted',
    );
    await unharmed('a fragment flood');
    await gw.assertMemoryBack(baseline, 4, 'after a fragment flood');
  });

  test('case 21: compression is off, so no compression bomb can be sent: deflate is never negotiated and a compressed frame is 1002', async () => {
    const ws = await RawWs.open(gw.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' } });
    assert.doesNotMatch(ws.handshake, /sec-websocket-extensions/i);
    ws.destroy();
    // A deflated "bomb" (RSV1 set) on a connection without the extension.
    const bomb = Buffer.from('f2ff0f000000ffff', 'hex');
    await expectClose('RSV1 compressed frame', [{ opcode: Op.Text, payload: bomb, rsv: 4 }], 1002, 'WS_ERR_UNEXPECTED_RSV_1');
    await unharmed('a compressed frame');
  });

  test('case 22: a ping flood gets at most maxPingsPerSecond pongs, then 1008', async () => {
    const ws = await RawWs.connect(gw.port);
    ws.write(Buffer.concat(Array.from({ length: 500 }, () => encodeFrame({ opcode: Op.Ping, payload: Buffer.alloc(125, 7) }))));
    const close = await ws.waitClose();
    assert.equal(close.code, 1008, JSON.stringify(close));
    assert.match(close.reason, /ping rate/);
    const pongs = ws.frames.filter((f) => f.opcode === Op.Pong).length;
    // 10 per second; a burst may straddle one second boundary.
    assert.ok(pongs <= 20, `${pongs} pongs for 500 pings`);
    ws.destroy();
    await unharmed('a ping flood');
    await gw.assertMemoryBack(baseline, 4, 'after a ping flood');
  });

  test('case 23: an application message flood is throttled with rate_limited errors, then closed 1008', async () => {
    const ws = await RawWs.connect(gw.port);
    // 150 requests at once: over the 100/s limit, under the 200/s that closes. Each gets an error
    // reply (throttled ones without an id: they are not even parsed), so the test knows when all
    // were handled. A burst that happens to straddle a second boundary splits under the limit;
    // the next one, a second later, cannot straddle it too.
    const request = encodeFrame({ opcode: Op.Text, payload: '{"op":"unsubscribe","id":1,"channel":"public:none"}' });
    let throttled = 0;
    for (let attempt = 0; attempt < 3 && throttled === 0; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 1000));
      const seen = ws.json().length;
      ws.write(Buffer.concat(Array.from({ length: 150 }, () => request)));
      const replies = await waitFor('150 replies', () => (ws.json().length >= seen + 150 ? ws.json().slice(seen) : undefined));
      assert.ok(
        replies.every((r) => r['op'] === 'error'),
        JSON.stringify(replies.find((r) => r['op'] !== 'error')),
      );
      throttled = replies.filter((r) => r['code'] === 'rate_limited').length;
    }
    assert.ok(throttled > 0, 'throttled with rate_limited errors');
    assert.equal(ws.closeFrame, undefined, 'throttled, not closed, below twice the limit');
    // Then a real flood: 2000 messages in one write.
    const msg = encodeFrame({ opcode: Op.Text, payload: '{"op":"pong"}' });
    ws.write(Buffer.concat(Array.from({ length: 2000 }, () => msg)));
    const close = await ws.waitClose();
    assert.equal(close.code, 1008, JSON.stringify(close));
    assert.match(close.reason, /message rate/);
    ws.destroy();
    await unharmed('a message flood');
    await gw.assertMemoryBack(baseline, 4, 'after a message flood');
  });

  test('case 24: subscription floods, invalid channel names and churn get one clear error each; backbone subscriptions return to baseline', async () => {
    const ws = await RawWs.connect(gw.port);
    // Past the cap: every request beyond it gets limit_exceeded.
    const replies = await Promise.all(
      Array.from({ length: MAX_SUBSCRIPTIONS + 6 }, (_, i) => ws.request({ op: 'subscribe', channel: `public:flood-${i}` })),
    );
    assert.equal(replies.filter((r) => r['op'] === 'subscribed').length, MAX_SUBSCRIPTIONS);
    const refused = replies.filter((r) => r['op'] === 'error');
    assert.equal(refused.length, 6);
    for (const r of refused) assert.equal(r['code'], 'limit_exceeded');
    // Invalid names: one error per request, each naming the problem.
    const bad: [unknown, string][] = [
      ['nocolon', 'invalid_channel'],
      ['public:', 'invalid_channel'],
      [`public:${'x'.repeat(300)}`, 'invalid_channel'],
      ['pub lic:x', 'invalid_channel'],
      ['public:a b', 'invalid_channel'],
      ['public:\u0000', 'invalid_channel'],
      [42, 'bad_request'],
      ['nosuchns:x', 'unknown_namespace'],
      ['public:flood-0', 'already_subscribed'],
    ];
    for (const [channel, code] of bad) {
      const r = await ws.request({ op: 'subscribe', channel });
      assert.equal(r['op'], 'error', `${JSON.stringify(channel)}: ${JSON.stringify(r)}`);
      assert.equal(r['code'], code, `${JSON.stringify(channel)}: ${JSON.stringify(r)}`);
      assert.ok(typeof r['message'] === 'string' && r['message'].length > 0);
    }
    assert.equal((await ws.request({ op: 'unsubscribe', channel: 'public:never' }))['code'], 'not_subscribed');
    ws.destroy();
    // Churn on five connections: subscribe and unsubscribe distinct channels as fast as replies come.
    await Promise.all(
      Array.from({ length: 5 }, async (_, c) => {
        const w = await RawWs.connect(gw.port);
        for (let round = 0; round < 4; round++) {
          const chans = Array.from({ length: 10 }, (_, i) => `public:churn-${c}-${round}-${i}`);
          const subs = await Promise.all(chans.map((channel) => w.request({ op: 'subscribe', channel })));
          assert.ok(
            subs.every((r) => r['op'] === 'subscribed'),
            JSON.stringify(subs.find((r) => r['op'] !== 'subscribed')),
          );
          const unsubs = await Promise.all(chans.map((channel) => w.request({ op: 'unsubscribe', channel })));
          assert.ok(unsubs.every((r) => r['op'] === 'ok'));
        }
        w.destroy();
      }),
    );
    await waitFor(
      'backbone subscriptions to return to baseline',
      async () => {
        const b = await gw.command('backbone');
        return b['subscriptions'] === baselineSubscriptions;
      },
      5000,
    );
    assert.equal(await gw.metric('gatehouse_channels'), 1, 'only the bystander channel is left');
    await unharmed('subscription abuse');
    await gw.assertMemoryBack(baseline, 4, 'after subscription churn');
  });

  test('case 27: malformed application frames get an error reply or a protocol close, never a crash or prototype pollution', async () => {
    const ws = await RawWs.connect(gw.port);
    const deep = '['.repeat(20_000) + ']'.repeat(20_000);
    const cases: [string, string][] = [
      ['not json', 'bad_request'],
      ['{"op":"subscribe"', 'bad_request'],
      ['[]', 'bad_request'],
      ['"subscribe"', 'bad_request'],
      ['null', 'bad_request'],
      ['12', 'bad_request'],
      [deep, 'bad_request'],
      ['{"op":42,"id":1}', 'bad_request'],
      ['{"op":"subscribe","id":"7","channel":"public:a"}', 'bad_request'],
      ['{"op":"subscribe","id":-1,"channel":"public:a"}', 'bad_request'],
      ['{"op":"subscribe","id":1e400,"channel":"public:a"}', 'bad_request'],
      ['{"op":"subscribe","id":123456789012345678901234567890,"channel":"public:a"}', 'bad_request'],
      ['{"op":"subscribe","id":3,"channel":["public:a"]}', 'bad_request'],
      ['{"op":"subscribe","id":4,"channel":"public:a","since":"yesterday"}', 'bad_request'],
      ['{"op":"subscribe","id":5,"channel":"public:a","since":{"epoch":"e","offset":1e400}}', 'bad_request'],
      ['{"op":"publish","id":6,"channel":"public:a"}', 'bad_request'],
      ['{"op":"refresh","id":8,"token":42}', 'bad_request'],
      ['{"op":"frobnicate","id":9}', 'unknown_op'],
      ['{"op":"__proto__","id":10}', 'unknown_op'],
      ['{"op":"constructor","id":11}', 'unknown_op'],
      ['{"op":"toString","id":12}', 'unknown_op'],
      ['{"__proto__":{"polluted":1,"op":"subscribe"},"id":13}', 'bad_request'],
      ['{"constructor":{"prototype":{"polluted":1}},"op":"nope","id":14}', 'unknown_op'],
      ['{"op":"subscribe","id":15,"channel":"__proto__:x"}', 'unknown_namespace'],
      ['{"op":"subscribe","id":16,"channel":"constructor:x"}', 'unknown_namespace'],
      ['{"op":"subscribe","id":17,"channel":"hasOwnProperty:x"}', 'unknown_namespace'],
      ['{"op":"publish","id":18,"channel":"public:a","data":{"__proto__":{"polluted":1}}}', 'forbidden'],
    ];
    for (const [text, code] of cases) {
      const before = ws.json().length;
      ws.sendText(text);
      const reply = await waitFor(
        `a reply to ${text.slice(0, 40)}`,
        () => ws.json()[before] ?? (ws.closeFrame ? { op: 'closed' } : undefined),
      );
      assert.equal(reply['op'], 'error', `${text.slice(0, 60)}: ${JSON.stringify(reply)}`);
      assert.equal(reply['code'], code, `${text.slice(0, 60)}: ${JSON.stringify(reply)}`);
    }
    // Binary where text is expected: an error after connect, a protocol close before it.
    ws.sendFrame({ opcode: Op.Binary, payload: Buffer.from('{"op":"pong"}') });
    await waitFor('the binary frame error', () => ws.json().find((f) => f['code'] === 'bad_request' && /binary/.test(f['message'])));
    assert.equal(ws.closeFrame, undefined, 'malformed frames after connect get errors, not a close');
    ws.destroy();
    const fresh = await RawWs.open(gw.port);
    fresh.sendFrame({ opcode: Op.Binary, payload: Buffer.from([1, 2, 3]) });
    assert.equal((await fresh.waitClose()).code, 4000);
    fresh.destroy();
    const first = await RawWs.open(gw.port);
    first.sendText('{"op":"subscribe","id":1,"channel":"public:a"}');
    assert.equal((await first.waitClose()).code, 4000, 'the first frame must be connect');
    first.destroy();
    // An unknown non-ASCII op is quoted in the close reason: it must still fit a close frame
    // (this frame used to make ws throw and kill the process).
    const wide = await RawWs.open(gw.port);
    wide.sendText(JSON.stringify({ op: '\u20ac'.repeat(40), id: 1 }));
    const wideClose = await wide.waitClose();
    assert.equal(wideClose.code, 4000);
    assert.ok(wideClose.body.length <= 125);
    wide.destroy();

    // With publish rights: hostile keys are carried as data, and data nested too deeply to
    // serialize is refused (this frame used to kill the process).
    const pub = await RawWs.connect(gw.port, await mint('p27', { publish: ['public:*'] }));
    const watcher = await RawWs.connect(gw.port);
    assert.equal((await watcher.request({ op: 'subscribe', channel: 'public:proto' }))['op'], 'subscribed');
    const polluting = await pub.request({
      op: 'publish',
      channel: 'public:proto',
      data: JSON.parse('{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}}}'),
    });
    assert.equal(polluting['op'], 'published');
    const [p] = await waitFor('the hostile publication', () => {
      const got = watcher.json().filter((f) => f['op'] === 'pub');
      return got.length > 0 ? got : undefined;
    });
    assert.ok(Object.hasOwn(p?.['data'], '__proto__'), 'the __proto__ key arrives as plain data');
    const before = pub.json().length;
    pub.sendText(`{"op":"publish","id":99,"channel":"public:proto","data":${deep}}`);
    const reply = await waitFor('the deep publish reply', () => pub.json()[before]);
    assert.equal(reply['code'], 'bad_request');
    assert.match(reply['message'], /nested/);
    pub.destroy();
    watcher.destroy();

    const proto = await gw.command('proto');
    assert.equal(proto['changed'], false, 'Object.prototype gained no property');
    assert.equal(proto['polluted'], false);
    await unharmed('malformed application frames');
    await gw.assertMemoryBack(baseline, 4, 'after malformed frames');
  });

  test('case 25: a client that stops reading while the node publishes 10 MB/s is cut at the outbound cap with 4300; others keep up', async () => {
    // Its own node: a 1 MiB outbound cap (default 4 MiB) keeps the flood short; default heartbeat,
    // so the stalled client is caught by the queue cap, not by a missed heartbeat.
    const node = await ChildGateway.start({ maxQueueBytes: 1024 * 1024, closeTimeoutMs: 1000 });
    try {
      const by = await Bystander.join(node.port);
      const reader = await Bystander.join(node.port, { channel: 'public:firehose' });
      const stalled = await RawWs.connect(node.port);
      assert.equal((await stalled.request({ op: 'subscribe', channel: 'public:firehose' }))['op'], 'subscribed');
      const before = await node.memory();
      stalled.socket.pause();
      const { sent } = await node.command(
        'flood',
        { channel: 'public:firehose', size: 16 * 1024, bytesPerSecond: 10 * 1024 * 1024, seconds: 8, untilConnectionsBelow: 3 },
        20_000,
      );
      assert.equal(await node.metric('gatehouse_slow_consumer_disconnects_total'), 1, 'one slow consumer, counted');
      assert.ok(
        node.logs.some((l) => l.includes('slow consumer disconnected')),
        'and logged',
      );
      // The stalled socket was destroyed after the close timeout: reading now finds its end.
      stalled.socket.resume();
      await stalled.waitEnded(5000);
      if (stalled.closeFrame) assert.equal(stalled.closeFrame.code, 4300, 'if the close frame got through, it says slow consumer');
      assert.ok(stalled.json().filter((f) => f['op'] === 'pub').length < sent, 'the stalled client did not get everything');
      // The reading client got every publication, in order.
      const got = await waitFor(
        `the reader to receive all ${sent} publications`,
        () => {
          const pubs = reader.ws.json().filter((f) => f['op'] === 'pub' && f['channel'] === 'public:firehose');
          return pubs.length >= sent ? pubs : undefined;
        },
        15_000,
      );
      assert.deepEqual(
        got.map((f) => f['offset']),
        Array.from({ length: sent }, (_, i) => i + 1),
      );
      assert.equal(reader.ws.closeFrame, undefined);
      reader.close();
      await node.assertAlive();
      await by.check('a publication after a slow consumer');
      await node.assertMemoryBack(before, 4, 'after a slow consumer');
      by.close();
    } finally {
      await node.stop();
    }
  });

  describe('heartbeats and token expiry (a node with a 400 ms heartbeat)', () => {
    let hb: ChildGateway;
    let hbBystander: Bystander;
    const HEARTBEAT_MS = 400;

    before(async () => {
      hb = await ChildGateway.start({ heartbeatMs: HEARTBEAT_MS, tokenGraceMs: 300, closeTimeoutMs: 1000 });
      hbBystander = await Bystander.join(hb.port);
    });
    after(async () => {
      hbBystander?.close();
      await hb?.stop();
    });

    test('case 26: a half-open peer (never answers, never sends FIN) is closed 4301 within two heartbeat intervals and dropped', async () => {
      const ghost = await RawWs.connect(hb.port, undefined, { echoClose: false });
      const start = Date.now();
      const close = await ghost.waitClose(2 * HEARTBEAT_MS + 3000);
      assert.equal(close.code, 4301, JSON.stringify(close));
      // Detected by the second beat after it went quiet; the slack covers slot rounding on busy cores.
      assert.ok(Date.now() - start < 2 * HEARTBEAT_MS + 2500, `closed after ${Date.now() - start} ms`);
      // It never answers the close either: the socket is destroyed after the close timeout.
      await ghost.waitEnded(3000);
      ghost.destroy();
      await waitFor('the node to forget the peer', async () => (await hb.connections()) === 1);
      await hb.assertAlive();
      await hbBystander.check('a publication after a half-open peer');
    });

    test('case 28: a token that expires while connected is asked to refresh, then closed 4005 after the grace period; a refreshed one stays', async () => {
      const expiring = await RawWs.connect(hb.port, await mint('u28', {}, 3), { autoPong: true });
      const refreshing = await RawWs.connect(hb.port, await mint('u28b', {}, 3), { autoPong: true });
      for (const ws of [expiring, refreshing]) {
        await waitFor('the refresh request', () => ws.json().find((f) => f['op'] === 'refresh' && typeof f['in'] === 'number'), 5000);
      }
      const ok = await refreshing.request({ op: 'refresh', token: await mint('u28b', {}, 3600) });
      assert.equal(ok['op'], 'ok');
      // A refresh for someone else is refused.
      const other = await refreshing.request({ op: 'refresh', token: await mint('intruder', {}, 3600) });
      assert.equal(other['code'], 'forbidden');
      const close = await expiring.waitClose(8000);
      assert.equal(close.code, 4005, JSON.stringify(close));
      expiring.destroy();
      // The refreshed connection outlives the old expiry by several heartbeats.
      await new Promise((r) => setTimeout(r, 4 * HEARTBEAT_MS));
      assert.equal(refreshing.closeFrame, undefined, 'the refreshed connection is still open');
      assert.equal((await refreshing.request({ op: 'subscribe', channel: 'public:after-refresh' }))['op'], 'subscribed');
      refreshing.destroy();
      await hb.assertAlive();
      await hbBystander.check('a publication after token expiry');
      hb.assertNoSecretsLogged(tokens);
    });
  });

  test('case 29: graceful shutdown closes every client with 4200 and a retry delay, spread over the drain window, then exits', async () => {
    const node = await ChildGateway.start({});
    const by = await Bystander.join(node.port);
    const clients = await Promise.all(Array.from({ length: 20 }, () => RawWs.connect(node.port)));
    try {
      const WINDOW = 1000;
      await node.command('drain', { windowMs: WINDOW });
      // Refused while draining, with a retry hint.
      const res = await rawHttp(node.port, upgradeRequest(node.port));
      assert.equal(res.status, 503);
      assert.match(res.headers['retry-after'] ?? '', /^\d+$/);
      for (const c of [...clients, by.ws]) {
        const close = await c.waitClose(WINDOW + 5000);
        assert.equal(close.code, 4200, JSON.stringify(close));
        assert.match(close.reason, /retry=\d+$/);
      }
      const times = clients.map((c) => c.closedAt as number).sort((a, b) => a - b);
      assert.equal(times.length, clients.length);
      assert.ok(
        (times.at(-1) as number) - (times[0] as number) >= WINDOW / 2,
        `closes spread over ${(times.at(-1) as number) - (times[0] as number)} ms`,
      );
      const exit = await node.waitExit(10_000);
      assert.equal(exit.code, 0, 'the process exits by itself after the drain');
    } finally {
      for (const c of clients) c.destroy();
      by.close();
      await node.stop();
    }
  });

  test('no token handed to the gateway appears in any log line', () => {
    gw.assertNoSecretsLogged(tokens);
  });
});
