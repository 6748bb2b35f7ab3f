/**
 * Real nginx and real HAProxy, each from a copy of the shipped config (deploy/nginx,
 * deploy/haproxy) with only ports, addresses, timeouts and the check interval substituted, in front
 * of three real `gatehouse start` processes. The proxy idle timeout is 3 s and the gateways beat
 * every second, so "outlives the idle timeout" is measured in seconds.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { parseRetryHint } from '@gatehouse/protocol';
import { DEFAULTS } from '@gatehouse/server';
import { SERVICES, serviceSkipReason, waitFor, withDeadline } from '@gatehouse/testkit';
import { connectionsOn, publish, readyz, startGateway, stopAll } from './support/gateways.js';
import type { GatewayProcess } from './support/gateways.js';
import { findBinary } from './support/processes.js';
import { ProtoClient, UpgradeRefused, silentPeer } from './support/proto-client.js';
import type { Frame } from './support/proto-client.js';
import { SHIPPED, startProxy } from './support/proxies.js';
import type { Proxy, ProxyKind } from './support/proxies.js';

/** The proxy's idle (tunnel) timeout in these tests, seconds; the shipped value is 75. */
const IDLE_TIMEOUT_S = 3;
/** The drain window of the gateway drained in the memory-backbone case, seconds. */
const DRAIN_WINDOW_S = 3;

function countBy<T>(items: T[], key: (t: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const item of items) m.set(key(item), (m.get(key(item)) ?? 0) + 1);
  return m;
}

async function connectMany(url: string, n: number): Promise<ProtoClient[]> {
  const clients: ProtoClient[] = [];
  // One at a time, each fully connected, so least-connections sees the previous ones.
  for (let i = 0; i < n; i++) clients.push(await ProtoClient.connectRetrying(url));
  return clients;
}

/** The retry hint of a drain close, or a failed assertion naming the close. */
function drainRetry(close: { code: number; reason: string }): number {
  assert.equal(close.code, 4200, `expected the drain close code 4200, got ${close.code} "${close.reason}"`);
  const retry = parseRetryHint(close.reason);
  assert.ok(retry !== undefined && retry >= 0 && retry <= 60_000, `drain close carries a retry hint: "${close.reason}"`);
  return retry;
}

