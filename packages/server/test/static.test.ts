/**
 * The SDK's browser build at /sdk/gatehouse.js and the demo page at /demo/: headers, caching and
 * a clear answer when the build is missing; then, in real Chromium, the README's two console
 * snippets (raw WebSocket and the served SDK) run in the demo page and receive publications.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { DEMO_PATH, SDK_PATH, StaticRoutes, defaultSdkFile } from '../src/static.js';
import { api, startGateway } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';

/** A fenced block of a README between `<!-- readme:NAME:start -->` and its end marker. */
function readmeBlock(name: string, readmePath = 'README.md'): string {
  const readme = readFileSync(join(ROOT, readmePath), 'utf8');
  const m = new RegExp(`<!-- readme:${name}:start -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\`\`\`\\n<!-- readme:${name}:end -->`).exec(readme);
  assert.ok(m, `${readmePath} has the ${name} block`);
  return m[1] as string;
}

/**
 * A page in a fresh headless Chromium, with its console lines, uncaught errors and every frame its
 * WebSockets receive recorded. `subscribed(n)` waits for the gateway's n-th `subscribed` reply to
 * the page: only then is a publication certain to reach it.
 */
async function openPage(
  t: TestContext,
): Promise<{ page: Page; logs: string[]; pageErrors: string[]; subscribed: (n: number) => Promise<void> }> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  t.after(() => browser.close());
  const page = await browser.newPage();
  const logs: string[] = [];
  const pageErrors: string[] = [];
  page.on('console', (msg) => logs.push(msg.text()));
  page.on('pageerror', (e) => pageErrors.push(e.message));
  let replies = 0;
  page.on('websocket', (ws) =>
    ws.on('framereceived', (f) => {
      if (/"op"\s*:\s*"subscribed"/.test(String(f.payload))) replies++;
    }),
  );
  const subscribed = async (n: number): Promise<void> => {
    await waitFor(`${n} subscribed repl${n === 1 ? 'y' : 'ies'} in the page`, () => replies >= n);
  };
  return { page, logs, pageErrors, subscribed };
}

