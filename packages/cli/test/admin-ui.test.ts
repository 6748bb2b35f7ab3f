/**
 * The admin UI in real Chromium against two gateway nodes sharing a bus (the UI is served by node
 * A; node B holds the users): sign in, see both nodes, publish and see the message in the
 * channel's history, disconnect a user and see node B's count drop, revoke a token, drain node B.
 * A wrong key is refused, and a cross-site POST (another origin's page, a stolen cookie without the
 * CSRF token, a foreign Origin) publishes nothing. With GATEHOUSE_ADMIN_SCREENSHOTS=<dir> the main
 * views are saved there as PNGs; docs/admin/ holds the committed ones:
 * `GATEHOUSE_ADMIN_SCREENSHOTS=docs/admin node scripts/test.mjs cli/dist/test/admin-ui`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { GatehouseClient } from '@gatehouse/client';
import { Gateway, MemoryBackbone, MemoryBus } from '@gatehouse/server';
import { serviceSkipReason, waitFor } from '@gatehouse/testkit';

const CHROMIUM = '/usr/bin/chromium';
const SECRET = 'admin-ui-secret-123';
const KEY = 'admin-ui-key-0123';
const skip = await serviceSkipReason('chromium', 'admin UI browser test', async () => existsSync(CHROMIUM));
const SHOTS = process.env['GATEHOUSE_ADMIN_SCREENSHOTS'];

async function node(bus: MemoryBus, nodeId: string): Promise<Gateway> {
  const gw = new Gateway(
    {
      port: 0,
      host: '127.0.0.1',
      nodeId,
      tokenSecret: SECRET,
      apiKeys: [{ key: KEY }, { key: 'limited-key-0123', channels: ['public:*'] }],
      announceIntervalMs: 200,
      adminUi: true,
    },
    { backbone: new MemoryBackbone({ bus }), logger: pino({ level: 'silent' }) },
  );
  await gw.start();
  return gw;
}

async function token(sub: string): Promise<string> {
  return new SignJWT({ channels: ['public:*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(SECRET));
}

test(
  'admin UI: sign in, both nodes, publish into history, disconnect, wrong key, cross-site POST',
  { skip, timeout: 180_000 },
  async (t) => {
    const { chromium } = await import('playwright-core');
    const bus = new MemoryBus();
    const a = await node(bus, 'ui-node-a');
    const b = await node(bus, 'ui-node-b');
    const clients: GatehouseClient[] = [];
    // Another site: a page on localhost (not 127.0.0.1) that POSTs to the gateway.
    const evil = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>evil</title>'));
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    // launch() gives the run a fresh, temporary profile.
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 60_000,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    t.after(async () => {
      for (const c of clients) c.close();
      await browser.close();
      await new Promise<void>((resolve) => evil.close(() => resolve()));
      await a.close();
      await b.close();
    });
    if (SHOTS) await mkdir(SHOTS, { recursive: true });
    const shot = async (name: string) => {
      if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    };

    // Users on node B: two connections of "mallory", one of "walt" watching the news channel.
    const channel = 'public:ui-news';
    for (const user of ['mallory', 'mallory', 'walt']) {
      const c = new GatehouseClient(`ws://127.0.0.1:${b.port}/ws`, { token: await token(user) });
      c.on('error', () => {});
      clients.push(c);
      c.connect();
      if (user === 'walt') c.subscribe(channel);
    }
    await waitFor('three clients connected', () => (clients.every((c) => c.state === 'connected') ? true : undefined));

    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    const origin = `http://127.0.0.1:${a.port}`;
    await page.goto(`${origin}/admin/`);

    // A wrong key (and a channel-limited one) is refused; nothing of the dashboard shows.
    await page.locator('#key').fill('not-the-key-0123');
    await page.locator('#sign-in-form button').click();
    await page
      .locator('#sign-in-error')
      .filter({ hasText: /not an unrestricted API key/ })
      .waitFor();
    assert.equal(await page.locator('#dashboard').isHidden(), true);
    await page.locator('#key').fill('limited-key-0123');
    await page.locator('#sign-in-form button').click();
    await page
      .locator('#sign-in-error')
      .filter({ hasText: /not an unrestricted API key/ })
      .waitFor();
    await shot('sign-in');

    // Sign in: the key leaves the page, and both nodes show with their figures.
    await page.locator('#key').fill(KEY);
    await page.locator('#sign-in-form button').click();
    await page.locator('#nodes tbody tr[data-node="ui-node-b"]').waitFor();
    await page.locator('#nodes tbody tr[data-node="ui-node-a"]').waitFor();
    assert.equal(await page.locator('#key').inputValue(), '', 'the key is not kept in the page');
    const cookies = await context.cookies(`${origin}/admin/`);
    const session = cookies.find((c) => c.name === 'gh_admin');
    assert.ok(session, 'a session cookie');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.ok(session.expires > Date.now() / 1000 && session.expires < Date.now() / 1000 + 3700, 'it expires within the hour');
    assert.equal(await page.evaluate('document.cookie'), '', 'the page cannot read it');
    const countOnB = async () =>
      Number((await page.locator('#nodes tbody tr[data-node="ui-node-b"] td').nth(2).textContent())?.replace(/\D/g, ''));
    await waitFor('node B shows three connections', async () => ((await countOnB()) === 3 ? true : undefined));

    // Publish from the UI and see it in the channel's history.
    await page.locator(`#channels tbody tr[data-channel="${channel}"]`).click();
    await page
      .locator('#history')
      .filter({ hasText: /no publications kept/ })
      .waitFor();
    await page.locator('#publish-data').fill('{"text":"hello from the admin UI"}');
    await page.locator('#publish-form button').click();
    await page
      .locator('#action-result')
      .filter({ hasText: /published to public:ui-news at offset 1/ })
      .waitFor();
    await page.locator('#history').filter({ hasText: 'hello from the admin UI' }).waitFor();
    await page
      .locator('#presence')
      .filter({ hasText: /presence not enabled|present|walt/ })
      .waitFor();
    if (SHOTS) {
      // For the pictures: some traffic, and a poll late enough to show rates.
      for (let i = 0; i < 20; i++) {
        await fetch(`${origin}/api/publish`, {
          method: 'POST',
          headers: { authorization: `apikey ${KEY}` },
          body: JSON.stringify({ channel, data: { i } }),
        });
      }
      const rates = page.locator('#nodes tbody tr[data-node="ui-node-b"] td').nth(4);
      await waitFor('rates on the page', async () => ((await rates.textContent()) !== '–' ? true : undefined), 15_000);
    }
    await shot('dashboard');

    // Disconnect a user: node B's count drops by mallory's two connections.
    await page.locator('#disconnect-user').fill('mallory');
    await page.locator('#disconnect-form button').click();
    await page
      .locator('#action-result')
      .filter({ hasText: /disconnected 2 connections of mallory \(code 4006\)/ })
      .waitFor();
    await waitFor('node B shows one connection', async () => ((await countOnB()) === 1 ? true : undefined));

    // Cross-site: a page of another site POSTs with the browser's credentials; nothing is published.
    const evilPage = await context.newPage();
    await evilPage.goto(`http://localhost:${(evil.address() as { port: number }).port}/`);
    const statuses = await evilPage.evaluate(async (target) => {
      const body = JSON.stringify({ channel: 'public:ui-news', data: 'forged' });
      const out: string[] = [];
      for (const init of [
        { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body },
        {
          method: 'POST',
          mode: 'cors',
          credentials: 'include',
          headers: { 'content-type': 'application/json', 'x-csrf-token': 'guess' },
          body,
        },
      ] as RequestInit[]) {
        try {
          const r = await fetch(`${target}/admin/call/publish`, init);
          out.push(String(r.status));
        } catch (e) {
          out.push(`blocked: ${(e as Error).message}`);
        }
      }
      return out;
    }, origin);
    assert.equal(statuses[0], '0', 'the no-cors POST is opaque to the other site');
    assert.match(statuses[1] as string, /^blocked/, 'the preflighted POST is blocked');
    // The same forgery from a server, with the stolen cookie: refused by the Origin and CSRF checks.
    const cookie = `gh_admin=${session.value}`;
    // The session is signed with a key derived from the API key: node B accepts node A's cookie.
    const onB = await fetch(`http://127.0.0.1:${b.port}/admin/session`, { headers: { cookie } });
    assert.equal(onB.status, 200, 'a session opened on A holds on B');
    assert.equal(typeof ((await onB.json()) as { csrf?: unknown }).csrf, 'string');
    const forged = async (headers: Record<string, string>) =>
      (
        await fetch(`${origin}/admin/call/publish`, {
          method: 'POST',
          headers: { cookie, 'content-type': 'application/json', ...headers },
          body: '{"channel":"public:ui-news","data":"forged"}',
        })
      ).status;
    assert.equal(await forged({ origin: 'http://evil.example' }), 403, 'a foreign Origin');
    assert.equal(await forged({ origin }), 403, 'no CSRF token');
    assert.equal(await forged({}), 403, 'no Origin at all');
    const history = (await (
      await fetch(`${origin}/api/history`, {
        method: 'POST',
        headers: { authorization: `apikey ${KEY}` },
        body: JSON.stringify({ channel }),
      })
    ).json()) as { publications: { data: unknown }[] };
    assert.deepEqual(
      history.publications.map((p) => p.data),
      [{ text: 'hello from the admin UI' }, ...(SHOTS ? Array.from({ length: 20 }, (_, i) => ({ i })) : [])],
      'nothing forged was published',
    );
    await evilPage.close();

    // The phone view, then sign out.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator('#nodes tbody tr[data-node="ui-node-a"]').waitFor();
    await shot('phone');
    await page.setViewportSize({ width: 1280, height: 860 });

    // Revoke a token, and drain node B (after confirming): its state turns to draining.
    await page.locator('#revoke-jti').fill('token-id-7');
    await page.locator('#revoke-form button').click();
    await page.locator('#action-result').filter({ hasText: 'token token-id-7 revoked on every node' }).waitFor();
    page.once('dialog', (d) => void d.accept());
    await page.locator('#nodes tbody tr[data-node="ui-node-b"] button').click();
    await page.locator('#nodes tbody tr[data-node="ui-node-b"]').filter({ hasText: 'draining' }).waitFor();
    assert.equal(b.ready, false);
    assert.equal(a.ready, true);

    await page.locator('#sign-out').click();
    await page.locator('#sign-in').waitFor();
    assert.deepEqual(pageErrors, []);
  },
);