test('the shipped idle timeouts are at least three default heartbeats, and the proxies retry a refused upgrade', () => {
  const min = (3 * DEFAULTS.heartbeatMs) / 1000;
  const nginx = readFileSync(SHIPPED.nginxSite, 'utf8');
  const ws = nginx.slice(nginx.indexOf('location = /ws'), nginx.indexOf('location ~ ^/api/'));
  for (const directive of ['proxy_read_timeout', 'proxy_send_timeout', 'send_timeout']) {
    const m = new RegExp(`\\s${directive} (\\d+)s;`).exec(ws);
    assert.ok(m && Number(m[1]) >= min, `nginx ${directive} in location /ws is at least ${min} s`);
  }
  assert.match(ws, /proxy_next_upstream [^;]*http_503/);
  const haproxy = readFileSync(SHIPPED.haproxy, 'utf8').replace(/#.*$/gm, '');
  const tunnel = /^\s*timeout tunnel (\d+)s$/m.exec(haproxy);
  assert.ok(tunnel && Number(tunnel[1]) >= min, `HAProxy timeout tunnel is at least ${min} s`);
  assert.match(haproxy, /^\s*retry-on [^\n]*\b503\b/m);
  assert.match(haproxy, /^\s*http-check send meth GET uri \/readyz\b/m);
  assert.doesNotMatch(haproxy, /on-marked-down\s+shutdown-sessions/, 'a draining gateway keeps its clients until it closes them');
});

for (const kind of ['nginx', 'haproxy'] as ProxyKind[]) {
  const skip = await serviceSkipReason(kind, `ingress through ${kind}`, async () => findBinary(kind) !== undefined);

  describe(`${kind} in front of three gateways (shipped config)`, { skip }, () => {
    let fleet: GatewayProcess[] = [];
    let proxy: Proxy | undefined;
    const clients: ProtoClient[] = [];
    let wsUrl = '';

    before(async () => {
      fleet = await Promise.all(
        ['a', 'b', 'c'].map((x) => startGateway({ nodeId: `${kind}-gw-${x}`, drainWindowSeconds: DRAIN_WINDOW_S })),
      );
      proxy = await startProxy(kind, { backends: fleet.map((g) => g.port), idleTimeoutSeconds: IDLE_TIMEOUT_S, checkIntervalMs: 250 });
      wsUrl = `ws://127.0.0.1:${proxy.port}/ws`;
    });

    after(async () => {
      for (const c of clients) c.terminate();
      await proxy?.stop();
      await stopAll(fleet);
    });

    test('upgrades pass, spread by least connections; subscribe, publish through the proxy API, receive', async () => {
      const six = await connectMany(wsUrl, 6);
      clients.push(...six);
      const perNode = countBy(six, (c) => c.node ?? '?');
      assert.deepEqual([...perNode.keys()].sort(), fleet.map((g) => g.nodeId).sort(), 'every gateway took connections');
      assert.deepEqual([...perNode.values()], [2, 2, 2], `spread evenly: ${JSON.stringify([...perNode])}`);
      // Least connections, not rotation: empty one gateway, and the next two go there.
      const emptied = fleet[2] as GatewayProcess;
      for (const c of six.filter((x) => x.node === emptied.nodeId)) c.terminate();
      await waitFor(`${emptied.nodeId} to see its clients gone`, async () => (await connectionsOn(emptied.port)) === 0);
      const refill = await connectMany(wsUrl, 2);
      six.splice(0, six.length, ...six.filter((c) => c.node !== emptied.nodeId), ...refill);
      assert.deepEqual(
        refill.map((c) => c.node),
        [emptied.nodeId, emptied.nodeId],
        'new connections went to the least loaded gateway',
      );

      const channel = `public:ingress-${kind}-${Date.now()}`;
      await Promise.all(six.map((c) => c.subscribe(channel)));
      // The memory backbone does not cross processes: a publication reaches the subscribers on
      // the gateway that accepted it, which through the proxy is any of the three.
      for (let n = 1; n <= 6; n++) {
        const res = await publish(proxy!.port, channel, { n });
        assert.equal(res.status, 200, `publish through ${kind}: ${JSON.stringify(res.body)}`);
        const receivers = await waitFor(`publication ${n} delivered through ${kind}`, () => {
          const got = six.filter((c) => c.pubs(channel).some((p) => (p['data'] as { n: number }).n === n));
          return got.length === 2 ? got : undefined;
        });
        assert.equal(receivers[0]?.node, receivers[1]?.node, 'both subscribers of the accepting gateway got it');
        for (const c of receivers) {
          const pub = c.pubs(channel).find((p) => (p['data'] as { n: number }).n === n) as Frame;
          assert.equal(pub['offset'], res.body['offset']);
          assert.equal(pub['epoch'], res.body['epoch']);
        }
      }
      const total = six.reduce((sum, c) => sum + c.pubs(channel).length, 0);
      assert.equal(total, 12, 'each publication reached exactly the two subscribers of one gateway');

      // Metrics and health stay private.
      for (const path of ['/metrics', '/readyz', '/healthz', '/admin/nodes']) {
        const res = await fetch(`http://127.0.0.1:${proxy!.port}${path}`);
        await res.arrayBuffer();
        assert.equal(res.status, 404, `${path} must not be exposed through ${kind}`);
      }
    });

    test(`an idle connection answering heartbeats outlives twice the ${IDLE_TIMEOUT_S} s proxy idle timeout`, async () => {
      const c = await ProtoClient.connectRetrying(wsUrl);
      clients.push(c);
      const channel = `public:idle-${kind}-${Date.now()}`;
      await c.subscribe(channel);
      const outlive = 2 * IDLE_TIMEOUT_S * 1000 + 1000;
      // The test waits for a close that must not come; the deadline is the point.
      const closed = await c.waitClose(outlive).then(
        (x) => x,
        () => undefined,
      );
      assert.equal(closed, undefined, `closed after ${closed ? closed.at - c.openedAt : 0} ms: ${JSON.stringify(closed)}`);
      assert.ok(c.pings >= IDLE_TIMEOUT_S, `heartbeats crossed the proxy (${c.pings} application pings)`);
      const reply = await c.request({ op: 'subscribe', channel: `${channel}-2` });
      assert.equal(reply.op, 'subscribed', 'the path still carries requests both ways');
    });

    test('a draining gateway (SIGTERM) gets no new connections; its clients get 4200 with a retry hint and reconnect to the others', async () => {
      const nine = await connectMany(wsUrl, 9);
      clients.push(...nine);
      const victim = fleet[0] as GatewayProcess;
      const leaving = nine.filter((c) => c.node === victim.nodeId);
      const staying = nine.filter((c) => c.node !== victim.nodeId);
      // Connections from the earlier tests count too, so the split need not be 3/3/3.
      assert.ok(leaving.length >= 2, `clients on ${victim.nodeId}: ${JSON.stringify([...countBy(nine, (c) => c.node ?? '?')])}`);
      const channel = `public:drain-${kind}-${Date.now()}`;
      await Promise.all(nine.map((c) => c.subscribe(channel)));

      // Keeps the victim draining for its close timeout (5 s), so the connections below are
      // made while it drains, not after it has gone.
      const silent = await silentPeer(victim.port);
      victim.service.signal('SIGTERM');
      await waitFor(`${victim.nodeId} to turn unready`, async () => (await readyz(victim.port)) === 503, 5000);
      // The victim now holds fewer connections than the others, so least-connections picks it
      // first: the proxy must skip it (nginx: proxy_next_upstream http_503 and max_fails; HAProxy:
      // retry-on 503 until the /readyz check marks it down). None of these may be refused.
      await waitFor('the first drain close', () => leaving.some((c) => c.closed), 5000);
      const during = await connectMany(wsUrl, 6);
      clients.push(...during);
      assert.equal(await readyz(victim.port), 503, `${victim.nodeId} was still draining while they connected`);
      for (const c of during) assert.notEqual(c.node, victim.nodeId, 'a new connection landed on the draining gateway');

      const moved = await Promise.all(
        leaving.map(async (c) => {
          const retry = drainRetry(await c.waitClose(DRAIN_WINDOW_S * 1000 + 10_000));
          // What the SDK does: wait the hinted delay, reconnect through the same proxy, resubscribe
          // from the last position seen.
          await sleep(retry);
          const again = await ProtoClient.connectRetrying(wsUrl, { reconnect: true });
          clients.push(again);
          await again.subscribe(channel, c.positions.get(channel));
          return again;
        }),
      );
      for (const again of moved) {
        assert.notEqual(again.node, victim.nodeId, 'the reconnect did not land on the draining gateway');
        assert.ok(
          fleet.some((g) => g.nodeId === again.node),
          `reconnected to a fleet gateway (${again.node})`,
        );
      }
      silent.destroy();
      const exit = await withDeadline(`${victim.nodeId} to exit after its drain`, victim.service.exited, 20_000);
      assert.equal(exit.code, 0, `a drained gateway exits 0\n${victim.service.describe()}`);
      for (const c of staying) assert.equal(c.closed, undefined, `a client of ${c.node} was not disturbed`);
    });
  });

  describe(`${kind}: control cases (shipped config, one gateway)`, { skip }, () => {
    let gateway: GatewayProcess | undefined;
    let proxy: Proxy | undefined;

    before(async () => {
      // A heartbeat far longer than the proxy's idle timeout, and at most two upgrades in a burst
      // per client address (as the gateway sees it), for the X-Forwarded-For case.
      gateway = await startGateway({ nodeId: `${kind}-ctl`, heartbeatSeconds: 60, flags: ['--connect-rate-per-address', '1'] });
      proxy = await startProxy(kind, { backends: [gateway.port], idleTimeoutSeconds: IDLE_TIMEOUT_S, checkIntervalMs: 250 });
    });

    after(async () => {
      await proxy?.stop();
      await stopAll([gateway]);
    });

    test(`without heartbeats the proxy cuts an idle WebSocket after its ${IDLE_TIMEOUT_S} s timeout`, async () => {
      const c = await ProtoClient.connectRetrying(`ws://127.0.0.1:${proxy!.port}/ws`);
      await c.subscribe(`public:control-${kind}`);
      // With a 60 s heartbeat at most one beat falls in this test (where depends on the
      // heartbeat slot the connection got), so measure the silence before the cut, not the age.
      const close = await c.waitClose(IDLE_TIMEOUT_S * 1000 + 10_000);
      const silence = close.at - c.lastServerTrafficAt;
      assert.equal(close.code, 1006, `the proxy dropped the tunnel without a close frame: ${JSON.stringify(close)}`);
      assert.ok(silence >= IDLE_TIMEOUT_S * 1000 - 500, `cut after ${silence} ms of silence: by the idle timeout, not earlier`);
      assert.ok(c.pings <= 1);
    });

    test('X-Forwarded-For is overwritten: a client cannot choose the address the gateway limits', async () => {
      const spoofed = (i: number) => ({ 'x-forwarded-for': `198.51.100.${i}` });
      // Direct to the gateway (which trusts the header) each spoofed address has its own bucket...
      const direct = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => ProtoClient.open(`ws://127.0.0.1:${gateway!.port}/ws`, spoofed(i))));
      for (const c of direct) c.terminate();
      // ...through the proxy every attempt is 127.0.0.1, whose burst of two is soon spent.
      const outcomes: (number | 'open')[] = [];
      for (const i of [11, 12, 13, 14, 15, 16]) {
        try {
          (await ProtoClient.open(`ws://127.0.0.1:${proxy!.port}/ws`, spoofed(i))).terminate();
          outcomes.push('open');
        } catch (err) {
          if (!(err instanceof UpgradeRefused)) throw err;
          outcomes.push(err.status);
        }
      }
      assert.equal(outcomes[0], 'open', JSON.stringify(outcomes));
      assert.ok(outcomes.includes(429), `the gateway limited the proxied attempts as one address: ${JSON.stringify(outcomes)}`);
    });
  });

  describe(`${kind}: drain on a shared backbone (Redis) loses nothing`, { skip }, () => {
    test('clients of a draining gateway resume on the others from their last offsets, every publication exactly once', async (t) => {
      const redisSkip = await serviceSkipReason('redis', `drain through ${kind} on redis`);
      if (redisSkip) return t.skip(redisSkip);
      await drainWithoutLoss(kind, `redis://${SERVICES.redis.host}:${SERVICES.redis.port}`);
    });
  });
}

