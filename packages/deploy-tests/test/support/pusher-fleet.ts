/**
 * Three `gatehouse start` processes on Redis with a Pusher app, behind HAProxy started from the
 * shipped config: the fleet the Pusher acceptance tests run against. A killed node can be
 * restarted on its port, so the proxy's backend list stays valid.
 */
import { randomBytes } from 'node:crypto';
import { GatewayNode } from '@gatehouse/fleet';
import type { NodeSpec } from '@gatehouse/fleet';
import { serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { connectionsOn } from './gateways.js';
import { findBinary } from './processes.js';
import { startProxy } from './proxies.js';
import type { Proxy, ProxyKind } from './proxies.js';
import { APP_SPEC } from './pusher.js';

const API_KEY = 'pusher-fleet-api-key-01';

/** Why a Pusher fleet suite skips (Redis or the proxy missing), or undefined. */
export async function pusherFleetSkip(suite: string, proxyKind: ProxyKind = 'haproxy'): Promise<string | undefined> {
  return (
    (await serviceSkipReason('redis', suite)) ??
    (await serviceSkipReason(proxyKind, suite, async () => findBinary(proxyKind) !== undefined))
  );
}

/** The running fleet. */
export class PusherFleet {
  private constructor(
    readonly nodes: GatewayNode[],
    readonly proxy: Proxy,
  ) {}

  static async start(extraArgs: string[] = [], proxyKind: ProxyKind = 'haproxy'): Promise<PusherFleet> {
    const namespace = `pusher-${randomBytes(4).toString('hex')}`;
    const spec = (i: number): NodeSpec => ({
      nodeId: `pusher-gw${i}`,
      backbone: ['redis://127.0.0.1:6379'],
      apiKey: API_KEY,
      heartbeatS: 1,
      drainWindowS: 1,
      extraArgs: ['--pusher-app', APP_SPEC, '--backbone-namespace', namespace, '--trust-proxy', '--announce-interval', '0.5', ...extraArgs],
    });
    const nodes = await Promise.all([1, 2, 3].map((i) => GatewayNode.start(spec(i))));
    const proxy = await startProxy(proxyKind, { backends: nodes.map((n) => n.port), idleTimeoutSeconds: 30, checkIntervalMs: 500 });
    const fleet = new PusherFleet(nodes, proxy);
    await fleet.ready();
    return fleet;
  }

  /**
   * Resolves once every running node answers /readyz with 200 and its fleet view holds every
   * running node: fleet-wide answers (channel info, the node holding a socket) come from that view.
   */
  async ready(): Promise<void> {
    const running = this.nodes.filter((n) => n.running);
    await waitFor('every node ready', async () => (await Promise.all(running.map((n) => n.readyStatus()))).every((s) => s === 200), 20_000);
    const seesAll = async (n: GatewayNode) => {
      const res = await fetch(`${n.base}/admin/nodes`, { headers: { authorization: `apikey ${API_KEY}` } });
      const view = ((await res.json()) as { nodes: { ready: boolean }[] }).nodes;
      return view.length === running.length && view.every((v) => v.ready);
    };
    await waitFor('every node sees the whole fleet', async () => (await Promise.all(running.map(seesAll))).every(Boolean), 20_000);
  }

  /** Connections on each node, in order (0 for a dead one). */
  async connections(): Promise<number[]> {
    return Promise.all(this.nodes.map((n) => (n.running ? connectionsOn(n.port) : 0)));
  }

  /** The node holding the connection with `socketId` (asked through the server API's fleet info). */
  async nodeOfSocket(socketId: string): Promise<GatewayNode> {
    const via = this.nodes.find((n) => n.running) as GatewayNode;
    const res = await fetch(`${via.base}/api/info`, {
      method: 'POST',
      headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ slowest: 100 }),
    });
    const info = (await res.json()) as { nodes: { node: string; slowest?: { client: string }[] }[] };
    const id = info.nodes.find((n) => n.slowest?.some((c) => c.client === socketId))?.node;
    const node = this.nodes.find((n) => n.nodeId === id);
    if (!node) throw new Error(`no node holds socket ${socketId}: ${JSON.stringify(info)}`);
    return node;
  }

  /** kill -9 of `node`, then the same node started again on its port. */
  async killAndRestart(node: GatewayNode, whileDown: () => Promise<void>): Promise<void> {
    await node.kill();
    await whileDown();
    const i = this.nodes.indexOf(node);
    this.nodes[i] = await GatewayNode.start({ ...node.spec, port: node.port });
    await this.ready();
  }

  async stop(): Promise<void> {
    await this.proxy.stop();
    await Promise.all(this.nodes.map((n) => n.kill()));
  }
}
