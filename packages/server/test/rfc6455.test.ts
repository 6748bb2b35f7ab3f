/**
 * RFC 6455 conformance of the gateway as configured (64 KiB payload limit, 64 fragments, no
 * compression, 10 pings per second), with raw frames over node:net. Grouped and numbered after
 * the Autobahn|Testsuite case groups they mirror: 1 framing, 2 ping/pong, 3 reserved bits,
 * 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close handling, 9 limits. The gateway is not an echo
 * server, so "the message was received intact" is shown by a protocol reply to it: each text
 * message is a valid request (padded with JSON whitespace to the size under test), and a binary
 * message is answered with the protocol's "binary is not part of v1" error.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '@gatehouse/testkit';
import type { Gateway } from '../src/index.js';
import { startGateway } from './helpers.js';
import { metricValue } from './abuse/harness.js';
import { Op, RawWs, closeBody, encodeFrame } from './abuse/raw-ws.js';
import type { FrameSpec } from './abuse/raw-ws.js';

let gw: Gateway;
before(async () => {
  // Admission limits high: this suite opens a few hundred connections from one address.
  gw = await startGateway({ connectRatePerAddress: 100_000, connectRate: 100_000 });
});
after(async () => {
  await gw.close();
});

let nextId = 1000;

/** A request of exactly `size` bytes (padded with JSON whitespace) and the id its reply carries. */
function request(size = 0, extra = ''): { id: number; text: Buffer } {
  const id = nextId++;
  const core = `{"op":"unsubscribe","id":${id},"channel":"public:none"${extra}`;
  const pad = Math.max(0, size - Buffer.byteLength(core) - 1);
  return { id, text: Buffer.concat([Buffer.from(core), Buffer.alloc(pad, 0x20), Buffer.from('}')]) };
}

/** A connected raw client. */
async function open(): Promise<RawWs> {
  return RawWs.connect(gw.port);
}

/** Waits for the protocol reply to request `id` (proof the message arrived whole). */
async function replied(ws: RawWs, id: number): Promise<void> {
  const r = await waitFor(
    `the reply to request ${id}`,
    () => ws.json().find((f) => f['id'] === id) ?? (ws.closeFrame ? { closed: ws.closeFrame.code } : undefined),
  );
  assert.equal(r['op'], 'error', JSON.stringify(r));
  assert.equal(r['code'], 'not_subscribed', JSON.stringify(r));
}

/** Waits for the server's "binary frames are not part of protocol v1" reply number `n`. */
async function binaryRefused(ws: RawWs, n = 1): Promise<void> {
  await waitFor(
    `${n} binary refusal(s)`,
    () => ws.json().filter((f) => f['code'] === 'bad_request' && /binary/.test(f['message'])).length >= n || ws.closeFrame,
  );
  assert.equal(ws.closeFrame, undefined);
}

/** Asserts the server fails the connection with `code`, then closes TCP; server frames are never masked. */
async function fails(ws: RawWs, code: number): Promise<void> {
  const close = await ws.waitClose();
  assert.equal(close.code, code, `closed with ${close.code}`);
  await ws.waitEnded();
  done(ws);
}

/** Common end: no server frame was masked (RFC 6455 5.1), and nothing followed its close frame (5.5.1). */
function done(ws: RawWs): void {
  assert.ok(
    ws.frames.every((f) => !f.masked),
    'a server frame was masked',
  );
  const closeAt = ws.frames.findIndex((f) => f.opcode === Op.Close);
  if (closeAt >= 0) assert.equal(ws.frames.length, closeAt + 1, `${ws.frames.length - closeAt - 1} frame(s) after the close frame`);
  ws.destroy();
}

/** Sends frames one write each, or byte by byte when `chop` (Autobahn's "chopped" variants). */
async function send(ws: RawWs, frames: FrameSpec[], chop = false): Promise<void> {
  const bytes = Buffer.concat(frames.map(encodeFrame));
  if (!chop) return ws.write(bytes);
  for (let i = 0; i < bytes.length; i++) {
    ws.write(bytes.subarray(i, i + 1));
    if (i % 16 === 15) await new Promise((r) => setImmediate(r));
  }
}

