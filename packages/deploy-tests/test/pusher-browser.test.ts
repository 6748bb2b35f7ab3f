/**
 * Unmodified pusher-js (its browser build, served from node_modules) and Laravel Echo 2 (its IIFE
 * build) in real Chromium, against three gateways on Redis behind HAProxy. A small web app beside
 * the page does what a Laravel app does: it authorizes channels and users with the `pusher`
 * server library on /broadcasting/auth and /broadcasting/user-auth. Public, private and client
 * events (Echo's whisper), and a kill -9 of the browser's gateway.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { serviceSkipReason, waitFor } from '@gatehouse/testkit';
import type { BrowserContext, Page } from 'playwright-core';
import { PusherFleet, pusherFleetSkip } from './support/pusher-fleet.js';
import { APP, pusherServer } from './support/pusher.js';
import type { PusherServer } from './support/pusher.js';

const CHROMIUM = '/usr/bin/chromium';
const HOST = '127.0.0.1';
const require = createRequire(import.meta.url);
const SCRIPTS: Record<string, string> = {
  '/pusher.js': require.resolve('pusher-js/dist/web/pusher.min.js'),
  '/echo.js': require.resolve('laravel-echo/iife'),
};
const skip =
  (await pusherFleetSkip('Pusher in Chromium')) ??
  (await serviceSkipReason('chromium', 'Pusher in Chromium', async () => existsSync(CHROMIUM)));

const PAGE = `<!doctype html><meta charset="utf-8"><title>pusher on gatehouse</title>
<script src="/pusher.js"></script><script src="/echo.js"></script>
<script>window.loaded = typeof Pusher === 'function' && typeof Echo.default === 'function';</script>`;

async function form(req: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req) body += (chunk as Buffer).toString('utf8');
  return new URLSearchParams(body);
}

/** The page, the two libraries, and the app's auth endpoints (what Laravel would answer). */
async function startWebApp(server: PusherServer): Promise<{ web: Server; origin: string }> {
  const web = createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/') return res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
      const script = SCRIPTS[path];
      if (script) return res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(script));
      if (req.method === 'POST' && path === '/broadcasting/auth') {
        const f = await form(req);
        const user = f.get('user') ?? 'guest';
        const channel = f.get('channel_name') ?? '';
        const presence = channel.startsWith('presence-') ? { user_id: user, user_info: { id: user, name: `User ${user}` } } : undefined;
        return res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify(server.authorizeChannel(f.get('socket_id') ?? '', channel, presence)));
      }
      if (req.method === 'POST' && path === '/broadcasting/user-auth') {
        const f = await form(req);
        const auth = server.authenticateUser(f.get('socket_id') ?? '', { id: f.get('user') ?? 'guest' });
        return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(auth));
      }
      res.writeHead(404).end();
    })();
  });
  await new Promise<void>((resolve) => web.listen(0, HOST, resolve));
  return { web, origin: `http://${HOST}:${(web.address() as { port: number }).port}` };
}

type W = Record<string, any>;

/** Each page with its user (`<prefix>1`, `<prefix>2`). */
function pairs(p1: Page, p2: Page, prefix: string): [Page, string][] {
  return [
    [p1, `${prefix}1`],
    [p2, `${prefix}2`],
  ];
}

