import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from 'jose';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@gatehouse/testkit';
import { systemClock, type Clock, type Gateway } from '../src/index.js';
import { RawClient, SECRET, startGateway, token } from './helpers.js';

const PRIVATE_ONLY = { private: { historySize: 10, historyTtlSeconds: 60, anonymous: false, subscribe: 'claims' as const } };

async function refusedWith(port: number, frame: Record<string, unknown>): Promise<{ code: number; reason: string }> {
  const c = await RawClient.open(port);
  c.send({ id: 1, ...frame });
  return c.waitClose();
}

test('every kind of bad token is refused with 4001 and a reason that never echoes the token', async () => {
  const gw = await startGateway({ namespaces: PRIVATE_ONLY });
  try {
    const cases: [string, string | undefined, RegExp][] = [
      ['missing', undefined, /token is required/],
      ['malformed', 'not-a-jwt', /malformed/],
      ['expired', await token('u', {}, -10), /expired/],
      ['wrongly signed', await token('u', {}, 60, 'another-secret-123'), /signature/],
      [
        'without sub',
        await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(SECRET)),
        /sub/,
      ],
      ['unsigned (alg none)', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.', /malformed|algorithm/],
    ];
    for (const [name, tok, reason] of cases) {
      const closed = await refusedWith(gw.port, { op: 'connect', v: 1, ...(tok ? { token: tok } : {}) });
      assert.equal(closed.code, 4001, name);
      assert.match(closed.reason, reason, name);
      if (tok) assert.ok(!closed.reason.includes(tok), `${name}: token not echoed`);
    }
  } finally {
    await gw.close();
  }
});

test('no connect frame within the deadline closes with 4002; a wrong first frame with 4000', async () => {
  const gw = await startGateway({ authTimeoutMs: 300 });
  try {
    const idle = await RawClient.open(gw.port);
    assert.equal((await idle.waitClose()).code, 4002);
    assert.equal((await refusedWith(gw.port, { op: 'subscribe', channel: 'public:x' })).code, 4000);
    const garbage = await RawClient.open(gw.port);
    garbage.ws.send('{"op":');
    assert.equal((await garbage.waitClose()).code, 4000);
  } finally {
    await gw.close();
  }
});

test('an unknown protocol version is a terminal 4004 that names the supported one', async () => {
  const gw = await startGateway();
  try {
    const closed = await refusedWith(gw.port, { op: 'connect', v: 2 });
    assert.equal(closed.code, 4004);
    assert.match(closed.reason, /v1/);
  } finally {
    await gw.close();
  }
});

test('claims decide subscribe and publish; namespaces decide anonymous access', async () => {
  const gw = await startGateway();
  try {
    const c = await RawClient.connect(
      gw.port,
      await token('u1', { channels: ['private:mine', 'private:team:*'], publish: ['private:team:*'] }),
    );
    assert.equal((await c.request({ op: 'subscribe', channel: 'private:mine' }))['op'], 'subscribed');
    assert.equal((await c.request({ op: 'subscribe', channel: 'private:team:red' }))['op'], 'subscribed');
    const denied = await c.request({ op: 'subscribe', channel: 'private:other' });
    assert.equal(denied['code'], 'forbidden');
    assert.equal((await c.request({ op: 'subscribe', channel: 'nope:x' }))['code'], 'unknown_namespace');
    assert.equal((await c.request({ op: 'subscribe', channel: 'no colon' }))['code'], 'invalid_channel');
    assert.equal((await c.request({ op: 'subscribe', channel: 'private:mine' }))['code'], 'already_subscribed');
    assert.equal((await c.request({ op: 'publish', channel: 'private:mine', data: 1 }))['code'], 'forbidden');
    const pub = await c.request({ op: 'publish', channel: 'private:team:red', data: { hi: 1 } });
    assert.equal(pub['op'], 'published');
    assert.equal(pub['offset'], 1);
    await c.waitPubs(1, 'private:team:red');

    const anon = await RawClient.connect(gw.port);
    assert.equal((await anon.request({ op: 'subscribe', channel: 'public:news' }))['op'], 'subscribed');
    assert.equal((await anon.request({ op: 'subscribe', channel: 'private:mine' }))['code'], 'forbidden');
    assert.equal((await anon.request({ op: 'publish', channel: 'public:news', data: 1 }))['code'], 'forbidden');
    c.close();
    anon.close();
  } finally {
    await gw.close();
  }
});