/** The full drain case: three gateways on one shared backbone, one drained under publishing. */
async function drainWithoutLoss(kind: ProxyKind, backbone: string): Promise<void> {
  const fleet: GatewayProcess[] = [];
  let proxy: Proxy | undefined;
  const open: ProtoClient[] = [];
  try {
    fleet.push(
      ...(await Promise.all(
        ['a', 'b', 'c'].map((x) =>
          startGateway({
            nodeId: `${kind}-rgw-${x}`,
            backbone,
            // Rebalancing would move clients of the surviving gateways too; this case is about the drain.
            flags: ['--rebalance-per-round', '0'],
          }),
        ),
      )),
    );
    proxy = await startProxy(kind, { backends: fleet.map((g) => g.port), idleTimeoutSeconds: IDLE_TIMEOUT_S, checkIntervalMs: 250 });
    const url = `ws://127.0.0.1:${proxy.port}/ws`;
    const channel = `public:lossless-${kind}-${Date.now()}`;
    const first = await connectMany(url, 9);
    open.push(...first);
    await Promise.all(first.map((c) => c.subscribe(channel)));
    const victim = fleet[0] as GatewayProcess;
    const survivor = fleet[1] as GatewayProcess;
    assert.ok(first.some((c) => c.node === victim.nodeId));

    // Each logical client: the connections it used, in order.
    const lives = first.map((c) => [c]);
    const total = 150;
    let published = 0;
    const publisher = (async () => {
      for (let n = 1; n <= total; n++) {
        const res = await publish(survivor.port, channel, { n });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        published = n;
        await sleep(10);
      }
    })();
    // Awaited below; until then a failure must not surface as an unhandled rejection.
    publisher.catch(() => undefined);
    await waitFor('a third of the publications out', () => published >= total / 3);
    victim.service.signal('SIGTERM');
    await Promise.all(
      lives.map(async (life) => {
        const c = life[0] as ProtoClient;
        if (c.node !== victim.nodeId) return;
        const retry = drainRetry(await c.waitClose(15_000));
        await sleep(retry);
        const again = await ProtoClient.connectRetrying(url, { reconnect: true });
        open.push(again);
        life.push(again);
        assert.notEqual(again.node, victim.nodeId);
        const since = c.positions.get(channel);
        const reply = await again.subscribe(channel, since);
        assert.equal(reply['recovered'], true, `recovered from ${JSON.stringify(since)}: ${JSON.stringify(reply)}`);
      }),
    );
    await publisher;
    for (const life of lives) {
      await waitFor(
        `all ${total} publications at a client that lived ${life.length} connection(s)`,
        () => {
          // What the SDK delivers: publications in order, anything at or below the last offset dropped.
          const seen: number[] = [];
          let last = -1;
          for (const c of life) {
            for (const p of c.pubs(channel)) {
              if ((p['offset'] as number) <= last) continue;
              last = p['offset'] as number;
              seen.push((p['data'] as { n: number }).n);
            }
          }
          return seen.length >= total ? seen : undefined;
        },
        20_000,
      ).then((seen) =>
        assert.deepEqual(
          seen,
          Array.from({ length: total }, (_, i) => i + 1),
        ),
      );
    }
  } finally {
    for (const c of open) c.terminate();
    await proxy?.stop();
    await stopAll(fleet);
  }
}
