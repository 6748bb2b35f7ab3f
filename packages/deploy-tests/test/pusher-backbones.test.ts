/**
 * Pusher fan-out across nodes on every backbone besides Redis (pusher-fleet.test.ts): two
 * `gatehouse start` processes on NATS core, JetStream and Kafka; the official `pusher` server
 * library triggers on node A, unmodified pusher-js clients on node B receive (a client event from
 * B reaches A too, and socket_id exclusion holds across nodes). Each backbone uses a fixed
 * namespace (`pusher-xnode`), so reruns reuse one stream/topic; channels are unique per run.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { GatewayNode } from '@gatehouse/fleet';
import { SERVICES, serviceSkipReason } from '@gatehouse/testkit';
import { APP_SPEC, PusherClients, connected, nextPusherEvent, pusherServer, subscribed } from './support/pusher.js';

const HOST = '127.0.0.1';
const NATS = `${SERVICES.nats.host}:${SERVICES.nats.port}`;
const CASES = [
  { name: 'NATS core', url: `nats://${NATS}`, service: 'nats' as const },
  { name: 'JetStream', url: `jetstream://${NATS}`, service: 'nats' as const },
  { name: 'Kafka', url: `kafka://${SERVICES.kafka.host}:${SERVICES.kafka.port}`, service: 'kafka' as const },
];

for (const c of CASES) {
  const skip = await serviceSkipReason(c.service, `Pusher across nodes on ${c.name}`);
  describe(`Pusher clients across two gateways on ${c.name}`, { skip: skip ?? false }, () => {
    const nodes: GatewayNode[] = [];
    const clients: PusherClients[] = [];
    after(async () => {
      for (const cs of clients) cs.disconnectAll();
      await Promise.all(nodes.map((n) => n.kill()));
    });

    test(
      'a trigger on node A reaches pusher-js on node B; client events and socket_id exclusion cross nodes',
      { timeout: 120_000 },
      async () => {
        const started = await Promise.all(
          ['a', 'b'].map((x) =>
            GatewayNode.start({
              nodeId: `pusher-xnode-${x}-${randomBytes(3).toString('hex')}`,
              backbone: [c.url],
              apiKey: 'pusher-xnode-api-key-01',
              heartbeatS: 5,
              drainWindowS: 1,
              extraArgs: ['--pusher-app', APP_SPEC, '--backbone-namespace', 'pusher-xnode'],
            }),
          ),
        );
        nodes.push(...started);
        const [a, b] = started as [GatewayNode, GatewayNode];
        const serverA = pusherServer(HOST, a.port);
        const onA = new PusherClients(() => ({ host: HOST, port: a.port, server: serverA }));
        const onB = new PusherClients(() => ({ host: HOST, port: b.port, server: pusherServer(HOST, b.port) }));
        clients.push(onA, onB);
        const name = `private-xnode-${randomBytes(4).toString('hex')}`;
        const [clientA, clientB1, clientB2] = [onA.open(), onB.open(), onB.open()];
        const idB2 = (await Promise.all([connected(clientA), connected(clientB1), connected(clientB2)]))[2];
        const [chA, chB1, chB2] = await Promise.all([subscribed(clientA, name), subscribed(clientB1, name), subscribed(clientB2, name)]);
        let excludedGot = 0;
        chB2.bind('news', () => excludedGot++);
        // The subscription of node B reaches the backbone asynchronously (Kafka assigns, JetStream
        // creates a consumer): trigger until the first event arrives, then count exactly.
        const first = nextPusherEvent<{ n: number }>(chB1, 'warm-up', 30_000);
        const warm = setInterval(() => void serverA.trigger(name, 'warm-up', { n: 0 }).catch(() => undefined), 500);
        try {
          assert.deepEqual(await first, { n: 0 });
        } finally {
          clearInterval(warm);
        }
        const news = nextPusherEvent<{ n: number }>(chB1, 'news');
        await serverA.trigger(name, 'news', { n: 1 }, { socket_id: idB2 });
        assert.deepEqual(await news, { n: 1 }, 'node A trigger reached pusher-js on node B');
        const moved = nextPusherEvent<{ x: number }>(chA, 'client-move');
        chB1.trigger('client-move', { x: 7 });
        assert.deepEqual(await moved, { x: 7 }, 'a client event on node B reached node A');
        // A last event to every subscriber: once B2 has it, the excluded one would have arrived before.
        const last = nextPusherEvent(chB2, 'last');
        await serverA.trigger(name, 'last', {});
        await last;
        assert.equal(excludedGot, 0, 'the excluded socket on node B got nothing');
      },
    );
  });
}