test('verified tokens are cached: a reconnect storm verifies each token once', async () => {
  const gw = await startGateway();
  try {
    const tok = await token('storm', { channels: ['private:*'] });
    for (let i = 0; i < 5; i++) (await RawClient.connect(gw.port, tok)).close();
    const text = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
    assert.match(text, /gatehouse_auth_cache_misses_total\{[^}]*\} 1\n/);
    assert.match(text, /gatehouse_auth_cache_hits_total\{[^}]*\} 4\n/);
  } finally {
    await gw.close();
  }
});

/**
 * The process clock moved forward by `skewMs`. Heartbeats, which decide token expiry, take time
 * from it, so a test jumps to an expiry instead of waiting for it; the real timers keep the beat
 * going, and token checks at connect and refresh keep real time.
 */
class SkewedClock implements Clock {
  skewMs = 0;
  now(): number {
    return Date.now() + this.skewMs;
  }
  setInterval(fn: () => void, ms: number): unknown {
    return systemClock.setInterval(fn, ms);
  }
  clearInterval(handle: unknown): void {
    systemClock.clearInterval(handle);
  }
  /** Sets the clock to `ms` before (negative: after) the expiry `expMs`. */
  setBefore(expMs: number, ms: number): void {
    this.skewMs = expMs - ms - Date.now();
  }
}

/** The token's expiry in ms since the epoch. */
function expiryOf(tok: string): number {
  return (decodeJwt(tok).exp as number) * 1000;
}

/** A gateway beating every 200 ms, asking for a refresh 5 s ahead, with a 300 ms grace, on a clock the test moves. */
async function expiryGateway(): Promise<{ gw: Gateway; clock: SkewedClock }> {
  const clock = new SkewedClock();
  return { gw: await startGateway({ heartbeatMs: 200, refreshLeadMs: 5000, tokenGraceMs: 300 }, { clock }), clock };
}

test('a token expiring while connected is asked to refresh, then closed with 4005 if it does not', async () => {
  const { gw, clock } = await expiryGateway();
  try {
    const tok = await token('short', { channels: ['private:*'] }, 60);
    const c = await RawClient.connect(gw.port, tok);
    const keepAlive = setInterval(() => c.send({ op: 'pong' }), 100);
    try {
      clock.setBefore(expiryOf(tok), 2000); // inside the 5 s refresh lead
      const ask = await waitFor('a refresh request', () => c.frames.find((f) => f['op'] === 'refresh'), 5000);
      assert.ok(ask['in'] <= 2000, `refresh asked ${ask['in']} ms before expiry`);
      clock.setBefore(expiryOf(tok), -301); // past expiry and the 300 ms grace
      const closed = await c.waitClose(5000);
      assert.equal(closed.code, 4005);
    } finally {
      clearInterval(keepAlive);
    }
  } finally {
    await gw.close();
  }
});

test("a client that refreshes stays connected past the first token's expiry and grace", async () => {
  const { gw, clock } = await expiryGateway();
  try {
    // Both connect with one token; only `d` refreshes it. `idle` shows the jump past expiry took.
    const first = await token('short', { channels: ['private:*'] }, 60);
    const d = await RawClient.connect(gw.port, first);
    const idle = await RawClient.connect(gw.port, first);
    const keep = setInterval(() => {
      d.send({ op: 'pong' });
      idle.send({ op: 'pong' });
    }, 100);
    try {
      clock.setBefore(expiryOf(first), 2000);
      await waitFor('a refresh request', () => d.frames.find((f) => f['op'] === 'refresh'), 5000);
      const ok = await d.request({ op: 'refresh', token: await token('short', { channels: ['private:*'] }, 3600) });
      assert.equal(ok['op'], 'ok');
      const other = await d.request({ op: 'refresh', token: await token('someone-else', {}, 3600) });
      assert.equal(other['code'], 'forbidden');

      clock.setBefore(expiryOf(first), -301);
      assert.equal((await idle.waitClose(5000)).code, 4005, 'the client that did not refresh is closed');
      // A heartbeat checks expiry right after it writes the ping, so a ping that follows a reply
      // sent after the jump comes from a check that saw the jump; a reply after that ping shows
      // the check let `d` stay.
      const reply = await d.request({ op: 'subscribe', channel: 'private:after-expiry' });
      assert.equal(reply['op'], 'subscribed');
      await waitFor('a heartbeat after the jump', () => d.frames.slice(d.frames.indexOf(reply) + 1).some((f) => f['op'] === 'ping'), 5000);
      assert.equal((await d.request({ op: 'unsubscribe', channel: 'private:after-expiry' }))['op'], 'ok');
      assert.equal(d.closed, undefined);
      d.close();
    } finally {
      clearInterval(keep);
    }
  } finally {
    await gw.close();
  }
});