describe('RFC 6455 1: framing', () => {
  for (const [n, size] of [
    [1, 0],
    [2, 125],
    [3, 126],
    [4, 127],
    [5, 128],
    [6, 65535],
    [7, 65536],
  ] as const) {
    test(`1.1.${n}: a text message of ${size} bytes arrives whole (${size < 126 ? '7-bit' : size < 65536 ? '16-bit' : '64-bit'} length)`, async () => {
      const ws = await open();
      if (size === 0) {
        ws.sendFrame({ opcode: Op.Text });
        await waitFor('the empty message error', () => ws.json().find((f) => f['code'] === 'bad_request'));
      } else {
        const r = request(size);
        assert.equal(r.text.length, size);
        ws.sendFrame({ opcode: Op.Text, payload: r.text });
        await replied(ws, r.id);
      }
      done(ws);
    });
  }
  test('1.1.8: a 65536-byte text message written in 997-byte chunks arrives whole', async () => {
    const ws = await open();
    const r = request(65536);
    const bytes = encodeFrame({ opcode: Op.Text, payload: r.text });
    for (let i = 0; i < bytes.length; i += 997) ws.write(bytes.subarray(i, i + 997));
    await replied(ws, r.id);
    done(ws);
  });
  for (const [n, size] of [
    [1, 0],
    [2, 125],
    [3, 126],
    [4, 127],
    [5, 128],
    [6, 65535],
    [7, 65536],
  ] as const) {
    test(`1.2.${n}: a binary message of ${size} bytes is read whole and refused by the protocol, not the framing`, async () => {
      const ws = await open();
      ws.sendFrame({ opcode: Op.Binary, payload: Buffer.alloc(size, 0xfe) });
      await binaryRefused(ws);
      done(ws);
    });
  }
});

describe('RFC 6455 2: ping/pong', () => {
  for (const [n, what, payload] of [
    [1, 'no payload', Buffer.alloc(0)],
    [2, 'a small text payload', Buffer.from('Hello, world!')],
    [3, 'a small binary payload', Buffer.from([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff])],
    [4, 'a 125-byte payload', Buffer.alloc(125, 0xfe)],
  ] as const) {
    test(`2.${n}: a ping with ${what} is answered by a pong with the same payload`, async () => {
      const ws = await open();
      ws.sendFrame({ opcode: Op.Ping, payload });
      const pong = await waitFor('the pong', () => ws.frames.find((f) => f.opcode === Op.Pong));
      assert.deepEqual(pong.payload, payload);
      done(ws);
    });
  }
  test('2.5: a ping with a 126-byte payload fails the connection with 1002', async () => {
    const ws = await open();
    ws.sendFrame({ opcode: Op.Ping, payload: Buffer.alloc(126, 0xfe) });
    await fails(ws, 1002);
  });
  test('2.6: a 125-byte ping written byte by byte is answered', async () => {
    const ws = await open();
    await send(ws, [{ opcode: Op.Ping, payload: Buffer.alloc(125, 0x61) }], true);
    const pong = await waitFor('the pong', () => ws.frames.find((f) => f.opcode === Op.Pong));
    assert.equal(pong.payload.length, 125);
    done(ws);
  });
  test('2.7-2.9: unsolicited pongs are ignored, and a ping after them is still answered', async () => {
    const ws = await open();
    ws.sendFrame({ opcode: Op.Pong });
    ws.sendFrame({ opcode: Op.Pong, payload: 'unsolicited' });
    ws.sendFrame({ opcode: Op.Ping, payload: 'after' });
    const pong = await waitFor('the pong', () => ws.frames.find((f) => f.opcode === Op.Pong));
    assert.equal(pong.payload.toString(), 'after');
    assert.equal(ws.frames.filter((f) => f.opcode === Op.Pong).length, 1);
    const r = request();
    ws.sendFrame({ opcode: Op.Text, payload: r.text });
    await replied(ws, r.id);
    done(ws);
  });
  for (const [n, chop] of [
    [10, false],
    [11, true],
  ] as const) {
    test(`2.${n}: ten pings in a row${chop ? ', written byte by byte,' : ''} get ten pongs in order (the rate limit allows ten a second)`, async () => {
      const ws = await open();
      await send(
        ws,
        Array.from({ length: 10 }, (_, i) => ({ opcode: Op.Ping, payload: `ping-${i}` })),
        chop,
      );
      const pongs = await waitFor('ten pongs', () => {
        const p = ws.frames.filter((f) => f.opcode === Op.Pong);
        return p.length >= 10 ? p : undefined;
      });
      assert.deepEqual(
        pongs.map((p) => p.payload.toString()),
        Array.from({ length: 10 }, (_, i) => `ping-${i}`),
      );
      done(ws);
    });
  }
});