describe('pusher-js and Laravel Echo in Chromium, three gateways behind HAProxy', { skip, timeout: 180_000 }, () => {
  let fleet: PusherFleet;
  let server: PusherServer;
  let app: { web: Server; origin: string };
  let context: BrowserContext;
  let profile: string;
  const pageErrors: string[] = [];

  /** A fresh page with the libraries loaded. */
  async function page(): Promise<Page> {
    const p = await context.newPage();
    p.on('pageerror', (e) => pageErrors.push(e.message));
    await p.goto(app.origin + '/');
    await p.waitForFunction(() => (globalThis as unknown as W).loaded === true, null, { timeout: 30_000 });
    return p;
  }

  const options = (user: string) => ({
    key: APP.key,
    cluster: 'gatehouse',
    wsHost: HOST,
    wsPort: fleet.proxy.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: { endpoint: '/broadcasting/auth', transport: 'ajax', params: { user } },
    userAuthentication: { endpoint: '/broadcasting/user-auth', transport: 'ajax', params: { user } },
  });

  before(async () => {
    fleet = await PusherFleet.start();
    server = pusherServer(HOST, fleet.proxy.port);
    app = await startWebApp(server);
    const { chromium } = await import('playwright-core');
    profile = await mkdtemp(join(tmpdir(), 'gatehouse-pusher-chromium-'));
    const args =
      '--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync --no-first-run';
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 60_000,
      args: args.split(' '),
    });
  });

  after(async () => {
    await context?.close();
    await new Promise<void>((resolve) => (app ? app.web.close(() => resolve()) : resolve()));
    await fleet?.stop();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  test('pusher-js: public and private channels, client events between two pages, kill -9 of its gateway', async () => {
    const [p1, p2] = [await page(), await page()];
    for (const [p, user] of pairs(p1, p2, 'u')) {
      await p.evaluate((o) => {
        const w = globalThis as unknown as W;
        w.got = [];
        w.pusher = new w.Pusher(o.key, o);
        for (const name of ['public-browser', 'private-browser']) {
          const ch = w.pusher.subscribe(name);
          ch.bind('pusher:subscription_succeeded', () => w.got.push(`subscribed ${name}`));
          ch.bind_global((event: string, data: unknown) => {
            if (!event.startsWith('pusher')) w.got.push(`${name} ${event} ${JSON.stringify(data)}`);
          });
        }
      }, options(user));
    }
    const has = (p: Page, line: string) =>
      waitFor(
        `page saw "${line}"`,
        async () => ((await p.evaluate(() => (globalThis as unknown as W).got)) as string[]).includes(line),
        15_000,
      );
    for (const p of [p1, p2]) {
      await has(p, 'subscribed public-browser');
      await has(p, 'subscribed private-browser');
    }
    await server.trigger(['public-browser', 'private-browser'], 'hello', { from: 'server' });
    for (const p of [p1, p2]) {
      await has(p, 'public-browser hello {"from":"server"}');
      await has(p, 'private-browser hello {"from":"server"}');
    }
    await p1.evaluate(() => (globalThis as unknown as W).pusher.channel('private-browser').trigger('client-wave', { from: 'p1' }));
    await has(p2, 'private-browser client-wave {"from":"p1"}');

    // kill -9 of p1's gateway (p2 may share it): the pages reconnect through HAProxy and receive again.
    const socketBefore = await p1.evaluate(() => (globalThis as unknown as W).pusher.connection.socket_id as string);
    const victim = await fleet.nodeOfSocket(socketBefore);
    await fleet.killAndRestart(victim, async () => {
      await waitFor(
        'p1 reconnected',
        async () =>
          p1.evaluate((old) => {
            const c = (globalThis as unknown as W).pusher.connection;
            return c.state === 'connected' && c.socket_id !== old;
          }, socketBefore),
        30_000,
      );
    });
    await waitFor(
      'an event after the kill reaches p1',
      async () => {
        await server.trigger('private-browser', 'after', { ok: true }).catch(() => undefined);
        const got = (await p1.evaluate(() => (globalThis as unknown as W).got)) as string[];
        return got.includes('private-browser after {"ok":true}');
      },
      20_000,
      500,
    );
    for (const p of [p1, p2]) await p.close();
  });

  test('Laravel Echo: channel().listen, private().listen, whisper, join().here/joining/leaving', async () => {
    const [p1, p2] = [await page(), await page()];
    for (const [p, user] of pairs(p1, p2, 'e')) {
      await p.evaluate(
        ({ o, user }) => {
          const w = globalThis as unknown as W;
          w.got = [];
          w.echo = new w.Echo.default({ broadcaster: 'pusher', ...o, auth: { params: { user } } });
          w.echo.channel('orders').listen('.OrderShipped', (e: unknown) => w.got.push(`orders ${JSON.stringify(e)}`));
          w.echo
            .private('user.42')
            .listen('.Updated', (e: unknown) => w.got.push(`private ${JSON.stringify(e)}`))
            .listenForWhisper('typing', (e: unknown) => w.got.push(`whisper ${JSON.stringify(e)}`));
        },
        { o: options(user), user },
      );
    }
    const has = (p: Page, line: string) =>
      waitFor(
        `Echo page saw "${line}"`,
        async () => ((await p.evaluate(() => (globalThis as unknown as W).got)) as string[]).includes(line),
        15_000,
      );
    // Subscriptions settle before the first trigger: wait for both pages' channels.
    await waitFor(
      'Echo subscribed',
      async () => {
        const counts = await Promise.all(
          [p1, p2].map((p) =>
            p.evaluate(() => {
              const ch = (globalThis as unknown as W).echo.connector.pusher.channels.channels;
              return Object.values(ch).filter((c) => (c as W).subscribed).length;
            }),
          ),
        );
        return counts.every((n) => n === 2);
      },
      15_000,
    );
    await server.trigger('orders', 'OrderShipped', { id: 1 });
    await server.trigger('private-user.42', 'Updated', { name: 'x' });
    for (const p of [p1, p2]) {
      await has(p, 'orders {"id":1}');
      await has(p, 'private {"name":"x"}');
    }
    await p1.evaluate(() => (globalThis as unknown as W).echo.private('user.42').whisper('typing', { who: 'e1' }));
    await has(p2, 'whisper {"who":"e1"}');

    // Presence: join().here/joining/leaving across the fleet.
    const join = (p: Page) =>
      p.evaluate(() => {
        const w = globalThis as unknown as W;
        const ids = (users: { id: string }[]) =>
          users
            .map((u) => u.id)
            .sort()
            .join(',');
        w.echo
          .join('lobby')
          .here((users: { id: string }[]) => w.got.push(`here ${ids(users)}`))
          .joining((u: { id: string; name: string }) => w.got.push(`joining ${u.id} ${u.name}`))
          .leaving((u: { id: string }) => w.got.push(`leaving ${u.id}`));
      });
    await join(p1);
    await has(p1, 'here e1');
    await join(p2);
    await has(p2, 'here e1,e2');
    await has(p1, 'joining e2 User e2');
    await p2.close();
    await has(p1, 'leaving e2');
    assert.deepEqual(pageErrors, []);
    await p1.close();
  });
});
