/**
 * The admin UI's session rules without a browser (admin-ui.ts): off by default; sign-in needs a
 * same-origin Origin and an unrestricted key; the cookie's attributes; a tampered or expired
 * cookie is no session; a call needs the CSRF token and a same-origin Origin.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { API_KEY, startGateway } from './helpers.js';

const LIMITED = 'limited-key-0123';

test('admin UI: off by default, then sign-in, cookie, CSRF and Origin rules', async (t) => {
  const off = await startGateway();
  t.after(() => off.close());
  assert.notEqual((await fetch(`http://127.0.0.1:${off.port}/admin/`)).status, 200, 'no UI without adminUi');

  const gw = await startGateway({ adminUi: true, apiKeys: [{ key: API_KEY }, { key: LIMITED, channels: ['public:*'] }] });
  t.after(() => gw.close());
  const origin = `http://127.0.0.1:${gw.port}`;
  const page = await fetch(`${origin}/admin/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  assert.equal(page.headers.get('x-frame-options'), 'DENY');

  const signIn = (key: string, headers: Record<string, string> = { origin }) =>
    fetch(`${origin}/admin/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ key }),
    });
  assert.equal((await signIn(API_KEY, {})).status, 403, 'no Origin');
  assert.equal((await signIn(API_KEY, { origin: 'http://evil.example' })).status, 403, 'another Origin');
  assert.equal((await signIn(LIMITED)).status, 401, 'a channel-limited key');
  const ok = await signIn(API_KEY);
  assert.equal(ok.status, 200);
  const { csrf, expires } = (await ok.json()) as { csrf: string; expires: number };
  const setCookie = ok.headers.get('set-cookie') ?? '';
  assert.match(setCookie, /^gh_admin=[\w-]+\.[\w-]{43}; Path=\/admin\/; HttpOnly; SameSite=Strict; Max-Age=3600$/);
  assert.ok(expires > Date.now() && expires <= Date.now() + 3600_000);
  const cookie = setCookie.split(';')[0] as string;

  const session = (c: string) => fetch(`${origin}/admin/session`, { headers: { cookie: c } });
  assert.equal(((await (await session(cookie)).json()) as { csrf: string }).csrf, csrf, 'the session answers its CSRF token');
  const [payload, mac] = cookie.slice('gh_admin='.length).split('.') as [string, string];
  const tampered = mac.slice(0, -2) + (mac.endsWith('AA') ? 'BA' : 'AA'); // never the signature itself
  assert.equal((await session(`gh_admin=${payload}.${tampered}`)).status, 401, 'a tampered signature');
  // An expired session, signed correctly (the secret is derived from the key, as the server does).
  const secret = createHmac('sha256', API_KEY).update('gatehouse admin session v1').digest();
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
  const old = Buffer.from(JSON.stringify({ ...claims, e: Date.now() - 1 })).toString('base64url');
  const oldMac = createHmac('sha256', secret).update(old).digest('base64url');
  assert.equal((await session(`gh_admin=${old}.${oldMac}`)).status, 401, 'an expired session');

  const callInfo = (headers: Record<string, string>) =>
    fetch(`${origin}/admin/call/info`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{}' });
  assert.equal((await callInfo({ cookie, origin })).status, 403, 'no CSRF token');
  const wrongCsrf = (csrf.startsWith('x') ? 'y' : 'x') + csrf.slice(1); // never the token itself
  assert.equal((await callInfo({ cookie, origin, 'x-csrf-token': wrongCsrf })).status, 403, 'a wrong CSRF token');
  assert.equal((await callInfo({ cookie, 'x-csrf-token': csrf, origin: 'http://evil.example' })).status, 403, 'another Origin');
  assert.equal((await callInfo({ origin, 'x-csrf-token': csrf })).status, 401, 'no cookie');
  const info = await callInfo({ cookie, origin, 'x-csrf-token': csrf });
  assert.equal(info.status, 200);
  assert.equal(((await info.json()) as { nodes: unknown[] }).nodes.length, 1);
  assert.equal(
    (await fetch(`${origin}/admin/call/nothing`, { method: 'POST', headers: { cookie, origin, 'x-csrf-token': csrf } })).status,
    404,
  );

  const out = await fetch(`${origin}/admin/session`, { method: 'DELETE', headers: { cookie, origin } });
  assert.match(out.headers.get('set-cookie') ?? '', /^gh_admin=; .*Max-Age=0/);
});
