/**
 * The browser entry in a real browser: Chromium loads the compiled ESM (and its import of
 * @gatehouse/protocol through an import map) from a local HTTP server, connects with its native
 * WebSocket to the scripted fake server, subscribes and receives; then survives a refused
 * reconnect and resubscribes from its last offset.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CloseCode } from '@gatehouse/protocol';
import { serviceSkipReason } from '@gatehouse/testkit';
import { FakeServer } from './fake-server.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = await serviceSkipReason('chromium', 'client browser test', async () => existsSync(CHROMIUM));

const roots: Record<string, string> = {
  client: fileURLToPath(new URL('../src/', import.meta.url)),
  protocol: fileURLToPath(new URL('../../../protocol/dist/src/', import.meta.url)),
};

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>gatehouse browser test</title>
<script type="importmap">{ "imports": { "@gatehouse/protocol": "/protocol/index.js" } }</script>
<script type="module">
  import { GatehouseClient } from '/client/index.js';
  window.GatehouseClient = GatehouseClient;
  window.loaded = true;
</script>`;

/** Serves the page and the two compiled packages, nothing else, on 127.0.0.1 and a free port. */
async function startStatic(): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
        return;
      }
      const m = /^\/(client|protocol)\/([\w.-]+\.js)$/.exec(path);
      const root = m ? roots[m[1]!] : undefined;
      if (!m || !root) {
        res.writeHead(404).end();
        return;
      }
      try {
        const body = await readFile(join(root, m[2]!));
        res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(body);
      } catch {
        res.writeHead(404).end();
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { server, origin: `http://127.0.0.1:${port}` };
}

test('the browser entry connects, subscribes, receives, and resubscribes after a refusal', { skip, timeout: 120_000 }, async (t) => {
  const { chromium } = await import('playwright-core');
  const fake = await FakeServer.start();
  const web = await startStatic();
  const profile = await mkdtemp(join(tmpdir(), 'gatehouse-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  t.after(async () => {
    await context.close();
    await fake.stop();
    await new Promise<void>((resolve) => web.server.close(() => resolve()));
    await rm(profile, { recursive: true, force: true });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(web.origin + '/');
  await page.waitForFunction(() => (window as unknown as { loaded?: boolean }).loaded === true, null, { timeout: 30_000 });

  await page.evaluate((url) => {
    const w = window as unknown as Record<string, any>;
    w.received = [];
    w.disconnects = [];
    const client = new w.GatehouseClient(url, { token: 'browser-token', backoff: { minMs: 20, maxMs: 40 } });
    w.client = client;
    client.on('disconnected', (e: unknown) => w.disconnects.push(e));
    client.subscribe('chat:browser').on('publication', (p: { offset: number; data: unknown }) => w.received.push(p));
    client.connect();
  }, fake.url);

  const first = await fake.nextConnection(30_000);
  const connect = await first.accept();
  assert.equal(connect.token, 'browser-token');
  assert.equal(first.path, '/ws');
  const sub = await first.next('subscribe');
  first.send({ op: 'subscribed', id: sub.id, channel: 'chat:browser', epoch: 'e1', offset: 0 });
  first.send({ op: 'pub', channel: 'chat:browser', epoch: 'e1', offset: 1, ts: Date.now(), data: { hello: 'browser' } });
  first.send({ op: 'pub', channel: 'chat:browser', epoch: 'e1', offset: 1, ts: Date.now(), data: { hello: 'duplicate' } });
  first.send({ op: 'ping' });
  await first.next('pong');
  await page.waitForFunction(() => (window as unknown as { received: unknown[] }).received.length >= 1, null, { timeout: 10_000 });
  const received = await page.evaluate(() => (window as unknown as { received: unknown[] }).received);
  assert.deepEqual(
    received.map((p) => (p as { data: unknown }).data),
    [{ hello: 'browser' }],
  );

  // The native WebSocket must hand the close code and the retry hint through to the SDK.
  first.close(CloseCode.Overloaded, 'busy; retry=100');
  const second = await fake.nextConnection(10_000);
  assert.equal((await second.accept()).reconnect, true);
  const resub = await second.next('subscribe');
  assert.deepEqual(resub.since, { epoch: 'e1', offset: 1 });
  const disconnects = await page.evaluate(() => (window as unknown as { disconnects: unknown[] }).disconnects);
  assert.deepEqual(disconnects, [{ code: 4100, reason: 'busy; retry=100', class: 'backoff', retryInMs: 100 }]);

  await page.evaluate(() => (window as unknown as { client: { close(): void } }).client.close());
  assert.equal((await second.closed).code, 1000);
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(fake.invalidFrames, []);
});