describe('RFC 6455 3: reserved bits', () => {
  const cases: [string, number, FrameSpec[]][] = [
    ['3.1: RSV1 on a small text message', 4, []],
    ['3.2: RSV2 on a text message after a valid one', 2, [{ opcode: Op.Text, payload: request().text }]],
    ['3.3: RSV1+RSV2 on a text message', 6, []],
    ['3.4: RSV3 on a text message', 1, []],
    ['3.5: RSV1+RSV3 on a binary message', 5, []],
    ['3.6: RSV2+RSV3 on a ping', 3, []],
    ['3.7: RSV1+RSV2+RSV3 on a close', 7, []],
  ];
  for (const [name, rsv, first] of cases) {
    test(`${name} fails the connection with 1002`, async () => {
      const ws = await open();
      const opcode = name.includes('binary') ? Op.Binary : name.includes('ping') ? Op.Ping : name.includes('close') ? Op.Close : Op.Text;
      await send(ws, [...first, { opcode, rsv, payload: opcode === Op.Close ? closeBody(1000) : 'x' }]);
      await fails(ws, 1002);
    });
  }
});

describe('RFC 6455 4: opcodes', () => {
  let n = 0;
  for (const opcode of [3, 4, 5, 6, 7]) {
    n++;
    test(`4.1.${n}: reserved non-control opcode ${opcode}${n > 2 ? ' after a valid text message' : ''} fails the connection with 1002`, async () => {
      const ws = await open();
      const first = n > 2 ? [{ opcode: Op.Text, payload: request().text }] : [];
      await send(ws, [...first, { opcode, payload: n % 2 ? '' : 'reserved' }]);
      await fails(ws, 1002);
    });
  }
  n = 0;
  for (const opcode of [11, 12, 13, 14, 15]) {
    n++;
    test(`4.2.${n}: reserved control opcode ${opcode} fails the connection with 1002`, async () => {
      const ws = await open();
      await send(ws, [{ opcode, payload: n % 2 ? '' : 'reserved' }]);
      await fails(ws, 1002);
    });
  }
});

