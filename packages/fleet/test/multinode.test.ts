/**
 * Three real gateway processes on one backbone, 30 SDK clients spread over them by a TCP
 * balancer, three channels, a publisher at 50/s through every node's publish API and straight into
 * the backbone (issue 3, item 4). For each backbone:
 * - steady: every subscriber gets every publication exactly once, in per-channel order;
 * - kill -9 of one gateway under load: its clients reconnect to the others; on Redis, JetStream
 *   and Kafka nothing is lost or duplicated; on NATS core every loss is reported as a gap;
 * - a restart of the backbone (a private server): the gateways stay up, answer /readyz 503
 *   meanwhile, reconnect and recover.
 * Every scenario prints one JSON line of figures.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SERVICES, serviceSkipReason } from '@gatehouse/testkit';
import {
  Fleet,
  backboneRestart,
  killOne,
  privateServerUnavailable,
  startPrivateServer,
  steady,
  type LoadOptions,
  type PrivateServer,
  type ScenarioReport,
} from '../src/index.js';

// Deadlines are generous: CI machines here are shared with benches and other suites.
const LOAD: LoadOptions = { clients: 30, channels: 3, ratePerSecond: 50, durationMs: 3000, settleTimeoutMs: 45_000 };

interface Case {
  readonly name: 'redis' | 'nats' | 'jetstream' | 'kafka';
  readonly url: string;
  readonly service: 'redis' | 'nats' | 'kafka';
  /** History survives, so nothing may be lost; otherwise every loss must be reported. */
  readonly durable: boolean;
}

const CASES: Case[] = [
  { name: 'redis', url: `redis://${SERVICES.redis.host}:${SERVICES.redis.port}`, service: 'redis', durable: true },
  { name: 'nats', url: `nats://${SERVICES.nats.host}:${SERVICES.nats.port}`, service: 'nats', durable: false },
  { name: 'jetstream', url: `jetstream://${SERVICES.nats.host}:${SERVICES.nats.port}`, service: 'nats', durable: true },
  { name: 'kafka', url: `kafka://${SERVICES.kafka.host}:${SERVICES.kafka.port}`, service: 'kafka', durable: true },
];

/** Losses on a durable backbone, or unreported ones anywhere, with the evidence in the message. */
function assertDelivery(r: ScenarioReport, durable: boolean): void {
  const evidence = JSON.stringify({
    lost: r.lost,
    lostSilent: r.lostSilent,
    losses: r.losses,
    gapReasons: r.gapReasons,
    unsettled: r.unsettledClients,
  });
  if (durable) {
    assert.equal(r.lost, 0, `nothing may be lost on a durable backbone: ${evidence}`);
    assert.equal(r.gaps, 0, `no gap on a durable backbone: ${evidence}`);
  } else {
    assert.equal(r.lostSilent, 0, `every loss must be reported as a gap: ${evidence}`);
  }
  assert.equal(r.settled, true, `every client back with every marker before the deadline: ${evidence}`);
}

const skips = new Map<Case['name'], string | undefined>();
for (const c of CASES) skips.set(c.name, await serviceSkipReason(c.service, `fleet multi-node (${c.name})`));

function assertNoDuplicates(r: ScenarioReport): void {
  assert.equal(r.duplicated, 0, 'no publication delivered twice');
  assert.equal(r.outOfOrder, 0, 'per-channel order (per publisher on NATS core)');
  assert.equal(r.unknown, 0, 'nothing arrives that was never sent');
}

describe('fleet multi-node', { concurrency: 2 }, () => {
  describe('three gateways on the shared servers', () => {
    for (const c of CASES) describeShared(c);
  });
  describe('backbone restarts on private servers', () => {
    for (const c of CASES) describeRestart(c);
  });
});

function describeShared(c: Case): void {
  const skip = skips.get(c.name);
  // One scenario at a time on this fleet: suites inherit the parent's concurrency, and a kill -9
  // running beside the steady scenario would cut the steady scenario's clients.
  describe(`three gateways on ${c.name}`, { skip: skip ?? false, concurrency: 1 }, () => {
    let fleet: Fleet | undefined;
    before(async () => {
      // Other suites' gateways on the shared server would count as part of this fleet.
      fleet = await Fleet.start({ backbone: [c.url], rebalance: false });
    });
    after(async () => {
      await fleet?.close();
    });

    test('publications through any node and straight into the backbone reach every subscriber exactly once, in per-channel order', async () => {
      const { report: r } = await steady(fleet as Fleet, LOAD);
      assert.ok(r.published >= 100, `published ${r.published}`);
      assert.deepEqual(
        Object.keys(r.acceptedByRoute).sort(),
        [...(fleet as Fleet).nodes.map((n) => `http:${n.nodeId}`), 'direct'].sort(),
        "every node's publish API and the direct route carried publications",
      );
      assert.equal(r.expected, r.published * LOAD.clients, 'every client subscribes to every channel');
      assert.equal(r.delivered, r.expected);
      assert.equal(r.lost, 0);
      assert.equal(r.gaps, 0);
      assertNoDuplicates(r);
      assert.equal(r.settled, true);
    });

    test('kill -9 of one gateway under load: its clients reconnect to the others and lose nothing unreported', async () => {
      const f = fleet as Fleet;
      const { report: r, pool } = await killOne(f, LOAD);
      assert.ok((r['clientsOnKilled'] as number) > 0, 'the killed node held clients');
      assert.equal(r.reconnects, r['clientsOnKilled'], 'every client of the killed node lost its connection');
      assert.equal(r.notBack, 0, 'and every one came back');
      for (const client of pool.clients) {
        const last = client.events.filter((e) => e.type === 'connected').at(-1);
        assert.notEqual(last?.type === 'connected' ? last.node : undefined, r['killed'], `${client.id} ended on a live node`);
      }
      assertNoDuplicates(r);
      assertDelivery(r, c.durable);
    });
  });
}

function describeRestart(c: Case): void {
  const skip = skips.get(c.name) ?? privateServerUnavailable(c.name);
  describe(`a ${c.name} restart under three gateways`, { skip: skip ?? false }, () => {
    let server: PrivateServer | undefined;
    let fleet: Fleet | undefined;
    let report: ScenarioReport | undefined;
    before(async () => {
      server = await startPrivateServer(`${c.name}://`);
      fleet = await Fleet.start({ backbone: [server.url] });
      report = (await backboneRestart(fleet, server, LOAD)).report;
    });
    after(async () => {
      await fleet?.close();
      await server?.stop();
    });

    test('the gateways stay up, answer /readyz 503 while it is away, and are ready again after', () => {
      const r = report as ScenarioReport;
      assert.equal(r['nodesRunning'], 3, 'no gateway exited');
      assert.equal(typeof r['notReadyAfterMs'], 'number', 'every node answered 503');
      assert.equal(typeof r['readyAgainAfterMs'], 'number', 'every node answered 200 again');
      assert.ok(r.rejected > 0, 'publications were refused while the backbone was away');
      assert.ok(r.backboneDown >= 3, 'each node logged the outage');
      assertNoDuplicates(r);
    });

    test(c.durable ? 'and recover every publication: nothing lost, no gap' : 'and report every loss to the clients as a gap', () => {
      assertDelivery(report as ScenarioReport, c.durable);
    });
  });
}
