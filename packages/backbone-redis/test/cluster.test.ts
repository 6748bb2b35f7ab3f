/**
 * Cluster mode against a private Redis Cluster (three masters, no replicas, on loopback): the
 * shared conformance suites (data and control plane), channels whose slots live on different masters, and one master
 * killed and restarted under running backbones.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertDownThenUp, RecordingHandler, runBackboneConformance, runControlConformance } from '@gatehouse/conformance';
import { BackboneUnavailableError } from '@gatehouse/backbone-kit';
import { serviceSkipReason, waitFor, withDeadline } from '@gatehouse/testkit';
import { channelKeys, RedisBackbone } from '../src/index.js';
import { masterPortOf, redisClusterInstalled, startPrivateCluster, type PrivateCluster } from './support.js';

const skip = await serviceSkipReason('redis', 'redis cluster (private redis-server cluster)', redisClusterInstalled);
const KEEP = { historySize: 10, historyTtlSeconds: 60 };
const FAST = { reconnectMinDelayMs: 20, reconnectMaxDelayMs: 200 };

let cluster: PrivateCluster | undefined;
if (!skip) cluster = await startPrivateCluster();
after(async () => {
  await cluster?.stop();
});
const urls = (): string[] => (cluster as PrivateCluster).urls;

let run = 0;
runBackboneConformance(
  'redis cluster',
  async () => {
    const keyPrefix = `ghc${run++}`;
    return {
      // One node is given every seed, the other only one: discovery does the rest.
      a: new RedisBackbone({ urls: urls(), keyPrefix }),
      b: new RedisBackbone({ urls: urls().slice(1, 2), keyPrefix }),
      cleanup: async () => {},
    };
  },
  { skip },
);

runControlConformance(
  'redis cluster',
  async () => {
    const keyPrefix = `ghc${run++}`;
    let n = 0;
    // Nodes alternate between every seed and a single one.
    return { node: () => new RedisBackbone({ urls: n++ % 2 ? urls().slice(1, 2) : urls(), keyPrefix }), cleanup: async () => {} };
  },
  { skip },
);

/** One channel per master, found by asking the cluster which master serves each key. */
async function channelPerMaster(c: PrivateCluster, label: string): Promise<Map<number, string>> {
  const found = new Map<number, string>();
  for (let i = 0; found.size < c.nodes.length && i < 200; i++) {
    const ch = `${label}:ch-${i}`;
    const port = await masterPortOf(c, channelKeys('gh', ch).pos);
    if (!found.has(port)) found.set(port, ch);
  }
  assert.equal(found.size, c.nodes.length, 'a channel on every master');
  return found;
}