describe('RFC 6455 5: fragmentation', () => {
  test('5.1: a fragmented ping fails the connection with 1002', async () => {
    const ws = await open();
    await send(ws, [
      { opcode: Op.Ping, payload: 'frag', fin: false },
      { opcode: Op.Continuation, payload: 'ment' },
    ]);
    await fails(ws, 1002);
  });
  test('5.2: a fragmented pong fails the connection with 1002', async () => {
    const ws = await open();
    await send(ws, [
      { opcode: Op.Pong, payload: 'frag', fin: false },
      { opcode: Op.Continuation, payload: 'ment' },
    ]);
    await fails(ws, 1002);
  });
  for (const [n, chop] of [
    [3, false],
    [4, true],
  ] as const) {
    test(`5.${n}: a text message in two fragments${chop ? ', written byte by byte,' : ''} arrives whole`, async () => {
      const ws = await open();
      const r = request(200);
      await send(
        ws,
        [
          { opcode: Op.Text, payload: r.text.subarray(0, 90), fin: false },
          { opcode: Op.Continuation, payload: r.text.subarray(90) },
        ],
        chop,
      );
      await replied(ws, r.id);
      done(ws);
    });
  }
  test('5.6: a ping between the fragments of a text message is answered, and the message arrives whole', async () => {
    const ws = await open();
    const r = request(100);
    await send(ws, [
      { opcode: Op.Text, payload: r.text.subarray(0, 40), fin: false },
      { opcode: Op.Ping, payload: 'between' },
      { opcode: Op.Continuation, payload: r.text.subarray(40) },
    ]);
    await replied(ws, r.id);
    const pongAt = ws.frames.findIndex((f) => f.opcode === Op.Pong);
    assert.ok(pongAt >= 0);
    assert.equal(ws.frames[pongAt]?.payload.toString(), 'between');
    done(ws);
  });
  test('5.9: a final continuation without a start fails the connection with 1002', async () => {
    const ws = await open();
    await send(ws, [
      { opcode: Op.Continuation, payload: 'orphan' },
      { opcode: Op.Text, payload: request().text },
    ]);
    await fails(ws, 1002);
  });
  test('5.12: a non-final continuation without a start fails the connection with 1002', async () => {
    const ws = await open();
    await send(ws, [{ opcode: Op.Continuation, payload: 'orphan', fin: false }]);
    await fails(ws, 1002);
  });
  test('5.15: a new text message started inside a fragmented one fails the connection with 1002', async () => {
    const ws = await open();
    await send(ws, [
      { opcode: Op.Text, payload: '{"op":', fin: false },
      { opcode: Op.Continuation, payload: '"pong"}' },
      { opcode: Op.Continuation, payload: 'again', fin: false },
    ]);
    await fails(ws, 1002);
  });
  test('5.18: two text starts in a row fail the connection with 1002', async () => {
    const ws = await open();
    await send(ws, [
      { opcode: Op.Text, payload: '{', fin: false },
      { opcode: Op.Text, payload: '}', fin: false },
    ]);
    await fails(ws, 1002);
  });
  test('5.19: a text message in five fragments with pings between them gets every pong and arrives whole', async () => {
    const ws = await open();
    const r = request(250);
    const frames: FrameSpec[] = [];
    for (let i = 0; i < 5; i++) {
      frames.push({ opcode: i === 0 ? Op.Text : Op.Continuation, payload: r.text.subarray(i * 50, (i + 1) * 50), fin: i === 4 });
      if (i < 4) frames.push({ opcode: Op.Ping, payload: `p${i}` });
    }
    await send(ws, frames);
    await replied(ws, r.id);
    assert.deepEqual(
      ws.frames.filter((f) => f.opcode === Op.Pong).map((f) => f.payload.toString()),
      ['p0', 'p1', 'p2', 'p3'],
    );
    done(ws);
  });
  test('5.20: an empty final continuation completes a message', async () => {
    const ws = await open();
    const r = request();
    await send(ws, [{ opcode: Op.Text, payload: r.text, fin: false }, { opcode: Op.Continuation }]);
    await replied(ws, r.id);
    done(ws);
  });
});

