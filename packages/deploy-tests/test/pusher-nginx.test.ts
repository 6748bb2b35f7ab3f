/**
 * The shipped nginx config routes Pusher traffic (deploy/nginx/gatehouse.conf): pusher-js opens its
 * WebSocket on /app/{key} through nginx, and the `pusher` server library's signed HTTP API calls on
 * /apps/{id}/... pass through it, in front of three gateways on Redis.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PusherFleet, pusherFleetSkip } from './support/pusher-fleet.js';
import { PusherClients, connected, nextPusherEvent, pusherServer, subscribed } from './support/pusher.js';
import type { PusherServer } from './support/pusher.js';

const HOST = '127.0.0.1';
const skip = await pusherFleetSkip('Pusher fleet behind nginx', 'nginx');

describe('Pusher clients on three gateways behind nginx (shipped config)', { skip }, () => {
  let fleet: PusherFleet;
  let server: PusherServer;
  const clients = new PusherClients(() => ({ host: HOST, port: fleet.proxy.port, server }));

  before(async () => {
    fleet = await PusherFleet.start([], 'nginx');
    server = pusherServer(HOST, fleet.proxy.port);
  });

  after(async () => {
    clients.disconnectAll();
    await fleet?.stop();
  });

  test('pusher-js connects through /app/, the server library triggers and reads channel info through /apps/', async () => {
    const [a, b] = [clients.open(), clients.open()];
    await Promise.all([connected(a), connected(b)]);
    const [ca, cb] = await Promise.all([subscribed(a, 'private-nginx'), subscribed(b, 'private-nginx')]);
    const both = Promise.all([nextPusherEvent(ca, 'news'), nextPusherEvent(cb, 'news')]);
    const res = await server.trigger('private-nginx', 'news', { via: 'nginx' });
    assert.equal(res.status, 200);
    assert.deepEqual(await both, [{ via: 'nginx' }, { via: 'nginx' }]);
    const list = (await (await server.get({ path: '/channels' })).json()) as { channels: Record<string, unknown> };
    assert.ok('private-nginx' in list.channels, JSON.stringify(list));
  });
});