test('RS256 and ES256 tokens verify against a JWKS file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gh-jwks-'));
  const rsa = await generateKeyPair('RS256');
  const ec = await generateKeyPair('ES256');
  const keys = [
    { ...(await exportJWK(rsa.publicKey)), kid: 'r1', alg: 'RS256', use: 'sig' },
    { ...(await exportJWK(ec.publicKey)), kid: 'e1', alg: 'ES256', use: 'sig' },
  ];
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys }));
  const gw = await startGateway({ tokenSecret: undefined, jwks: join(dir, 'jwks.json'), namespaces: PRIVATE_ONLY });
  try {
    for (const [alg, kid, key] of [
      ['RS256', 'r1', rsa.privateKey],
      ['ES256', 'e1', ec.privateKey],
    ] as const) {
      const tok = await new SignJWT({ channels: ['private:*'] })
        .setProtectedHeader({ alg, kid })
        .setSubject('k')
        .setExpirationTime('1h')
        .sign(key);
      const c = await RawClient.connect(gw.port, tok);
      assert.equal((await c.request({ op: 'subscribe', channel: 'private:x' }))['op'], 'subscribed');
      c.close();
    }
    const hs = await token('k');
    assert.equal((await refusedWith(gw.port, { op: 'connect', v: 1, token: hs })).code, 4001);
  } finally {
    await gw.close();
  }
});

test('a revoked token is refused on every node, and its open connections are closed', async () => {
  const { MemoryBackbone, MemoryBus } = await import('../src/index.js');
  const bus = new MemoryBus();
  const a = await startGateway({}, { backbone: new MemoryBackbone({ bus }) });
  const b = await startGateway({}, { backbone: new MemoryBackbone({ bus }) });
  try {
    const tok = await token('mallory', { channels: ['private:*'], jti: 'token-42' });
    const other = await token('alice', { channels: ['private:*'], jti: 'token-43' });
    const onB = await RawClient.connect(b.port, tok);
    const bystander = await RawClient.connect(b.port, other);
    const res = await fetch(`http://127.0.0.1:${a.port}/admin/revoke`, {
      method: 'POST',
      headers: { authorization: 'apikey test-api-key-0123', 'content-type': 'application/json' },
      body: JSON.stringify({ jti: 'token-42' }),
    });
    assert.equal(res.status, 202);
    const closed = await onB.waitClose();
    assert.equal(closed.code, 4001);
    assert.match(closed.reason, /revoked/);
    for (const port of [a.port, b.port]) {
      const refused = await refusedWith(port, { op: 'connect', v: 1, token: tok });
      assert.equal(refused.code, 4001);
      assert.match(refused.reason, /revoked/);
    }
    assert.equal(bystander.closed, undefined);
    // A node that starts later learns the revocation from the backbone's history.
    const c = await startGateway({}, { backbone: new MemoryBackbone({ bus }) });
    try {
      assert.match((await refusedWith(c.port, { op: 'connect', v: 1, token: tok })).reason, /revoked/);
    } finally {
      await c.close();
    }
    const bad = await fetch(`http://127.0.0.1:${a.port}/admin/revoke`, {
      method: 'POST',
      headers: { authorization: 'apikey test-api-key-0123' },
      body: '{}',
    });
    assert.equal(bad.status, 400);
    bystander.close();
  } finally {
    await a.close();
    await b.close();
  }
});