describe('RFC 6455 6: UTF-8 handling', () => {
  const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
  // [Autobahn group, what, bytes inside a JSON string, valid?]
  const samples: [string, string, Buffer, boolean][] = [
    ['6.2', 'Hello-µ@ßöäüàá-UTF-8!!', Buffer.from('Hello-µ@ßöäüàá-UTF-8!!'), true],
    ['6.5', 'κόσμε', Buffer.from('κόσμε'), true],
    ['6.7', 'first possible sequences of each length', hex('c280 e0a080 f0908080'), true],
    ['6.9', 'last possible sequences (U+10FFFF)', hex('dfbf efbfbf f48fbfbf'), true],
    ['6.11', 'boundary U+D7FF and U+E000', hex('ed9fbf ee8080'), true],
    ['6.23', 'noncharacters U+FFFE, U+FFFF', hex('efbfbe efbfbf'), true],
    ['6.3', 'κόσμε with a broken sequence', hex('cebae1bdb9cf83cebcceb5eda080656469746564'), false],
    ['6.6', 'κόσμε then a lone continuation byte', hex('cebae1bdb9cf83cebcceb580'), false],
    ['6.8', 'a 5-byte sequence', hex('f888808080'), false],
    ['6.8', 'a 6-byte sequence', hex('fc8480808080'), false],
    ['6.10', 'a code point above U+10FFFF', hex('f4908080'), false],
    ['6.12', 'unexpected continuation bytes', hex('80bf'), false],
    ['6.13', 'lonely start characters', hex('c020c120'), false],
    ['6.14', 'a sequence missing its last byte', hex('e08020'), false],
    ['6.15', 'concatenated incomplete sequences', hex('c0e080f08080'), false],
    ['6.16', 'impossible bytes fe, ff', hex('fe ff'), false],
    ['6.17', 'overlong slash', hex('c0af'), false],
    ['6.18', 'maximum overlong sequences', hex('c1bf e09fbf'), false],
    ['6.19', 'a single UTF-16 surrogate', hex('eda080'), false],
    ['6.20', 'a paired UTF-16 surrogate', hex('eda080edb080'), false],
  ];
  for (const [group, what, bytes, valid] of samples) {
    for (const split of [false, true]) {
      test(`${group}: ${what}${split ? ', one fragment per byte' : ''} ${valid ? 'arrives whole' : 'fails the connection with 1007'}`, async () => {
        const ws = await open();
        const r = request(0, `,"pad":"`);
        // request() ends with '}'; splice the sample into the string before it.
        const text = Buffer.concat([r.text.subarray(0, r.text.length - 1), bytes, Buffer.from('"}')]);
        if (split) {
          // At most 64 fragments (maxFragments): the JSON around the sample goes in one piece each.
          const head = text.subarray(0, text.length - bytes.length - 2);
          const frames: FrameSpec[] = [{ opcode: Op.Text, payload: head, fin: false }];
          for (const b of bytes) frames.push({ opcode: Op.Continuation, payload: Buffer.from([b]), fin: false });
          frames.push({ opcode: Op.Continuation, payload: '"}' });
          await send(ws, frames);
        } else {
          ws.sendFrame({ opcode: Op.Text, payload: text });
        }
        if (valid) {
          await replied(ws, r.id);
          done(ws);
        } else {
          await fails(ws, 1007);
        }
      });
    }
  }
  test('6.1: a binary message is never checked for UTF-8', async () => {
    const ws = await open();
    ws.sendFrame({ opcode: Op.Binary, payload: hex('fffe80c0') });
    await binaryRefused(ws);
    done(ws);
  });
});

