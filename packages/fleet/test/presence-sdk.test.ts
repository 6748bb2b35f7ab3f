/**
 * The SDK's presence surface against a real in-process gateway: `subscription.presence()`,
 * `presenceStats()`, and `join`/`leave` events on the subscription and the client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { waitFor } from '@gatehouse/testkit';
import { GatehouseClient, type PresenceEvent } from '@gatehouse/client';
import { Gateway, NAMESPACE_DEFAULTS } from '@gatehouse/server';

const SECRET = 'sdk-presence-secret-0123';

function tokenFor(user: string): Promise<string> {
  return new SignJWT({ channels: ['room:*'], info: { name: user.toUpperCase() } })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(user)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
}

test('presence(), presenceStats() and join/leave events through the SDK', async () => {
  const gw = new Gateway(
    {
      port: 0,
      host: '127.0.0.1',
      tokenSecret: SECRET,
      announceIntervalMs: 200,
      namespaces: { room: { ...NAMESPACE_DEFAULTS, presence: true, joinLeave: true } },
    },
    { logger: pino({ level: 'silent' }) },
  );
  await gw.start();
  const url = `ws://127.0.0.1:${gw.port}/ws`;
  const ann = new GatehouseClient(url, { token: await tokenFor('ann') });
  const ben = new GatehouseClient(url, { token: await tokenFor('ben') });
  try {
    const sub = ann.subscribe('room:sdk');
    const joins: PresenceEvent[] = [];
    const leaves: PresenceEvent[] = [];
    sub.on('join', (e) => joins.push(e));
    sub.on('leave', (e) => leaves.push(e));
    ann.connect();
    await waitFor('ann subscribed', () => (sub.state === 'subscribed' ? true : undefined));
    const benSub = ben.subscribe('room:sdk');
    ben.connect();
    await waitFor('ann sees ben join', () => joins.find((e) => e.info.user === 'ben'));
    assert.deepEqual(joins.find((e) => e.info.user === 'ben')?.info.info, { name: 'BEN' });
    const members = await sub.presence();
    assert.deepEqual(members.map((m) => m.user).sort(), ['ann', 'ben']);
    assert.deepEqual(await sub.presenceStats(), { clients: 2, users: 2 });
    await benSub.unsubscribe();
    await waitFor('ann sees ben leave', () => leaves.find((e) => e.info.user === 'ben'));
    assert.deepEqual(await sub.presenceStats(), { clients: 1, users: 1 });
  } finally {
    ann.close();
    ben.close();
    await gw.close();
  }
});
