/**
 * The Pusher door on one in-process gateway, driven by unmodified pusher-js (Node) and the official
 * `pusher` server library: public and private channels, client events, trigger with socket_id
 * exclusion, batch trigger, channel info, sign-in and terminate, request signing, and the abuse
 * cases that apply to Pusher clients. The three-gateway fleet behind HAProxy is pusher-fleet.test.ts.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { Gateway } from '@gatehouse/server';
import { waitFor, withDeadline } from '@gatehouse/testkit';
import { APP, APP_SPEC, PusherClients, connected, nextPusherEvent, pusherServer, subscribed } from './support/pusher.js';
import type { PusherServer } from './support/pusher.js';

const HOST = '127.0.0.1';

/** A raw WebSocket on the Pusher door, for what pusher-js would never send. */
async function raw(port: number, path: string): Promise<{ ws: WebSocket; frames: Record<string, unknown>[]; closed: Promise<number> }> {
  const ws = new WebSocket(`ws://${HOST}:${port}${path}`);
  const frames: Record<string, unknown>[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString()) as Record<string, unknown>));
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await withDeadline('raw socket open', new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject)));
  return { ws, frames, closed };
}

describe('Pusher door (one gateway)', () => {
  let gw: Gateway;
  let server: PusherServer;
  const clients = new PusherClients(() => ({ host: HOST, port: gw.port, server }));
  const client = (user?: { id: string; info?: object }) => clients.open(user);

  /** Pusher webhooks the gateway posted, as the `pusher` library reads them. */
  const hooks: { valid: boolean; events: { name: string; channel: string; [k: string]: unknown }[] }[] = [];
  let hookServer: Server;

  before(async () => {
    hookServer = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        const hook = server.webhook({ headers: req.headers as Record<string, string>, rawBody: body });
        hooks.push({ valid: hook.isValid(), events: hook.isValid() ? (hook.getEvents() as never) : [] });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => hookServer.listen(0, HOST, resolve));
    const hookUrl = `http://${HOST}:${(hookServer.address() as { port: number }).port}/pusher-hook`;
    gw = new Gateway(
      {
        port: 0,
        host: HOST,
        pusherApps: [APP_SPEC] as never,
        pusherWebhooks: [`${APP.id}=${hookUrl}`],
        heartbeatMs: 1000,
        announceIntervalMs: 200,
      },
      { logger: pino({ level: process.env['GATEHOUSE_TEST_LOG'] ?? 'silent' }) },
    );
    await gw.start();
    server = pusherServer(HOST, gw.port);
  });

  after(async () => {
    clients.disconnectAll();
    await gw.close();
    hookServer?.close();
  });

  test('public channel: connection_established, subscribe, trigger reaches the subscriber', async () => {
    const c = client();
    const socketId = await connected(c);
    assert.match(socketId, /^\d+\.\d+$/);
    const ch = await subscribed(c, 'public-news');
    const got = nextPusherEvent<{ n: number }>(ch, 'update');
    await server.trigger('public-news', 'update', { n: 1 });
    assert.deepEqual(await got, { n: 1 });
  });

  test('trigger to several channels, socket_id exclusion, and triggerBatch', async () => {
    const a = client();
    const b = client();
    const [idA] = await Promise.all([connected(a), connected(b)]);
    const [a1, b1] = await Promise.all([subscribed(a, 'room-1'), subscribed(b, 'room-1')]);
    const b2 = await subscribed(b, 'room-2');
    let aGot = 0;
    a1.bind('hello', () => aGot++);
    const both = Promise.all([nextPusherEvent(b1, 'hello'), nextPusherEvent(b2, 'hello')]);
    await server.trigger(['room-1', 'room-2'], 'hello', 'x', { socket_id: idA });
    assert.deepEqual(await both, ['x', 'x']);
    const batch = Promise.all([nextPusherEvent(a1, 'b1'), nextPusherEvent(b2, 'b2')]);
    await server.triggerBatch([
      { channel: 'room-1', name: 'b1', data: { k: 1 } },
      { channel: 'room-2', name: 'b2', data: 'text' },
    ]);
    assert.deepEqual(await batch, [{ k: 1 }, 'text']);
    assert.equal(aGot, 0, 'the excluded socket did not get the event');
  });

  test('private channel: a signed subscription succeeds, a wrongly signed one is refused', async () => {
    const c = client();
    await connected(c);
    const ch = await subscribed(c, 'private-orders');
    const got = nextPusherEvent(ch, 'created');
    await server.trigger('private-orders', 'created', { id: 7 });
    assert.deepEqual(await got, { id: 7 });
    const bad = clients.open(undefined, {
      channelAuthorization: { customHandler: (_p, cb) => cb(null, { auth: `${APP.key}:${'0'.repeat(64)}` }) },
    });
    await connected(bad);
    await assert.rejects(subscribed(bad, 'private-orders'), /subscription_error/);
  });

  test('client events reach the other subscribers of a private channel, not the sender, and are rate limited', async () => {
    const a = client();
    const b = client();
    await Promise.all([connected(a), connected(b)]);
    const [ca, cb] = await Promise.all([subscribed(a, 'private-chat'), subscribed(b, 'private-chat')]);
    let echoed = 0;
    ca.bind('client-typing', () => echoed++);
    const got = nextPusherEvent(cb, 'client-typing');
    assert.equal(ca.trigger('client-typing', { who: 'a' }), true);
    assert.deepEqual(await got, { who: 'a' });
    // A flood: more than 10 a second is refused with pusher:error 4301, and the connection stays.
    const errors: unknown[] = [];
    a.connection.bind('error', (e: unknown) => errors.push(e));
    for (let i = 0; i < 30; i++) ca.trigger('client-flood', { i });
    await waitFor('pusher:error 4301', () => errors.some((e) => JSON.stringify(e).includes('4301')), 5000);
    assert.equal(a.connection.state, 'connected');
    assert.equal(echoed, 0, 'the sender does not get its own client event');
  });

  test('channel info, channel list and terminate_connections through the server library', async () => {
    const c = client({ id: 'user-9' });
    await connected(c);
    await subscribed(c, 'stats-room');
    const info = (await (await server.get({ path: '/channels/stats-room', params: { info: 'subscription_count' } })).json()) as Record<
      string,
      unknown
    >;
    assert.deepEqual(info, { occupied: true, subscription_count: 1 });
    const list = (await (await server.get({ path: '/channels', params: { filter_by_prefix: 'stats-' } })).json()) as Record<
      string,
      unknown
    >;
    assert.deepEqual(list, { channels: { 'stats-room': {} } });
    const empty = (await (await server.get({ path: '/channels/nobody-here' })).json()) as Record<string, unknown>;
    assert.equal(empty['occupied'], false);
    // Sign in (pusher:signin with authenticateUser), then terminate the user's connections.
    c.signin();
    await waitFor('signed in', () => (c as unknown as { user: { user_data: unknown } }).user.user_data !== null, 5000);
    const closedAt = withDeadline(
      'terminated',
      new Promise<void>((resolve) => c.connection.bind('state_change', (s: { current: string }) => s.current !== 'connected' && resolve())),
    );
    await server.terminateUserConnections('user-9');
    await closedAt;
  });

  test('presence: members on subscribe, member_added/removed per user (not per connection), users and user_count', async () => {
    type Members = { count: number; me: { id: string }; each(fn: (m: { id: string; info: unknown }) => void): void };
    const alice = client({ id: 'alice', info: { name: 'Alice' } });
    await connected(alice);
    const ca = await subscribed(alice, 'presence-room');
    assert.equal((ca as unknown as { members: Members }).members.count, 1);
    const added = nextPusherEvent<{ id: string; info: unknown }>(ca, 'pusher:member_added');
    const bob = client({ id: 'bob', info: { name: 'Bob' } });
    await connected(bob);
    const cb = await subscribed(bob, 'presence-room');
    assert.deepEqual(await added, { id: 'bob', info: { name: 'Bob' } });
    const seen: string[] = [];
    (cb as unknown as { members: Members }).members.each((m) => seen.push(m.id));
    assert.deepEqual(seen.sort(), ['alice', 'bob']);
    // Alice's second connection adds a connection, not a member: Bob hears nothing.
    let bobHeard = 0;
    cb.bind('pusher:member_added', () => bobHeard++);
    const alice2 = client({ id: 'alice', info: { name: 'Alice' } });
    await connected(alice2);
    await subscribed(alice2, 'presence-room');
    const users = (await (await server.get({ path: '/channels/presence-room/users' })).json()) as { users: { id: string }[] };
    assert.deepEqual(users.users.map((u) => u.id).sort(), ['alice', 'bob']);
    const info = (await (
      await server.get({ path: '/channels/presence-room', params: { info: 'user_count,subscription_count' } })
    ).json()) as Record<string, unknown>;
    assert.deepEqual(info, { occupied: true, subscription_count: 3, user_count: 2 });
    const removed = nextPusherEvent<{ id: string }>(ca, 'pusher:member_removed');
    bob.disconnect();
    assert.equal((await removed).id, 'bob');
    assert.equal(bobHeard, 0);
  });

  test('webhooks in Pusher format, verified by the pusher library: occupied, member_added/removed, client_event, vacated', async () => {
    const seen = (name: string, channel: string) =>
      waitFor(
        `webhook ${name} ${channel}`,
        () => hooks.flatMap((h) => h.events).find((e) => e.name === name && e.channel === channel),
        10_000,
      );
    // A node speaks for the fleet only once it has held its presence lease for a full window (issue 12).
    await waitFor('the node settled', () => gw.presence.book.settledNodes('').length > 0, 10_000);
    const a = client({ id: 'hook-user' });
    const b = client({ id: 'hook-other' });
    await Promise.all([connected(a), connected(b)]);
    await subscribed(a, 'private-hooked');
    await seen('channel_occupied', 'private-hooked');
    const [pa] = await Promise.all([subscribed(a, 'presence-hooked'), subscribed(b, 'presence-hooked')]);
    assert.equal((await seen('member_added', 'presence-hooked'))['user_id'] !== undefined, true);
    pa.trigger('client-ping', { n: 1 });
    const ce = await seen('client_event', 'presence-hooked');
    assert.equal(ce['event'], 'client-ping');
    assert.equal(ce['user_id'], 'hook-user');
    assert.deepEqual(JSON.parse(ce['data'] as string), { n: 1 });
    b.disconnect();
    assert.equal((await seen('member_removed', 'presence-hooked'))['user_id'], 'hook-other');
    a.disconnect();
    await seen('channel_vacated', 'private-hooked');
    assert.ok(
      hooks.every((h) => h.valid),
      'every webhook carries a valid X-Pusher-Signature',
    );
  });

  test('the HTTP API refuses bad signatures, stale timestamps and unknown apps', async () => {
    const wrong = new (server.constructor as new (o: object) => PusherServer)({
      appId: APP.id,
      key: APP.key,
      secret: 'not-the-secret',
      host: HOST,
      port: String(gw.port),
      useTLS: false,
    });
    await assert.rejects(wrong.trigger('x', 'y', 'z'), (e: { status?: number }) => e.status === 401);
    const ts = Math.floor(Date.now() / 1000) - 3600;
    const path = `/apps/${APP.id}/channels`;
    const query = `auth_key=${APP.key}&auth_timestamp=${ts}&auth_version=1.0`;
    const sig = createHmac('sha256', APP.secret).update(`GET\n${path}\n${query}`).digest('hex');
    const stale = await fetch(`http://${HOST}:${gw.port}${path}?${query}&auth_signature=${sig}`);
    assert.equal(stale.status, 401);
    assert.match(await stale.text(), /auth_timestamp/);
    const unknown = await fetch(`http://${HOST}:${gw.port}/apps/nope/channels?${query}&auth_signature=${sig}`);
    assert.equal(unknown.status, 404);
  });

  test('abuse: unknown app key closes 4001, bad frames get pusher:error and the connection stays', async () => {
    const unknown = await raw(gw.port, '/app/no-such-key?protocol=7');
    assert.equal(await withDeadline('close', unknown.closed), 4001);
    assert.equal(unknown.frames[0]?.['event'], 'pusher:error');
    const badEscape = await raw(gw.port, '/app/%C3%28%?protocol=7');
    assert.equal(await withDeadline('close', badEscape.closed), 4001, 'a key with a broken escape is an unknown key, not a crash');
    const noVersion = await raw(gw.port, `/app/${APP.key}`);
    assert.equal(await withDeadline('close', noVersion.closed), 4008);
    const r = await raw(gw.port, `/app/${APP.key}?protocol=7&client=js`);
    await waitFor('connection_established', () => r.frames.length >= 1);
    assert.equal(r.frames[0]?.['event'], 'pusher:connection_established');
    r.ws.send('not json');
    r.ws.send(JSON.stringify({ no: 'event' }));
    r.ws.send(JSON.stringify({ event: 'client-x', channel: 'public-a', data: {} }));
    r.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await waitFor('four pusher:error', () => r.frames.filter((f) => f['event'] === 'pusher:error').length >= 4);
    r.ws.send(JSON.stringify({ event: 'pusher:ping', data: {} }));
    await waitFor('pusher:pong', () => r.frames.some((f) => f['event'] === 'pusher:pong'));
    r.ws.send('x'.repeat(70_000)); // above the payload limit: the socket closes 1009
    assert.equal(await withDeadline('oversize close', r.closed), 1009);
  });

  test('the opt-in recovery extension: positions on events, a replay after a reconnect, never a silent gap', async () => {
    const open = async () => {
      const r = await raw(gw.port, `/app/${APP.key}?protocol=7`);
      await waitFor('connection_established', () => r.frames.length >= 1);
      r.ws.send(JSON.stringify({ event: 'gatehouse:recovery', data: {} }));
      await waitFor('recovery_enabled', () => r.frames.some((f) => f['event'] === 'gatehouse:recovery_enabled'));
      return r;
    };
    const events = (r: { frames: Record<string, unknown>[] }) => r.frames.filter((f) => f['event'] === 'tick');
    const first = await open();
    first.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'public-recover' } }));
    await waitFor('subscribed', () => first.frames.some((f) => f['event'] === 'pusher_internal:subscription_succeeded'));
    for (let i = 1; i <= 3; i++) await server.trigger('public-recover', 'tick', i);
    await waitFor('three ticks', () => events(first).length === 3);
    const { ts, ...last } = events(first)[2]?.['gatehouse'] as { epoch: string; offset: number; ts: number };
    assert.ok(typeof last.epoch === 'string' && last.offset > 0, 'events carry their position');
    assert.ok(Math.abs(Date.now() - ts) < 60_000, 'and when the gateway accepted them');
    first.ws.close();
    for (let i = 4; i <= 5; i++) await server.trigger('public-recover', 'tick', i);
    const second = await open();
    second.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'public-recover', gatehouse_since: last } }));
    await waitFor('two replayed ticks', () => events(second).length === 2);
    const ok = second.frames.find((f) => f['event'] === 'pusher_internal:subscription_succeeded');
    assert.equal((ok?.['gatehouse'] as { recovered?: boolean }).recovered, true);
    assert.deepEqual(
      events(second).map((f) => f['data']),
      ['4', '5'],
    );
    // A position history cannot serve (another epoch) is reported, not papered over.
    const third = await open();
    third.ws.send(
      JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'public-recover', gatehouse_since: { epoch: 'gone', offset: 1 } } }),
    );
    await waitFor('subscribed', () => third.frames.some((f) => f['event'] === 'pusher_internal:subscription_succeeded'));
    const reply = third.frames.find((f) => f['event'] === 'pusher_internal:subscription_succeeded');
    assert.equal((reply?.['gatehouse'] as { recovered?: boolean }).recovered, false);
    for (const r of [second, third]) r.ws.close();
  });

  test('connection metrics carry the protocol: pusher beside gatehouse', async () => {
    const metrics = async () => (await fetch(`http://${HOST}:${gw.port}/metrics`)).text();
    const c = client();
    await connected(c);
    const native = new WebSocket(`ws://${HOST}:${gw.port}/ws`);
    native.on('open', () => native.send(JSON.stringify({ op: 'connect', id: 1, v: 1 })));
    await withDeadline('native connected', new Promise((resolve) => native.on('message', resolve)));
    const text = await metrics();
    const value = (name: string, protocol: string) =>
      Number(new RegExp(`^${name}\\{[^}]*protocol="${protocol}"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    assert.ok(value('gatehouse_connections', 'pusher') >= 1, 'open Pusher connections');
    assert.ok(value('gatehouse_connections', 'gatehouse') >= 1, 'open native connections');
    assert.ok(value('gatehouse_connects_total', 'pusher') >= 1);
    assert.ok(value('gatehouse_connects_total', 'gatehouse') >= 1);
    c.disconnect();
    await waitFor('a Pusher disconnect counted', async () =>
      /^gatehouse_disconnects_total\{[^}]*protocol="pusher"[^}]*\} [1-9]/m.test(await metrics()),
    );
    native.close();
  });

  test('a drain makes pusher-js reconnect (4200 range), not give up', async () => {
    const other = new Gateway(
      { port: 0, host: HOST, pusherApps: [APP_SPEC] as never, drainWindowMs: 100 },
      { logger: pino({ level: 'silent' }) },
    );
    await other.start();
    const c = new PusherClients(() => ({ host: HOST, port: other.port, server })).open();
    await connected(c);
    const codes: number[] = [];
    c.connection.bind('state_change', (s: { current: string }) => codes.push(s.current === 'connecting' ? 1 : 0));
    await other.drain(100);
    await waitFor('pusher-js reconnecting', () => c.connection.state === 'connecting' || codes.includes(1), 5000);
    c.disconnect();
    await other.close();
    await sleep(10);
  });
});