describe('RFC 6455 7: close handling', () => {
  test('7.1.1: a message then a clean close: the close is echoed with 1000 and nothing follows it', async () => {
    // The reply to the message may or may not make it out before the echo (replies are written
    // once per tick); what must hold is the echo, and no frame after it.
    const ws = await open();
    const r = request();
    await send(ws, [
      { opcode: Op.Text, payload: r.text },
      { opcode: Op.Close, payload: closeBody(1000) },
    ]);
    assert.equal((await ws.waitClose()).code, 1000);
    await ws.waitEnded();
    done(ws);
  });
  test('7.1.6 (adapted): a client with a write backlog closes while publications keep coming: no data frame follows the close echo', async () => {
    const ws = await open();
    assert.equal((await ws.request({ op: 'subscribe', channel: 'public:backlog' }))['op'], 'subscribed');
    ws.socket.pause();
    const data = JSON.stringify('x'.repeat(8000));
    let stop = false;
    let rounds = 0;
    const pump = (async () => {
      while (!stop) {
        for (let i = 0; i < 20; i++) await gw.publish('public:backlog', data);
        rounds++;
        // A load, not a wait: the pause paces the publisher so the backlog builds without hitting
        // the outbound queue cap, and lets the server's reads run between rounds.
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      // Fill the kernel buffers so that the server's close echo has to queue behind a backlog.
      // More than a tick's worth of queue: the kernel buffers are full and the socket holds a backlog.
      await waitFor(
        'a server-side backlog',
        async () => metricValue(await gw.metrics.registry.metrics(), 'gatehouse_outbound_queue_max_bytes') > 1024 * 1024,
        10_000,
        20,
      );
      ws.sendFrame({ opcode: Op.Close, payload: closeBody(1000) });
      // The close frame was in the server's receive buffer before this probe connected, so once
      // the probe's request is answered the server has read the close. Publications must then
      // keep coming for a while: two more rounds of them.
      const probe = await open();
      const r = request();
      probe.sendFrame({ opcode: Op.Text, payload: r.text });
      await replied(probe, r.id);
      probe.destroy();
      const seen = rounds;
      await waitFor('two rounds of publications after the close was read', () => rounds >= seen + 2);
    } finally {
      stop = true;
      await pump;
    }
    ws.socket.resume();
    await ws.waitEnded(10_000);
    done(ws);
  });
  test('7.1.2-7.1.5: after a close, a second close, a ping and a text message are ignored', async () => {
    const ws = await open();
    const r = request();
    await send(ws, [
      { opcode: Op.Close, payload: closeBody(1000) },
      { opcode: Op.Close, payload: closeBody(1001) },
      { opcode: Op.Ping, payload: 'late' },
      { opcode: Op.Text, payload: r.text },
    ]);
    await ws.waitEnded();
    assert.equal(ws.frames.filter((f) => f.opcode === Op.Close).length, 1);
    assert.equal(ws.closeFrame?.code, 1000);
    assert.ok(!ws.frames.some((f) => f.opcode === Op.Pong), 'no pong after the close');
    assert.ok(!ws.json().some((f) => f['id'] === r.id), 'no reply after the close');
    done(ws);
  });
  test('7.3.1: a close with an empty body is answered with an empty close', async () => {
    const ws = await open();
    ws.sendFrame({ opcode: Op.Close });
    const close = await ws.waitClose();
    assert.equal(close.body.length, 0);
    await ws.waitEnded();
    done(ws);
  });
  test('7.3.2: a close with a one-byte body fails the connection with 1002', async () => {
    const ws = await open();
    ws.sendFrame({ opcode: Op.Close, payload: Buffer.from([0x03]) });
    await fails(ws, 1002);
  });
  for (const [n, reason] of [
    [3, ''],
    [4, 'Hello World!'],
    [5, 'x'.repeat(123)],
  ] as const) {
    test(`7.3.${n}: a close 1000 with a ${reason.length}-byte reason is echoed with 1000`, async () => {
      const ws = await open();
      ws.sendFrame({ opcode: Op.Close, payload: closeBody(1000, reason) });
      assert.equal((await ws.waitClose()).code, 1000);
      await ws.waitEnded();
      done(ws);
    });
  }
  test('7.3.6: a close with a 124-byte reason (126-byte control payload) fails the connection with 1002', async () => {
    const ws = await open();
    ws.sendFrame({ opcode: Op.Close, payload: closeBody(1000, 'x'.repeat(124)) });
    await fails(ws, 1002);
  });
  test('7.5.1: a close reason that is not valid UTF-8 fails the connection with 1007', async () => {
    const ws = await open();
    ws.sendFrame({ opcode: Op.Close, payload: closeBody(1000, Buffer.from('cebae1bdb9cf83cebcceb5eda080656469746564', 'hex')) });
    await fails(ws, 1007);
  });
  let n = 0;
  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]) {
    n++;
    test(`7.7.${n}: a close with valid code ${code} is echoed`, async () => {
      const ws = await open();
      ws.sendFrame({ opcode: Op.Close, payload: closeBody(code) });
      assert.equal((await ws.waitClose()).code, code);
      await ws.waitEnded();
      done(ws);
    });
  }
  n = 0;
  for (const code of [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]) {
    n++;
    test(`7.9.${n}: a close with invalid code ${code} fails the connection with 1002`, async () => {
      const ws = await open();
      ws.sendFrame({ opcode: Op.Close, payload: closeBody(code) });
      await fails(ws, 1002);
    });
  }
  for (const [n, code] of [
    [1, 5000],
    [2, 65535],
  ] as const) {
    test(`7.13.${n}: a close with out-of-range code ${code} fails the connection with 1002`, async () => {
      const ws = await open();
      ws.sendFrame({ opcode: Op.Close, payload: closeBody(code) });
      await fails(ws, 1002);
    });
  }
  test('7.x: a server-initiated close (auth timeout not reached; bad first frame) carries a valid code and ends TCP after the echo', async () => {
    const ws = await RawWs.open(gw.port);
    ws.sendText('{"op":"subscribe","id":1,"channel":"public:a"}');
    const close = await ws.waitClose();
    assert.equal(close.code, 4000);
    assert.ok(close.body.length <= 125);
    await ws.waitEnded();
    done(ws);
  });
});

