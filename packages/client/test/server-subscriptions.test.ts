/**
 * Subscriptions the server makes or ends (the server API's subscribe and unsubscribe): the SDK
 * creates or ends the subscription and emits its usual events, resubscribes a server-made one
 * from its position after a reconnect, and a disconnect code's class decides what follows.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '@gatehouse/testkit';
import { GatehouseClient } from '../src/node.js';
import { FakeServer } from './fake-server.js';
import { collect, nextOf } from './helpers.js';

async function setup(t: TestContext) {
  const server = await FakeServer.start();
  const client = new GatehouseClient(server.url, { backoff: { minMs: 10, maxMs: 40 }, random: () => 0 });
  t.after(async () => {
    client.close();
    await server.stop();
    assert.deepEqual(server.invalidFrames, [], 'the SDK sent frames that are not valid protocol v1');
  });
  return { server, client };
}

test('server_subscribed creates a subscription with the usual events; server_unsubscribed ends it with reason "server"', async (t) => {
  const { server, client } = await setup(t);
  const subscribed = collect(client, 'subscribed');
  const publications = collect(client, 'publication');
  const ended = collect(client, 'unsubscribed');
  client.connect();
  const conn = await server.nextConnection();
  await conn.accept();
  await nextOf(client, 'connected');
  conn.send({ op: 'server_subscribed', channel: 'news:eu', epoch: 'e1', offset: 3 });
  await waitFor('subscribed', () => subscribed.length === 1);
  assert.deepEqual(subscribed[0], { channel: 'news:eu', epoch: 'e1', offset: 3 });
  const sub = client.getSubscription('news:eu');
  assert.equal(sub?.state, 'subscribed');
  conn.send({ op: 'pub', channel: 'news:eu', epoch: 'e1', offset: 3, ts: 1, data: 'old' });
  conn.send({ op: 'pub', channel: 'news:eu', epoch: 'e1', offset: 4, ts: 1, data: 'new' });
  await waitFor('the publication', () => publications.length === 1);
  assert.equal(publications[0]?.data, 'new', 'nothing at or below the position it was subscribed at');

  // After a lost connection the SDK asks for it again, from where it was.
  conn.close(4301, 'heartbeat');
  const again = await server.nextConnection();
  await again.accept();
  const resub = await again.next('subscribe');
  assert.deepEqual(resub.since, { epoch: 'e1', offset: 4 });
  again.send({ op: 'subscribed', id: resub.id, channel: 'news:eu', epoch: 'e1', offset: 4, recovered: true });
  await waitFor('subscribed again', () => subscribed.length === 2);

  again.send({ op: 'server_unsubscribed', channel: 'news:eu' });
  await waitFor('unsubscribed', () => ended.length === 1);
  assert.deepEqual(ended[0], { channel: 'news:eu', reason: 'server' });
  assert.equal(client.getSubscription('news:eu'), undefined);
  assert.equal(sub?.state, 'unsubscribed');
});

test('a server_subscribed for a channel the application is subscribing to confirms it; the late already_subscribed is not an error', async (t) => {
  const { server, client } = await setup(t);
  const errors = collect(client, 'error');
  const sub = client.subscribe('chat:x');
  client.connect();
  const conn = await server.nextConnection();
  await conn.accept();
  const req = await conn.next('subscribe');
  conn.send({ op: 'server_subscribed', channel: 'chat:x', epoch: 'e', offset: 0 });
  conn.send({ op: 'error', id: req.id, code: 'already_subscribed', message: 'already subscribed to chat:x' });
  await waitFor('subscribed', () => sub.state === 'subscribed');
  conn.send({ op: 'pub', channel: 'chat:x', epoch: 'e', offset: 1, ts: 1, data: 'hi' });
  await nextOf(sub, 'publication');
  assert.equal(sub.state, 'subscribed');
  assert.deepEqual(errors, []);
});

test('disconnect codes from the server API: 4006 stops the client, 4202 reconnects', async (t) => {
  const { server, client } = await setup(t);
  const disconnects = collect(client, 'disconnected');
  client.connect();
  const first = await server.nextConnection();
  await first.accept();
  await nextOf(client, 'connected');
  first.close(4202, 'disconnected by the server; reconnect; retry=20');
  const second = await server.nextConnection();
  await second.accept();
  await nextOf(client, 'connected');
  assert.equal(disconnects[0]?.class, 'reconnect');
  second.close(4006, 'disconnected by the server');
  await waitFor('closed', () => client.state === 'closed');
  assert.equal(disconnects[1]?.class, 'terminal');
});