test('GET /sdk/gatehouse.js serves the single-file ESM build with caching headers and an ETag', async (t) => {
  assert.ok(existsSync(defaultSdkFile()), 'the SDK browser build is missing: run npm run build (npx tsc -b alone does not make it)');
  const gw = await startGateway();
  t.after(() => gw.close());
  const url = `http://127.0.0.1:${gw.port}${SDK_PATH}`;
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal(res.headers.get('cache-control'), 'public, max-age=300');
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  const body = await res.text();
  assert.equal(body, readFileSync(defaultSdkFile(), 'utf8'));
  assert.match(body, /export \{[^}]*\bGatehouseClient\b/);
  // One file: nothing left to resolve (a bare import would need an import map or a bundler).
  assert.doesNotMatch(body, /^\s*import\b|\bfrom\s*["']|\bimport\(/m);
  const etag = res.headers.get('etag');
  assert.match(etag ?? '', /^"[\w-]+"$/);

  const again = await fetch(url, { headers: { 'if-none-match': etag as string } });
  assert.equal(again.status, 304);
  assert.equal(await again.text(), '');
  const head = await fetch(url, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(body)));
  const post = await fetch(url, { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
});

test('GET /demo/ serves the demo page, /demo redirects to it', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const page = await fetch(`http://127.0.0.1:${gw.port}${DEMO_PATH}`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  const html = await page.text();
  assert.match(html, /"@gatehouse\/client": "\/sdk\/gatehouse\.js"/);
  const bare = await fetch(`http://127.0.0.1:${gw.port}/demo`, { redirect: 'manual' });
  assert.equal(bare.status, 308);
  assert.equal(bare.headers.get('location'), DEMO_PATH);
  // Only these paths: anything else under /sdk/ is still a 404.
  assert.equal((await fetch(`http://127.0.0.1:${gw.port}/sdk/other.js`)).status, 404);
});

test('a node without the SDK build answers 404 saying how to build it, and serves it once built', async (t) => {
  let file = join(ROOT, 'packages/client/dist/browser/missing.js');
  const routes = new StaticRoutes(() => file);
  const server = createServer((req, res) => {
    if (!routes.handle(req, res, req.url ?? '/')) res.writeHead(418).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}${SDK_PATH}`;
  const missing = await fetch(url);
  assert.equal(missing.status, 404);
  const body = (await missing.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'not_found');
  assert.match(body.error.message, /browser SDK is not available.*npm run build/);
  file = defaultSdkFile();
  assert.equal((await fetch(url)).status, 200);
});

test('in Chromium, the README snippets run in the demo page and receive publications', { timeout: 120_000 }, async (t) => {
  const skip = await serviceSkipReason('chromium', 'demo page in a browser', async () => existsSync(CHROMIUM));
  if (skip) return t.skip(skip);
  const gw = await startGateway();
  t.after(() => gw.close());
  const { page, logs, pageErrors, subscribed } = await openPage(t);
  await page.goto(`http://localhost:${gw.port}${DEMO_PATH}`);
  // The page's own module script imports the SDK through its import map.
  await page.waitForFunction('typeof window.GatehouseClient === "function"', null, { timeout: 30_000 });
  assert.match((await page.textContent('#status')) ?? '', new RegExp(`ws://localhost:${gw.port}/ws`));

  const port = (code: string): string => code.replaceAll('localhost:8080', `localhost:${gw.port}`);
  await page.evaluate(port(readmeBlock('browser')));
  await subscribed(1);
  assert.equal((await api(gw.port, '/api/publish', { channel: 'public:demo', data: { text: 'hello' } })).status, 200);
  assert.match(await waitFor('the raw snippet to log', () => logs.find((l) => l.startsWith('received 1'))), /hello/);

  // The SDK snippet uses top-level await as the console allows; run it in an async function and
  // keep its subscription reachable so the test knows when it is subscribed.
  await page.evaluate(`(async () => { ${port(readmeBlock('sdk'))}; window.readmeSub = sub; window.readmeClient = client; })()`);
  await page.waitForFunction('window.readmeSub?.state === "subscribed"', null, { timeout: 10_000 });
  assert.equal((await api(gw.port, '/api/publish', { channel: 'public:demo', data: { text: 'again' } })).status, 200);
  assert.match(await waitFor('the SDK snippet to log', () => logs.find((l) => l.startsWith('sdk received 2'))), /again/);
  await page.evaluate('window.readmeClient.close()');
  assert.deepEqual(pageErrors, []);
});

test(
  "in Chromium, a page on another origin imports the served SDK through the client README's import map",
  { timeout: 120_000 },
  async (t) => {
    const skip = await serviceSkipReason('chromium', 'SDK import map in a browser', async () => existsSync(CHROMIUM));
    if (skip) return t.skip(skip);
    const gw = await startGateway();
    t.after(() => gw.close());
    const html = readmeBlock('importmap', 'packages/client/README.md')
      .replaceAll('https://gateway.example.com', `http://localhost:${gw.port}`)
      .replaceAll('wss://gateway.example.com', `ws://localhost:${gw.port}`);
    // The page's origin (127.0.0.1 and another port) is not the gateway's: the import is cross-origin.
    const site = createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!doctype html>\n${html}`),
    );
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => site.close(() => resolve())));
    const { page, logs, pageErrors, subscribed } = await openPage(t);
    await page.goto(`http://127.0.0.1:${(site.address() as { port: number }).port}/`);
    await subscribed(1);
    assert.equal((await api(gw.port, '/api/publish', { channel: 'public:demo', data: { text: 'cross-origin' } })).status, 200);
    assert.match(await waitFor('the page to log', () => logs.find((l) => l.startsWith('page received 1'))), /cross-origin/);
    assert.deepEqual(pageErrors, []);
  },
);
