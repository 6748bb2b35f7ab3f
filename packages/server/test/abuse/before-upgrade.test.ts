/**
 * Abuse cases 1-10 (../shared/guide/abuse-cases.md, "Before the upgrade"): bad handshakes are
 * answered fast with an HTTP status and never upgraded. The gateway runs as a child process; each
 * case ends by checking that the process is alive, that a bystander still receives publications,
 * and (for the heavy cases) that memory came back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { SignJWT } from 'jose';
import { waitFor } from '@gatehouse/testkit';
import { API_KEY, token } from '../helpers.js';
import { Bystander, ChildGateway } from './harness.js';
import type { Memory } from './harness.js';
import { RawWs, rawHttp, upgradeRequest } from './raw-ws.js';

const ORIGIN = 'https://app.example.com';
/** Every token this file hands the gateway: none may ever show up in a log line. */
const tokens = new Set<string>();
async function mint(sub: string, claims: Record<string, unknown> = {}, ttl = 3600, secret?: string): Promise<string> {
  const t = await token(sub, claims, ttl, secret);
  tokens.add(t);
  return t;
}

describe('abuse cases 1-10: before the upgrade (10 cases)', () => {
  let gw: ChildGateway;
  let bystander: Bystander;
  let baseline: Memory;

  before(async () => {
    gw = await ChildGateway.start({
      allowedOrigins: [ORIGIN],
      // A missing token must be refusable: no namespace admits anonymous clients here.
      namespaces: { public: { anonymous: false, subscribe: 'authenticated' }, private: {} },
      headersTimeoutMs: 1000,
      connectRatePerAddress: 20,
    });
    bystander = await Bystander.join(gw.port, { headers: { Origin: ORIGIN }, token: await mint('bystander') });
    await bystander.check();
    baseline = await gw.memory();
  });

  after(async () => {
    bystander?.close();
    await gw?.stop();
  });

  /** What every case ends with. */
  async function unharmed(what: string): Promise<void> {
    await gw.assertAlive();
    await bystander.check(`a publication after ${what}`);
  }

  test('case 1: an upgrade with a method other than GET gets 405, never 101', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await rawHttp(gw.port, upgradeRequest(gw.port, { Origin: ORIGIN, 'Content-Length': '0' }, method));
      assert.ok(res.status === 405 || res.status === 400, `${method}: got ${res.status}`);
      assert.notEqual(res.status, 101);
    }
    await unharmed('non-GET upgrades');
  });

  test('case 2: a missing or malformed Sec-WebSocket-Key gets 400', async () => {
    for (const key of [null, '', 'short', 'not base64 at all!!!!!!', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==']) {
      const res = await rawHttp(gw.port, upgradeRequest(gw.port, { Origin: ORIGIN, 'Sec-WebSocket-Key': key }));
      assert.equal(res.status, 400, `key ${JSON.stringify(key)}: got ${res.status}`);
      assert.match(res.body, /Sec-WebSocket-Key/);
    }
    await unharmed('bad keys');
  });

  test('case 3: an unsupported Sec-WebSocket-Version gets 400 that names it and advertises 13', async () => {
    for (const version of [null, '12', '14', 'abc', '13, 8']) {
      const res = await rawHttp(gw.port, upgradeRequest(gw.port, { Origin: ORIGIN, 'Sec-WebSocket-Version': version }));
      assert.ok(res.status === 400 || res.status === 426, `version ${JSON.stringify(version)}: got ${res.status}`);
      assert.match(res.body, /Sec-WebSocket-Version/, 'the answer names the header');
      assert.match(res.headers['sec-websocket-version'] ?? '', /\b13\b/, 'the answer says which version to use');
    }
    await unharmed('bad versions');
  });

  test('case 4: an Origin outside the allowlist (cross-site WebSocket hijacking) gets 403', async () => {
    const before = await gw.metric('gatehouse_admission_rejects_total', { reason: 'origin' });
    for (const origin of ['https://evil.example.com', 'https://app.example.com.evil.com', 'null', 'http://app.example.com', null]) {
      const res = await rawHttp(gw.port, upgradeRequest(gw.port, { Origin: origin }));
      assert.equal(res.status, 403, `origin ${JSON.stringify(origin)}: got ${res.status}`);
    }
    assert.equal(await gw.metric('gatehouse_admission_rejects_total', { reason: 'origin' }), before + 5, 'each refusal is counted');
    // The allowed origin still upgrades.
    const ok = await RawWs.open(gw.port, { headers: { Origin: ORIGIN } });
    ok.destroy();
    await unharmed('foreign origins');
  });

  test('case 5: a missing, malformed, expired, wrongly signed or unsigned token is refused with a clear reason and never logged', async () => {
    const expired = await mint('u5', {}, -60);
    const wrongKey = await mint('u5', {}, 3600, 'another-secret-0123456789');
    const noSub = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode('test-secret-0123456789'));
    tokens.add(noSub);
    const unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from('{"sub":"u5","exp":9999999999}').toString('base64url')}.`;
    tokens.add(unsigned);
    const garbage = 'eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24gYXQgYWxs.c2lnbmF0dXJlLXRoYXQtd2lsbC1uZXZlci1tYXRjaA';
    tokens.add(garbage);
    const cases: [string | undefined, RegExp][] = [
      [undefined, /token is required/],
      [garbage, /malformed|not valid/],
      [expired, /expired/],
      [wrongKey, /signature/],
      [unsigned, /algorithm|malformed|not valid/],
      [noSub, /sub/],
    ];
    const failuresBefore = await gw.metric('gatehouse_auth_failures_total');
    for (const [tok, reason] of cases) {
      const ws = await RawWs.open(gw.port, { headers: { Origin: ORIGIN } });
      ws.sendText(JSON.stringify({ op: 'connect', id: 1, v: 1, ...(tok ? { token: tok } : {}) }));
      const close = await ws.waitClose();
      assert.equal(close.code, 4001, `token ${tok?.slice(0, 12)}: ${JSON.stringify(close)}`);
      assert.match(close.reason, reason);
      assert.ok(tok === undefined || !close.reason.includes(tok), 'the reason does not echo the token');
      ws.destroy();
    }
    assert.equal(await gw.metric('gatehouse_auth_failures_total'), failuresBefore + cases.length, 'each refusal is counted');
    // A token in the URL is never read, so it cannot end up in an access log either.
    const inUrl = await mint('u5');
    const res = await rawHttp(gw.port, upgradeRequest(gw.port, { Origin: ORIGIN }, 'GET', `/ws?token=${inUrl}`));
    assert.equal(res.status, 101);
    await unharmed('bad tokens');
    gw.assertNoSecretsLogged(tokens);
  });

  test('case 5: a revoked token is refused with a clear reason, and its open connection is closed', async () => {
    const revoked = await mint('u5r', { jti: 'abuse-case-5' });
    const open = await RawWs.connect(gw.port, revoked, { headers: { Origin: ORIGIN } });
    const res = await fetch(`http://127.0.0.1:${gw.port}/admin/revoke`, {
      method: 'POST',
      headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jti: 'abuse-case-5' }),
    });
    assert.equal(res.status, 202);
    const closed = await open.waitClose();
    assert.equal(closed.code, 4001);
    assert.match(closed.reason, /revoked/);
    open.destroy();
    const again = await RawWs.open(gw.port, { headers: { Origin: ORIGIN } });
    again.sendText(JSON.stringify({ op: 'connect', id: 1, v: 1, token: revoked }));
    const refused = await again.waitClose();
    assert.equal(refused.code, 4001);
    assert.match(refused.reason, /revoked/);
    assert.ok(!refused.reason.includes(revoked));
    again.destroy();
    await unharmed('a revoked token');
    gw.assertNoSecretsLogged(tokens);
  });

  test('case 6: a Sec-WebSocket-Protocol crafted for regex backtracking is answered at once', async () => {
    // Within the header limit: the subprotocol parser sees it and refuses it. Above: 431.
    for (const spaces of [7000, 50_000]) {
      const value = `a${' '.repeat(spaces)}b`;
      const res = await rawHttp(gw.port, upgradeRequest(gw.port, { Origin: ORIGIN, 'Sec-WebSocket-Protocol': value }), 2000);
      assert.ok([400, 431].includes(res.status), `${spaces} spaces: got ${res.status}`);
    }
    // Many valid-looking tokens: linear work, still an ordinary answer.
    const list = Array.from({ length: 600 }, (_, i) => `p${i}`).join(', ');
    const res = await rawHttp(gw.port, upgradeRequest(gw.port, { Origin: ORIGIN, 'Sec-WebSocket-Protocol': list }), 2000);
    assert.equal(res.status, 101);
    await unharmed('a backtracking bait');
  });

  test('case 7: thousands of headers, or one header above the limit, get 431 and the process survives', async () => {
    const many = Array.from({ length: 3000 }, (_, i) => `X-Fill-${i}: v\r\n`).join('');
    const manyReq = upgradeRequest(gw.port, { Origin: ORIGIN }).replace(/\r\n\r\n$/, `\r\n${many}\r\n`);
    const big = upgradeRequest(gw.port, { Origin: ORIGIN, 'X-Big': 'x'.repeat(20_000) });
    const overflowsBefore = await gw.metric('gatehouse_protocol_errors_total', { code: 'HPE_HEADER_OVERFLOW' });
    for (const [what, req] of [
      ['3000 headers', manyReq],
      ['a 20 kB header', big],
    ] as const) {
      const res = await rawHttp(gw.port, req);
      assert.ok(res.status === 431 || res.status === 400, `${what}: got ${res.status}`);
    }
    // A burst of them in parallel.
    const all = await Promise.all(Array.from({ length: 50 }, () => rawHttp(gw.port, big)));
    assert.ok(
      all.every((r) => r.status === 431 || r.status === 400),
      `statuses ${[...new Set(all.map((r) => r.status))]}`,
    );
    assert.equal(
      await gw.metric('gatehouse_protocol_errors_total', { code: 'HPE_HEADER_OVERFLOW' }),
      overflowsBefore + 52,
      'each one counted',
    );
    await unharmed('header floods');
    await gw.assertMemoryBack(baseline, 4, 'after header floods');
  });

  test('case 8: a malformed Sec-WebSocket-Extensions is ignored (compression is off)', async () => {
    for (const ext of [
      'permessage-deflate; client_max_window_bits=;;;,,"',
      'x'.repeat(2000),
      '; ; ;',
      'permessage-deflate; server_max_window_bits=99',
    ]) {
      const ws = await RawWs.open(gw.port, { headers: { Origin: ORIGIN, 'Sec-WebSocket-Extensions': ext } });
      assert.doesNotMatch(ws.handshake, /sec-websocket-extensions/i, 'no extension is negotiated');
      const reply = await ws.request({ op: 'connect', v: 1, token: await mint('u8') });
      assert.equal(reply['op'], 'connected');
      ws.destroy();
    }
    await unharmed('malformed extensions');
  });

  test('case 9: slowloris sockets that drip header bytes are cut at the header timeout; a legitimate client is served meanwhile', async () => {
    // 200 sockets, not 1000: enough to hold many open at once on two shared cores.
    const N = 200;
    const timeoutsBefore = await gw.metric('gatehouse_protocol_errors_total', { code: 'ERR_HTTP_REQUEST_TIMEOUT' });
    const sockets: Socket[] = [];
    const answers: string[] = [];
    let closed = 0;
    for (let i = 0; i < N; i++) {
      const s = connect({ host: '127.0.0.1', port: gw.port });
      s.on('error', () => {});
      s.on('data', (d: Buffer) => answers.push(d.toString('latin1')));
      s.on('close', () => closed++);
      s.write(`GET /ws HTTP/1.1\r\nHost: x\r\n`);
      sockets.push(s);
    }
    const drip = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write('X-Drip: 1\r\n');
    }, 200);
    try {
      // While they drip, a legitimate client connects and the bystander keeps receiving.
      const legit = await RawWs.connect(gw.port, await mint('u9'), { headers: { Origin: ORIGIN } });
      await bystander.check('a publication during slowloris');
      legit.destroy();
      // headersTimeoutMs is 1000 and the check runs every second: every dripper is gone well before 5 s.
      await waitFor(`all ${N} slowloris sockets to be cut (${closed} so far)`, () => closed === N, 8000);
    } finally {
      clearInterval(drip);
      for (const s of sockets) s.destroy();
    }
    assert.ok(
      answers.every((a) => a.startsWith('HTTP/1.1 408') || a.startsWith('HTTP/1.1 400')),
      `answers ${[...new Set(answers.map((a) => a.slice(0, 20)))]}`,
    );
    assert.equal(
      await gw.metric('gatehouse_protocol_errors_total', { code: 'ERR_HTTP_REQUEST_TIMEOUT' }),
      timeoutsBefore + N,
      'each one counted',
    );
    await unharmed('slowloris');
    await gw.assertMemoryBack(baseline, 4, 'after slowloris');
  });

  test('case 10: a connection flood from one address is refused with 429 and Retry-After; over the node cap, close 4100 with a retry delay', async () => {
    // connectRatePerAddress is 20 (burst 40): 120 upgrades at once from 127.0.0.1.
    const results = await Promise.all(Array.from({ length: 120 }, () => rawHttp(gw.port, upgradeRequest(gw.port, { Origin: ORIGIN }))));
    const refused = results.filter((r) => r.status === 429);
    assert.ok(refused.length >= 60, `${refused.length} of 120 refused`);
    assert.ok(
      results.every((r) => r.status === 429 || r.status === 101),
      `statuses ${[...new Set(results.map((r) => r.status))]}`,
    );
    for (const r of refused) assert.match(r.headers['retry-after'] ?? '', /^\d+$/);
    assert.ok((await gw.metric('gatehouse_admission_rejects_total', { reason: 'address_rate' })) >= refused.length);
    await unharmed('a connection flood');
    await gw.assertMemoryBack(baseline, 4, 'after a connection flood');

    // The node cap: a second node that admits five connections.
    const small = await ChildGateway.start({ maxConnections: 5 });
    try {
      const by = await Bystander.join(small.port);
      const held = await Promise.all(Array.from({ length: 4 }, () => RawWs.connect(small.port)));
      const over = await Promise.all(Array.from({ length: 20 }, () => RawWs.open(small.port)));
      for (const ws of over) {
        const close = await ws.waitClose();
        assert.equal(close.code, 4100, JSON.stringify(close));
        assert.match(close.reason, /capacity.*retry=\d+/);
        ws.destroy();
      }
      await small.assertAlive();
      await by.check('a publication after the cap was hit');
      for (const ws of held) ws.destroy();
      by.close();
    } finally {
      await small.stop();
    }
  });

  test('no token handed to the gateway appears in any log line', () => {
    gw.assertNoSecretsLogged(tokens);
  });
});
