/**
 * The acceptance fleet for Pusher compatibility: three `gatehouse start` processes on Redis behind
 * HAProxy with the shipped config, driven by unmodified pusher-js (Node) and the official `pusher`
 * server library through the proxy. Events cross nodes, socket_id exclusion holds when the
 * excluded socket is on another node, channel info covers the fleet, and a kill -9 of a client's
 * gateway ends in pusher-js reconnecting through the proxy and receiving again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '@gatehouse/testkit';
import { PusherFleet, pusherFleetSkip } from './support/pusher-fleet.js';
import { PusherClients, connected, nextPusherEvent, pusherServer, subscribed } from './support/pusher.js';
import type { PusherServer } from './support/pusher.js';

const HOST = '127.0.0.1';
const skip = await pusherFleetSkip('Pusher fleet behind HAProxy');

describe('Pusher clients on three gateways on Redis behind HAProxy', { skip }, () => {
  let fleet: PusherFleet;
  let server: PusherServer;
  const clients = new PusherClients(() => ({ host: HOST, port: fleet.proxy.port, server }));
  const client = (user?: { id: string; info?: object }) => clients.open(user);

  before(async () => {
    fleet = await PusherFleet.start();
    server = pusherServer(HOST, fleet.proxy.port);
  });

  after(async () => {
    clients.disconnectAll();
    await fleet?.stop();
  });

  test('events cross nodes; socket_id exclusion holds on another node; channel info covers the fleet', async () => {
    // leastconn spreads one connection per node.
    const a = client();
    const idA = await connected(a);
    const b = client();
    await connected(b);
    const c = client();
    await connected(c);
    const counts = await fleet.connections();
    assert.deepEqual(counts, [1, 1, 1], 'one client per node');
    const [ca, cb, cc] = await Promise.all([
      subscribed(a, 'private-fleet'),
      subscribed(b, 'private-fleet'),
      subscribed(c, 'private-fleet'),
    ]);
    let aGot = 0;
    ca.bind('news', () => aGot++);
    const both = Promise.all([nextPusherEvent(cb, 'news'), nextPusherEvent(cc, 'news')]);
    await server.trigger('private-fleet', 'news', { n: 1 }, { socket_id: idA });
    assert.deepEqual(await both, [{ n: 1 }, { n: 1 }]);
    // A client event from b reaches a and c on the other nodes, not b.
    let bEcho = 0;
    cb.bind('client-move', () => bEcho++);
    const moved = Promise.all([nextPusherEvent(ca, 'client-move'), nextPusherEvent(cc, 'client-move')]);
    cb.trigger('client-move', { x: 3 });
    assert.deepEqual(await moved, [{ x: 3 }, { x: 3 }]);
    // Counted over the nodes the asking node knows to be alive (the fleet view fills within an announce interval).
    await waitFor(
      'subscription_count 3 over the fleet',
      async () => {
        const info = (await (await server.get({ path: '/channels/private-fleet', params: { info: 'subscription_count' } })).json()) as {
          subscription_count?: number;
        };
        return info.subscription_count === 3;
      },
      10_000,
      200,
    );
    assert.equal(aGot, 0, 'the excluded socket got nothing');
    assert.equal(bEcho, 0, 'the sender of a client event got nothing back');
    for (const x of [a, b, c]) x.disconnect();
    await waitFor('the three clients are gone', async () => (await fleet.connections()).every((n) => n === 0));
  });

  test('presence across nodes: members everywhere, member_added/removed cross nodes, a kill -9 leaves no ghost and no flicker', async () => {
    type Members = { count: number; each(fn: (m: { id: string }) => void): void };
    const ids = (ch: unknown) => {
      const out: string[] = [];
      (ch as { members: Members }).members.each((m) => out.push(m.id));
      return out.sort();
    };
    const [alice, bob, carol] = [client({ id: 'alice' }), client({ id: 'bob' }), client({ id: 'carol' })];
    for (const c of [alice, bob, carol]) await connected(c);
    assert.deepEqual(await fleet.connections(), [1, 1, 1], 'one member per node');
    const ca = await subscribed(alice, 'presence-fleet');
    const bobAdded = nextPusherEvent<{ id: string }>(ca, 'pusher:member_added');
    const cb = await subscribed(bob, 'presence-fleet');
    assert.equal((await bobAdded).id, 'bob');
    const cc = await subscribed(carol, 'presence-fleet');
    await waitFor('every member sees three', () => [ca, cb, cc].every((ch) => ids(ch).length === 3));
    const removed = nextPusherEvent<{ id: string }>(ca, 'pusher:member_removed');
    bob.disconnect();
    assert.equal((await removed).id, 'bob');
    // kill -9 of carol's node: she reconnects elsewhere and is a member again; alice never sees her leave.
    let carolLeft = 0;
    ca.bind('pusher:member_removed', (m: { id: string }) => m.id === 'carol' && carolLeft++);
    const first = carol.connection.socket_id;
    await fleet.killAndRestart(await fleet.nodeOfSocket(first), async () => {
      await waitFor('carol reconnected', () => carol.connection.state === 'connected' && carol.connection.socket_id !== first, 30_000);
      await waitFor('carol resubscribed', () => cc.subscribed, 10_000);
    });
    await waitFor(
      'the dead node lease ran out: one carol, on a live node',
      async () => {
        const users = (await (await server.get({ path: '/channels/presence-fleet/users' })).json()) as { users: { id: string }[] };
        const info = (await (await server.get({ path: '/channels/presence-fleet', params: { info: 'subscription_count' } })).json()) as {
          subscription_count: number;
        };
        return (
          users.users
            .map((u) => u.id)
            .sort()
            .join() === 'alice,carol' && info.subscription_count === 2
        );
      },
      15_000,
      250,
    );
    assert.deepEqual(ids(ca), ['alice', 'carol']);
    assert.equal(carolLeft, 0, 'a member whose node died and who came back at once never left, as Pusher counts users');
    for (const c of [alice, carol]) c.disconnect();
    await waitFor('the clients are gone', async () => (await fleet.connections()).every((n) => n === 0));
  });

  test('kill -9 of its gateway: pusher-js reconnects through HAProxy, resubscribes and receives', async () => {
    const c = client();
    const first = await connected(c);
    const ch = await subscribed(c, 'public-survivor');
    const before = nextPusherEvent(ch, 'tick');
    await server.trigger('public-survivor', 'tick', 1);
    assert.equal(await before, 1);
    const victim = await fleet.nodeOfSocket(first);
    await fleet.killAndRestart(victim, async () => {
      await waitFor(
        'pusher-js reconnected on another node',
        () => c.connection.state === 'connected' && c.connection.socket_id !== first,
        30_000,
      );
      await waitFor('resubscribed', () => ch.subscribed, 10_000);
    });
    // The trigger may land on any survivor through the proxy; retry until the event arrives.
    const got = nextPusherEvent(ch, 'tick', 15_000);
    await waitFor(
      'an event after the kill',
      async () => {
        await server.trigger('public-survivor', 'tick', 2).catch(() => undefined);
        return Promise.race([got.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 500))]);
      },
      15_000,
    );
    assert.equal(await got, 2);
  });
});
