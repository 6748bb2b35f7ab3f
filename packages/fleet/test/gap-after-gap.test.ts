/**
 * What the NATS restart drill runs into, step by step: after the server reported a gap on a NATS
 * core channel (the backbone restarted), the client's next reconnect loses what was published
 * while it was away, and the SDK says nothing.
 *
 * Cause: `Subscription.markGap` sets the position to undefined, and `receive` never sets it again
 * for unsequenced publications, so the next `confirm` after a reconnect sees no previous position
 * and emits no 'history' gap. (On sequenced channels the same reset opens a window until the next
 * publication: a reconnect in it resubscribes without `since` and reports nothing.) The SDK now
 * keeps the position across a server gap; this test holds it to that.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { Fleet, RecordingClient, account, privateServerUnavailable, startPrivateServer, type PrivateServer } from '../src/index.js';

const skip = (await serviceSkipReason('nats', 'fleet gap after gap')) ?? privateServerUnavailable('nats');

test('a reconnect after a server-reported gap on NATS core still reports the publications it lost', { skip: skip ?? false }, async () => {
  let server: PrivateServer | undefined;
  let fleet: Fleet | undefined;
  let client: RecordingClient | undefined;
  try {
    server = await startPrivateServer('nats://');
    fleet = await Fleet.start({ backbone: [server.url], nodes: 2, rebalance: false });
    const f = fleet;
    const ch = f.channel('gap-after-gap');
    const direct = f.routes().find((r) => r.name === 'direct');
    assert.ok(direct);
    const c = new RecordingClient({ id: 'c', url: f.url, channels: [ch] });
    client = c;
    c.connect();
    await waitFor('subscribed', () => c.settled);

    // 1. The backbone restarts: the gateway tells the client about a possible gap.
    await server.kill();
    await f.waitReady(503);
    await server.restart();
    await f.waitReady(200);
    await waitFor('the backbone gap', () => c.events.some((e) => e.type === 'gap'));
    // The direct publisher has its own connection: publish once it is back (a refused attempt sends nothing).
    await waitFor(
      'the direct publisher to be back',
      () =>
        direct.publish(ch, { s: 1, r: 'direct' }).then(
          () => true,
          () => false,
        ),
      30_000,
      100,
    );
    await waitFor('publication 1', () => c.reached(ch, 'direct', 1));

    // 2. The client's node dies; publication 2 goes out while the client is away.
    const node = f.nodes.findIndex((n) => n.nodeId === c.node);
    await f.kill(node);
    await waitFor('the client to notice', () => c.client.state !== 'connected');
    await direct.publish(ch, { s: 2, r: 'direct' });
    assert.equal(c.client.state === 'connected', false, 'precondition: published while the client was away');

    // 3. It is back on the other node; publication 3 arrives.
    await waitFor('back on the other node', () => c.settled, 15_000);
    await direct.publish(ch, { s: 3, r: 'direct' });
    await waitFor('publication 3', () => c.reached(ch, 'direct', 3));

    const sent = [1, 2, 3].map((seq) => ({ channel: ch, seq, route: 'direct', sentAt: 0, outcome: 'accepted' as const }));
    const f2 = account({ sent, clients: [c], sequenced: false });
    assert.equal(f2.lost, 1, 'publication 2 was lost (NATS core keeps no history)');
    assert.equal(f2.lostSilent, 0, `the loss must come with a gap: ${JSON.stringify(c.events.filter((e) => e.type !== 'pub'))}`);
  } finally {
    client?.close();
    await fleet?.close();
    await server?.stop();
  }
});