describe('redis cluster mode', { skip: skip ?? false }, () => {
  let a: RedisBackbone;
  let b: RedisBackbone;
  const ra = new RecordingHandler();
  const rb = new RecordingHandler();
  before(async () => {
    a = new RedisBackbone({ urls: urls(), ...FAST });
    b = new RedisBackbone({ urls: urls().slice(2), ...FAST });
    await Promise.all([a.start(ra), b.start(rb)]);
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
  });

  test('channels on every master: offsets 1, 2, 3 per channel, delivery across nodes, history after an offset', async () => {
    const c = cluster as PrivateCluster;
    const channels = [...(await channelPerMaster(c, 'spread')).values()];
    await Promise.all(channels.map((ch) => b.subscribe(ch)));
    for (const ch of channels) {
      const sent = [];
      for (let n = 1; n <= 3; n++) sent.push(await a.publish(ch, JSON.stringify({ ch, n }), KEEP));
      assert.deepEqual(
        sent.map((p) => p.offset),
        [1, 2, 3],
        `${ch}: offsets from the script`,
      );
      const got = await rb.waitCount(ch, 3, `node b on ${ch}`, 10_000);
      assert.deepEqual(
        got.map((p) => [p.epoch, p.offset, JSON.parse(p.data).n]),
        sent.map((p, i) => [p.epoch, p.offset, i + 1]),
      );
      const h = await b.history(ch, { epoch: (sent[0] as { epoch: string }).epoch, offset: 1 }, 10);
      assert.equal(h.complete, true, `${ch}: history after offset 1 is complete`);
      assert.deepEqual(
        h.publications.map((p) => p.offset),
        [2, 3],
      );
    }
    assert.equal(a.stats().publishErrors, 0);
    assert.equal(b.stats().malformed, 0);
  });

  test('a master killed and restarted: down, publish rejects at once, up again, delivery resumes, lost history shows as a new epoch', async () => {
    const c = cluster as PrivateCluster;
    const byPort = await channelPerMaster(c, 'restart');
    const victim = c.nodes[1] as (typeof c.nodes)[number];
    const lost = byPort.get(victim.port) as string;
    const kept = [...byPort.entries()].find(([port]) => port !== victim.port)?.[1] as string;
    await Promise.all([a.subscribe(lost), b.subscribe(lost), b.subscribe(kept)]);
    const before = await a.publish(lost, '{"n":1}', KEEP);
    await a.publish(lost, '{"n":2}', KEEP);
    await rb.waitCount(lost, 2, 'node b before the kill', 10_000);
    const statesBefore = { a: ra.states.length - 1, b: rb.states.length - 1 };

    await victim.kill();
    await waitFor("node a reports 'down'", () => a.state === 'down');
    await waitFor("node b reports 'down'", () => b.state === 'down');
    await withDeadline('publish while down to reject', assert.rejects(a.publish(lost, '{"n":3}', KEEP), BackboneUnavailableError), 1_000);
    await withDeadline(
      'sendControl while down to reject',
      assert.rejects(a.sendControl({ type: 'test.lost', from: 'node-a', data: '1' }), BackboneUnavailableError),
      1_000,
    );

    await victim.restart();
    await waitFor("node a reports 'up' again", () => a.state === 'up' && ra.states.at(-1) === 'up', 30_000);
    await waitFor("node b reports 'up' again", () => b.state === 'up' && rb.states.at(-1) === 'up', 30_000);
    assertDownThenUp(ra.states.slice(statesBefore.a), 'node a');
    assertDownThenUp(rb.states.slice(statesBefore.b), 'node b');

    // The restarted master saved nothing: its channel starts a new epoch, and history after the
    // old position says incomplete (the core tells clients to reload), never a silent loss.
    const h = await b.history(lost, { epoch: before.epoch, offset: 2 }, 10);
    assert.equal(h.complete, false, 'history across the restart is not complete');
    assert.notEqual(h.epoch, before.epoch, 'a new epoch after the data was lost');
    const after = await a.publish(lost, '{"n":4}', KEEP);
    assert.equal(after.epoch, h.epoch);
    assert.equal(after.offset, 1);
    const got = await rb.waitCount(lost, 3, 'node b after the restart', 10_000);
    assert.deepEqual([got[2]?.epoch, got[2]?.offset], [after.epoch, 1], 'delivery resumed without subscribing again');
    await ra.waitCount(lost, 3, 'node a after the restart', 10_000);
    assert.equal(rb.of(lost).filter((p) => p.data.includes('"n":3')).length, 0, 'the rejected publication was never delivered');

    // The other masters kept their data and their subscriptions.
    const k = await a.publish(kept, '{"kept":true}', KEEP);
    assert.equal(k.offset, 1);
    await rb.waitCount(kept, 1, 'node b on a master that stayed up', 10_000);
    assert.ok(a.stats().reconnects >= 1, 'reconnects are counted');
    assert.ok(a.stats().publishErrors >= 1, 'the rejected publish is counted');

    // The control channel is heard again on every node, wherever its slot lives.
    await b.sendControl({ type: 'test.back', from: 'node-b', data: '2' });
    for (const [who, rec] of [
      ['node a', ra],
      ['node b', rb],
    ] as const) {
      await rec.waitControl(`the control message after the restart at ${who}`, (m) => m.type === 'test.back', 10_000);
      assert.equal(
        rec.controls.filter((m) => m.type === 'test.lost').length,
        0,
        `${who}: the rejected control message was never delivered`,
      );
    }
  });
});

test('cluster options: mixing kinds, a database, and sharded:false are refused by name', () => {
  assert.throws(
    () => new RedisBackbone({ urls: ['redis+cluster://a:1', 'redis://b:1'] }),
    /mixes redis\+cluster:\/\/ seed nodes with plain redis:\/\/ servers/,
  );
  assert.throws(() => new RedisBackbone({ urls: ['redis+cluster://a:1/2'] }), /database 0 only/);
  assert.throws(() => new RedisBackbone({ urls: ['redis+cluster://a:1'], sharded: false }), /"sharded" cannot be false/);
  assert.throws(() => new RedisBackbone({ urls: ['redis+cluster://a:1', 'redis+cluster://A:1'] }), /names one server twice/);
  const ok = new RedisBackbone({ urls: ['redis+cluster://a:1', 'redis+cluster://b:2'] });
  assert.equal(ok.options.cluster, true);
  assert.equal(ok.options.sharded, true);
  assert.equal(ok.shardOf('x:y'), 'cluster(a:1,b:2)');
});