describe('RFC 6455 9: limits (as configured: 64 KiB payload, 64 fragments)', () => {
  test('9.1.1: a text message of exactly the payload limit (65536 bytes) is accepted', async () => {
    const ws = await open();
    const r = request(65536);
    ws.sendFrame({ opcode: Op.Text, payload: r.text });
    await replied(ws, r.id);
    done(ws);
  });
  test('9.1.2: a text message one byte over the limit fails the connection with 1009', async () => {
    const ws = await open();
    ws.sendFrame({ opcode: Op.Text, payload: request(65537).text });
    await fails(ws, 1009);
  });
  test('9.2.1: a binary message over the limit fails the connection with 1009', async () => {
    const ws = await open();
    ws.sendFrame({ opcode: Op.Binary, payload: Buffer.alloc(100_000) });
    await fails(ws, 1009);
  });
  for (const [n, fragment] of [
    [1, 1024],
    [2, 4096],
    [3, 16384],
    [4, 65536],
  ] as const) {
    test(`9.4.${n}: a 64 KiB text message in ${65536 / fragment} fragment(s) of ${fragment} bytes is accepted`, async () => {
      const ws = await open();
      const r = request(65536);
      const frames: FrameSpec[] = [];
      for (let i = 0; i < 65536; i += fragment) {
        frames.push({ opcode: i === 0 ? Op.Text : Op.Continuation, payload: r.text.subarray(i, i + fragment), fin: i + fragment >= 65536 });
      }
      await send(ws, frames);
      await replied(ws, r.id);
      done(ws);
    });
  }
  test('9.4.5: the same message in 65 fragments fails the connection with 1008 (fragment limit)', async () => {
    const ws = await open();
    const r = request(6500);
    const frames: FrameSpec[] = [];
    for (let i = 0; i < 65; i++)
      frames.push({ opcode: i === 0 ? Op.Text : Op.Continuation, payload: r.text.subarray(i * 100, (i + 1) * 100), fin: i === 64 });
    await send(ws, frames);
    await fails(ws, 1008);
  });
  test('9.7: 50 small messages back to back are answered in order', async () => {
    const ws = await open();
    const rs = Array.from({ length: 50 }, () => request(64));
    ws.write(Buffer.concat(rs.map((r) => encodeFrame({ opcode: Op.Text, payload: r.text }))));
    await replied(ws, (rs.at(-1) as { id: number }).id);
    const ids = new Set(rs.map((r) => r.id));
    assert.deepEqual(
      ws
        .json()
        .filter((f) => ids.has(f['id']))
        .map((f) => f['id']),
      rs.map((r) => r.id),
    );
    done(ws);
  });
});
