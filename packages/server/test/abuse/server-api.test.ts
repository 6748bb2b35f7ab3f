/**
 * Abuse case 30, continued for the server API beyond publish (docs/api.md) and the admin UI's
 * sign-in: oversized bodies, huge limits, patterns that would scan everything, malformed targets,
 * wrong and limited keys, and brute-forced keys all get a 4xx JSON error; the node stays up, its
 * memory comes back, and no key is logged.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_HTTP_STATUS } from '@gatehouse/protocol';
import type { ErrorCode } from '@gatehouse/protocol';
import { SERVER_API_ROUTES } from '../../src/server-api.js';
import { API_KEY } from '../helpers.js';
import { Bystander, ChildGateway } from './harness.js';
import type { Memory } from './harness.js';
import { rawHttp } from './raw-ws.js';

const LIMITED_KEY = 'limited-key-0123456';
const GUESSER = { 'x-forwarded-for': '10.0.0.2' };

describe('abuse case 30: the server API and the admin sign-in (1 case)', () => {
  let gw: ChildGateway;
  let bystander: Bystander;
  let baseline: Memory;

  before(async () => {
    gw = await ChildGateway.start({
      adminUi: true,
      trustProxy: true,
      apiKeys: [{ key: API_KEY }, { key: LIMITED_KEY, channels: ['public:a-*'] }],
    });
    bystander = await Bystander.join(gw.port);
    await bystander.check();
    baseline = await gw.memory();
  });

  after(async () => {
    bystander?.close();
    await gw?.stop();
  });

  async function post(path: string, body: unknown, key: string | null = API_KEY, extra: Record<string, string> = {}) {
    const res = await fetch(`http://127.0.0.1:${gw.port}${path}`, {
      method: 'POST',
      // Addresses come from X-Forwarded-For (trustProxy), so the guesser below is not the bystander.
      headers: {
        'content-type': 'application/json',
        'x-forwarded-for': '10.0.0.1',
        ...(key ? { authorization: `apikey ${key}` } : {}),
        ...extra,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return {
      status: res.status,
      type: res.headers.get('content-type') ?? '',
      retryAfter: res.headers.get('retry-after'),
      json: (await res.json()) as any,
    };
  }

  function assertError(res: { status: number; type: string; json: any }, code: ErrorCode, what: string): void {
    assert.equal(res.status, ERROR_HTTP_STATUS[code], `${what}: ${res.status} ${JSON.stringify(res.json)}`);
    assert.match(res.type, /^application\/json/, what);
    assert.equal(res.json?.error?.code, code, `${what}: ${JSON.stringify(res.json)}`);
    assert.equal(typeof res.json.error.message, 'string');
  }

  test('case 30 (server API): oversized bodies, huge limits, scan-everything patterns, bad targets, limited keys and brute force are refused', async () => {
    const big = JSON.stringify({ channel: 'public:x', pattern: 'x'.repeat(10_000) });
    assert.ok(SERVER_API_ROUTES.size >= 7, 'every server API route is tried');
    for (const path of SERVER_API_ROUTES) {
      assertError(await post(path, big), 'payload_too_large', `${path} oversized`);
      const chunked = await rawHttp(
        gw.port,
        `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: apikey ${API_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`,
      );
      assert.equal(chunked.status, 413, `${path} chunked oversized`);
      assertError(await post(path, '{"channel":'), 'bad_request', `${path} bad JSON`);
      assertError(await post(path, '[]'), 'bad_request', `${path} array`);
      assertError(await post(path, {}, null), 'unauthorized', `${path} no key`);
    }
    const bad: [string, string, unknown, string, ErrorCode][] = [
      ['huge limit', '/api/history', { channel: 'public:x', limit: 1e12 }, API_KEY, 'bad_request'],
      ['negative limit', '/api/history', { channel: 'public:x', limit: -1 }, API_KEY, 'bad_request'],
      ['fractional limit', '/api/history', { channel: 'public:x', limit: 1.5 }, API_KEY, 'bad_request'],
      ['bad since', '/api/history', { channel: 'public:x', since: { epoch: 1, offset: 'x' } }, API_KEY, 'bad_request'],
      ['invalid channel', '/api/history', { channel: '../../etc' }, API_KEY, 'invalid_channel'],
      ['unknown namespace', '/api/history', { channel: '__proto__:x' }, API_KEY, 'unknown_namespace'],
      ['limited key, other channel', '/api/history', { channel: 'public:b' }, LIMITED_KEY, 'forbidden'],
      ['huge channels limit', '/api/channels', { limit: 1e9 }, API_KEY, 'bad_request'],
      ['wildcard in the middle', '/api/channels', { pattern: '*a*' }, API_KEY, 'bad_request'],
      ['overlong pattern', '/api/channels', { pattern: 'p'.repeat(300) + '*' }, API_KEY, 'bad_request'],
      ['pattern not a string', '/api/channels', { pattern: ['*'] }, API_KEY, 'bad_request'],
      ['no target', '/api/disconnect', {}, API_KEY, 'bad_request'],
      ['target not a string', '/api/disconnect', { user: { $ne: 1 } }, API_KEY, 'bad_request'],
      ['overlong user', '/api/disconnect', { user: 'u'.repeat(300) }, API_KEY, 'bad_request'],
      ['non-ASCII reason', '/api/disconnect', { user: 'u', reason: 'bye\u00e9' }, API_KEY, 'bad_request'],
      ['limited key disconnects', '/api/disconnect', { user: 'u' }, LIMITED_KEY, 'forbidden'],
      ['limited key reads the fleet', '/api/info', {}, LIMITED_KEY, 'forbidden'],
      ['huge slowest', '/api/info', { slowest: 1e6 }, API_KEY, 'bad_request'],
      ['limited key subscribes elsewhere', '/api/subscribe', { user: 'u', channel: 'public:b' }, LIMITED_KEY, 'forbidden'],
      ['drain without a node', '/api/drain', {}, API_KEY, 'bad_request'],
      [
        'overlong idempotency key',
        '/api/publish',
        { channel: 'public:x', data: 1, idempotencyKey: 'k'.repeat(300) },
        API_KEY,
        'bad_request',
      ],
    ];
    for (const [what, path, body, key, code] of bad) assertError(await post(path, body, key), code, what);

    // The widest pattern on a limited key lists only the key's channels; the widest on a full key is
    // bounded by the node's channels and the answer's limit, never a scan of the backbone.
    const wide = await post('/api/channels', { pattern: '*', limit: 1000 });
    assert.equal(wide.status, 200);
    assert.ok(wide.json.channels.length <= 1000);
    const limited = await post('/api/channels', { pattern: '*' }, LIMITED_KEY);
    assert.ok(limited.json.channels.every((c: { channel: string }) => c.channel.startsWith('public:a-')));

    // Brute force: wrong keys from one address are counted, then refused with 429 whatever the key.
    let refused: Awaited<ReturnType<typeof post>> | undefined;
    for (let i = 0; i < 20 && !refused; i++) {
      const r = await post('/api/info', {}, `guess-${i}-0123456789`, GUESSER);
      if (r.status === 429) refused = r;
      else assertError(r, 'unauthorized', `guess ${i}`);
    }
    assert.ok(refused, 'guessing is rate limited');
    assertError(refused, 'rate_limited', 'after too many guesses');
    assert.ok(Number(refused.retryAfter) > 0, 'with Retry-After');
    assertError(await post('/api/info', {}, API_KEY, GUESSER), 'rate_limited', 'even the right key waits out the window');
    assertError(await post('/api/publish', { channel: 'public:x', data: 1 }, API_KEY, GUESSER), 'rate_limited', 'publish too');
    assertError(await post('/admin/revoke', { jti: 'x' }, API_KEY, GUESSER), 'rate_limited', 'the admin API too');
    const signIn = await post('/admin/session', { key: API_KEY }, null, { ...GUESSER, origin: `http://127.0.0.1:${gw.port}` });
    assertError(signIn, 'rate_limited', 'the admin sign-in shares the brake');

    await bystander.check('a publication after server API abuse');
    await gw.assertAlive();
    await gw.assertMemoryBack(baseline, 4, 'after server API abuse');
    gw.assertNoSecretsLogged([API_KEY, LIMITED_KEY]);
  });
});
