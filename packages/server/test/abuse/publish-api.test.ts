/**
 * Abuse case 30 (../shared/guide/abuse-cases.md, "Publish API"): every bad request to the HTTP
 * publish API gets a 4xx with a JSON error naming the problem, and nothing is published. The
 * gateway runs as a child process; a subscriber on the target channels proves nothing arrived.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_HTTP_STATUS } from '@gatehouse/protocol';
import type { ErrorCode } from '@gatehouse/protocol';
import { API_KEY } from '../helpers.js';
import { Bystander, ChildGateway } from './harness.js';
import type { Memory } from './harness.js';
import { RawWs, rawHttp } from './raw-ws.js';

const LIMITED_KEY = 'limited-key-0123456';
const WRONG_KEY = 'wrong-key-9876543210';

describe('abuse case 30: the publish API (1 case)', () => {
  let gw: ChildGateway;
  let bystander: Bystander;
  let watcher: RawWs;
  let baseline: Memory;
  const watched = ['public:target', 'public:allowed-1', 'private:secret'];

  before(async () => {
    gw = await ChildGateway.start({ apiKeys: [{ key: API_KEY }, { key: LIMITED_KEY, channels: ['public:allowed-*'] }] });
    bystander = await Bystander.join(gw.port);
    watcher = await RawWs.connect(gw.port, undefined, { autoPong: true });
    for (const channel of watched.slice(0, 2)) assert.equal((await watcher.request({ op: 'subscribe', channel }))['op'], 'subscribed');
    await bystander.check();
    baseline = await gw.memory();
  });

  after(async () => {
    bystander?.close();
    watcher?.destroy();
    await gw?.stop();
  });

  /** POSTs `body` (sent verbatim when a string) and returns status, headers and parsed JSON. */
  async function post(
    path: string,
    body: unknown,
    key: string | null = API_KEY,
    extra: Record<string, string> = {},
  ): Promise<{ status: number; type: string; json: any }> {
    const res = await fetch(`http://127.0.0.1:${gw.port}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `apikey ${key}` } : {}), ...extra },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, type: res.headers.get('content-type') ?? '', json: await res.json() };
  }

  /** Asserts a JSON error with `code`, the status that code maps to, and a message matching `message`. */
  function assertError(res: { status: number; type: string; json: any }, code: ErrorCode, message: RegExp, what: string): void {
    assert.equal(res.status, ERROR_HTTP_STATUS[code], `${what}: ${res.status} ${JSON.stringify(res.json)}`);
    assert.match(res.type, /^application\/json/, what);
    assert.equal(res.json?.error?.code, code, `${what}: ${JSON.stringify(res.json)}`);
    assert.match(res.json.error.message, message, `${what}: ${res.json.error.message}`);
  }

  test('case 30: oversized bodies, bad JSON, missing or wrong keys, unknown namespaces and forbidden channels get a 4xx JSON error; nothing is published', async () => {
    const big = JSON.stringify({ channel: 'public:target', data: 'x'.repeat(70_000) });
    // Oversized, declared and chunked (no Content-Length to refuse it by).
    assertError(await post('/api/publish', big), 'payload_too_large', /limit/, 'declared oversized body');
    for (const chunked of [true, false]) {
      const head = `POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: apikey ${API_KEY}\r\nContent-Type: application/json\r\n`;
      const req = chunked
        ? `${head}Transfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`
        : `${head}Content-Length: ${big.length}\r\n\r\n${big}`;
      const res = await rawHttp(gw.port, req);
      assert.equal(res.status, 413, `${chunked ? 'chunked' : 'raw'} oversized body`);
      assert.equal(JSON.parse(res.body).error.code, 'payload_too_large');
    }
    // Fifty large bodies at once: refused without buffering them.
    const many = await Promise.all(Array.from({ length: 50 }, () => post('/api/publish', big)));
    assert.ok(many.every((r) => r.status === 413));

    const bad: [string, unknown, string | null, ErrorCode, RegExp][] = [
      ['not JSON', '{"channel": "public:target", data:', API_KEY, 'bad_request', /not valid JSON/],
      ['empty body', '', API_KEY, 'bad_request', /not valid JSON/],
      ['an array', '[]', API_KEY, 'bad_request', /JSON object/],
      ['a string', '"publish"', API_KEY, 'bad_request', /JSON object/],
      ['null', 'null', API_KEY, 'bad_request', /JSON object/],
      ['no data', { channel: 'public:target' }, API_KEY, 'bad_request', /"data"/],
      ['channel not a string', { channel: 7, data: 1 }, API_KEY, 'bad_request', /"channel"/],
      ['invalid channel', { channel: 'no colon', data: 1 }, API_KEY, 'invalid_channel', /namespace:name/],
      ['unknown namespace', { channel: 'nosuch:target', data: 1 }, API_KEY, 'unknown_namespace', /nosuch/],
      ['__proto__ namespace', { channel: '__proto__:target', data: 1 }, API_KEY, 'unknown_namespace', /__proto__/],
      ['deep nesting', `{"channel":"public:target","data":${'['.repeat(20_000)}${']'.repeat(20_000)}}`, API_KEY, 'bad_request', /nested/],
      ['no key', { channel: 'public:target', data: 1 }, null, 'unauthorized', /apikey/],
      ['wrong key', { channel: 'public:target', data: 1 }, WRONG_KEY, 'unauthorized', /not valid/],
      ['overlong key', { channel: 'public:target', data: 1 }, 'k'.repeat(600), 'unauthorized', /apikey/],
      ['key not allowed on the channel', { channel: 'public:target', data: 1 }, LIMITED_KEY, 'forbidden', /may not publish/],
      ['key not allowed on a private channel', { channel: 'private:secret', data: 1 }, LIMITED_KEY, 'forbidden', /may not publish/],
    ];
    for (const [what, body, key, code, message] of bad) assertError(await post('/api/publish', body, key), code, message, what);
    assertError(
      await post('/api/publish', { channel: 'public:target', data: 1 }, null, { authorization: `Bearer ${API_KEY}` }),
      'unauthorized',
      /apikey/,
      'wrong scheme',
    );

    // A broadcast is all or nothing: one forbidden channel refuses the whole request.
    assertError(
      await post('/api/broadcast', { channels: ['public:allowed-1', 'public:target'], data: 1 }, LIMITED_KEY),
      'forbidden',
      /public:target/,
      'broadcast with one forbidden channel',
    );
    assertError(await post('/api/broadcast', { channels: [], data: 1 }), 'bad_request', /non-empty/, 'empty broadcast');
    assertError(
      await post('/api/broadcast', { channels: Array.from({ length: 1001 }, (_, i) => `public:c${i}`), data: 1 }),
      'bad_request',
      /at most/,
      'huge broadcast',
    );

    // Wrong method and unknown route: JSON errors too.
    const get = await fetch(`http://127.0.0.1:${gw.port}/api/publish`);
    assert.equal(get.status, 405);
    assert.equal(((await get.json()) as any).error.code, 'bad_request');
    const nowhere = await fetch(`http://127.0.0.1:${gw.port}/api/nothing`, { method: 'POST' });
    assert.equal(nowhere.status, 404);
    assert.equal(((await nowhere.json()) as any).error.code, 'not_found');

    // Nothing was published: the first valid publication on each channel is offset 1, and it is
    // the only one the watcher saw.
    for (const [channel, key] of [
      ['public:target', API_KEY],
      ['public:allowed-1', LIMITED_KEY],
    ] as const) {
      const ok = await post('/api/publish', { channel, data: { ok: channel } }, key);
      assert.equal(ok.status, 200, JSON.stringify(ok.json));
      assert.equal(ok.json.offset, 1, `${channel}: nothing was published before`);
    }
    await bystander.check('a publication after API abuse');
    const pubs = watcher.json().filter((f) => f['op'] === 'pub');
    assert.deepEqual(
      pubs.map((p) => [p['channel'], p['offset']]),
      [
        ['public:target', 1],
        ['public:allowed-1', 1],
      ],
    );

    await gw.assertAlive();
    await gw.assertMemoryBack(baseline, 4, 'after API abuse');
    gw.assertNoSecretsLogged([API_KEY, LIMITED_KEY, WRONG_KEY]);
  });
});
