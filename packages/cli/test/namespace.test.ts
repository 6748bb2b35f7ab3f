/**
 * `--backbone-namespace`: two fleets on the same backbone servers stay apart. Each fleet gets its
 * own Redis keys and channels, its own NATS subjects and JetStream stream, its own Kafka topic. The
 * evidence: after both publish on the same channel name, each fleet's history of it holds only
 * its own publications (a shared keyspace or stream would hold all three in both).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { SERVICES, serviceSkipReason } from '@gatehouse/testkit';
import { createBackbone } from '@gatehouse/backbones';
import { startChild, stopChild } from './helpers.js';
import { deleteStreamsContaining } from './jetstream.js';

const KEY = 'namespace-test-key';

async function publish(port: number, channel: string, data: unknown): Promise<{ status: number; offset: number }> {
  const res = await fetch(`http://127.0.0.1:${port}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `apikey ${KEY}` },
    body: JSON.stringify({ channel, data }),
  });
  const body = (await res.json()) as { offset: number };
  return { status: res.status, offset: body.offset };
}

const BACKBONES = [
  { name: 'redis', url: `redis://${SERVICES.redis.host}:${SERVICES.redis.port}`, service: 'redis' as const },
  { name: 'jetstream', url: `jetstream://${SERVICES.nats.host}:${SERVICES.nats.port}`, service: 'nats' as const },
];

for (const b of BACKBONES) {
  const skip = await serviceSkipReason(b.service, `cli backbone-namespace on ${b.name}`);
  describe(`two fleets on one ${b.name} server`, { skip: skip ?? false }, () => {
    test("keep their channels apart: each fleet's history of a channel holds only its own publications", async () => {
      const run = randomBytes(3).toString('hex');
      const [nsA, nsB] = [`t${run}-a`, `t${run}-b`];
      const args = (ns: string) => ['--backbone', b.url, '--backbone-namespace', ns, '--api-key', KEY];
      const a = await startChild(args(nsA));
      const bb = await startChild(args(nsB)).catch(async (err: unknown) => {
        await stopChild(a.child);
        throw err;
      });
      try {
        const channel = `public:ns-${run}`;
        for (const [port, data] of [
          [a.port, 'a1'],
          [bb.port, 'b1'],
          [a.port, 'a2'],
        ] as const) {
          assert.equal((await publish(port, channel, data)).status, 200);
        }
        assert.deepEqual(await historyOf(b.url, nsA, channel), ['"a1"', '"a2"'], 'fleet a holds only its own');
        assert.deepEqual(await historyOf(b.url, nsB, channel), ['"b1"'], 'fleet b holds only its own');
      } finally {
        await Promise.all([stopChild(a.child), stopChild(bb.child)]);
        if (b.name === 'jetstream') await deleteStreamsContaining(`t${run}-`);
      }
    });
  });
}

/** Every publication the fleet `ns` keeps on `channel`, read through the adapter as a gateway does. */
async function historyOf(url: string, ns: string, channel: string): Promise<string[]> {
  const backbone = await createBackbone([url], { namespace: ns });
  await backbone.start({ onPublication: () => {}, onStateChange: () => {}, onControl: () => {} });
  try {
    const at = await backbone.history(channel, undefined, 0);
    const h = await backbone.history(channel, { epoch: at.epoch, offset: 0 }, 100);
    assert.equal(h.complete, true, `the whole history of ${channel} in ${ns}`);
    return h.publications.map((p) => p.data);
  } finally {
    await backbone.close();
  }
}
