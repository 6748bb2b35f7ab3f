/**
 * A fleet: N real gateway processes on one backbone, a TCP balancer in front of them that follows
 * their readiness, and a direct publisher into the backbone. Nodes can be killed (SIGKILL),
 * drained (SIGTERM) and started again under the same node id.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@gatehouse/testkit';
import type { Incident } from './accountant.js';
import { Balancer, type Upstream } from './balancer.js';
import { connectDirectPublisher, isSequenced, type DirectPublisher, type Retention } from './direct.js';
import { GatewayNode } from './node.js';
import { directRoute, httpRoute, type Route } from './publisher.js';

/** The namespace every fleet channel lives in (configured on every node). */
export const NAMESPACE = 'fleet';

/** Options of a fleet. */
export interface FleetOptions {
  /** `--backbone` URLs (all nodes share them). */
  readonly backbone: readonly string[];
  /** Gateway processes. Default 3. */
  readonly nodes?: number;
  /** Seconds between server heartbeats. Default 10: a loaded CI machine must not miss beats. */
  readonly heartbeatS?: number;
  /** Drain window in seconds. Default 2. */
  readonly drainWindowS?: number;
  /** History per channel, kept for recovery. Default 1000 publications, 600 s. */
  readonly retention?: Retention;
  /** More `gatehouse start` flags for every node. */
  readonly extraArgs?: readonly string[];
  /**
   * Let the nodes rebalance (shed clients to less loaded nodes). Default true. Turn it off on a
   * backbone other gateways share: every gateway on it announces itself on the same channel and
   * counts as part of one fleet, so unrelated idle nodes would make these look overloaded.
   */
  readonly rebalance?: boolean;
  /** Whether to connect a direct publisher into the backbone. Default true. */
  readonly direct?: boolean;
}

interface Slot {
  node: GatewayNode;
  route: Route;
  ready: boolean;
  /** Killed or draining: takes no new connections and no publications. */
  leaving: boolean;
}

/** A running fleet. */
export class Fleet {
  readonly runId = randomBytes(3).toString('hex');
  readonly apiKey = `fleet-${randomBytes(8).toString('hex')}`;
  readonly retention: Retention;
  readonly sequenced: boolean;
  readonly balancer: Balancer;
  direct: DirectPublisher | undefined;
  #slots: Slot[] = [];
  readonly #retired: GatewayNode[] = [];
  #balancerPort = 0;
  #poller: NodeJS.Timeout | undefined;
  #polling = false;
  readonly #dir: string;
  readonly #configFile: string;

  private constructor(readonly options: FleetOptions) {
    this.retention = options.retention ?? { historySize: 1000, historyTtlSeconds: 600 };
    this.sequenced = isSequenced(options.backbone[0] as string);
    this.#dir = mkdtempSync(join(tmpdir(), 'gatehouse-fleet-'));
    this.#configFile = join(this.#dir, 'gatehouse.json');
    writeFileSync(
      this.#configFile,
      JSON.stringify({ namespaces: { [NAMESPACE]: { ...this.retention, anonymous: true, subscribe: 'claims' } } }),
    );
    this.balancer = new Balancer(() => this.eligible());
  }

  /** Starts the nodes, the balancer and the direct publisher; on failure stops what started. */
  static async start(options: FleetOptions): Promise<Fleet> {
    const fleet = new Fleet(options);
    try {
      const n = options.nodes ?? 3;
      const nodes = await Promise.allSettled(Array.from({ length: n }, (_, i) => fleet.#startNode(fleet.nodeId(i))));
      for (const r of nodes) if (r.status === 'fulfilled') fleet.#slots.push(fleet.#slot(r.value));
      const failed = nodes.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      fleet.#balancerPort = await fleet.balancer.listen();
      fleet.#poller = setInterval(() => void fleet.#poll(), 100);
      if (options.direct !== false) fleet.direct = await connectDirectPublisher(options.backbone, fleet.retention);
      await fleet.waitReady();
    } catch (err) {
      await fleet.close();
      throw err;
    }
    return fleet;
  }

  /** The node id of slot `i`. */
  nodeId(i: number): string {
    return `fleet-${this.runId}-${i}`;
  }

  /** The balancer's WebSocket URL: what every client connects to. */
  get url(): string {
    return `ws://127.0.0.1:${this.#balancerPort}/ws`;
  }

  /** The gateway processes, by slot. */
  get nodes(): GatewayNode[] {
    return this.#slots.map((s) => s.node);
  }

  /** Every process this fleet started, the replaced ones included. */
  allNodes(): GatewayNode[] {
    return [...this.#retired, ...this.#slots.map((s) => s.node)];
  }

  /** A channel name in the fleet's namespace, unique to this run. */
  channel(name: string): string {
    return `${NAMESPACE}:${this.runId}-${name}`;
  }

  /** Nodes that take new connections now: running, ready, not leaving. */
  eligible(): Upstream[] {
    return this.#slots
      .filter((s) => s.node.running && s.ready && !s.leaving)
      .map((s) => ({ nodeId: s.node.nodeId, host: '127.0.0.1', port: s.node.port }));
  }

  /** Routes the publisher may use now: the publish API of every node not leaving, and the backbone. */
  routes(): Route[] {
    const out = this.#slots.filter((s) => s.node.running && !s.leaving).map((s) => s.route);
    if (this.direct) out.push(directRoute(this.direct));
    return out;
  }

  /** Waits until every node not leaving answers /readyz with `status` (200 ready, 503 not). */
  async waitReady(status: 200 | 503 = 200, timeoutMs = 60_000): Promise<void> {
    await waitFor(
      `every node to answer /readyz ${status}`,
      async () => {
        const slots = this.#slots.filter((s) => !s.leaving);
        const answers = await Promise.all(slots.map((s) => s.node.readyStatus()));
        for (let i = 0; i < slots.length; i++) (slots[i] as Slot).ready = answers[i] === 200;
        return answers.every((a) => a === status);
      },
      timeoutMs,
      50,
    );
  }

  /** SIGKILL of node `i`: it dies without a word to its clients. */
  async kill(i: number): Promise<Incident> {
    const slot = this.#at(i);
    slot.leaving = true;
    const at = Date.now();
    await slot.node.kill();
    return { at, kind: 'kill', node: slot.node.nodeId };
  }

  /** SIGTERM of node `i`; resolves once it drained and exited. */
  async drain(i: number): Promise<Incident> {
    const slot = this.#at(i);
    slot.leaving = true;
    const at = Date.now();
    await slot.node.terminate(((this.options.drainWindowS ?? 2) + 20) * 1000);
    return { at, kind: 'drain', node: slot.node.nodeId };
  }

  /** Starts node `i` again (same node id, new process, new port) and waits until it is ready. */
  async restart(i: number): Promise<void> {
    const slot = this.#at(i);
    if (slot.node.running) throw new Error(`node ${slot.node.nodeId} is still running`);
    this.#slots[i] = this.#slot(await this.#startNode(slot.node.nodeId));
    this.#retired.push(slot.node);
    await this.waitReady();
  }

  /** Stops everything this fleet started. */
  async close(): Promise<void> {
    clearInterval(this.#poller);
    await Promise.allSettled(this.#slots.map((s) => s.node.kill()));
    await this.balancer.close().catch(() => {});
    await this.direct?.close().catch(() => {});
    rmSync(this.#dir, { recursive: true, force: true });
  }

  #at(i: number): Slot {
    const slot = this.#slots[i];
    if (!slot) throw new RangeError(`no node ${i} (the fleet has ${this.#slots.length})`);
    return slot;
  }

  #slot(node: GatewayNode): Slot {
    return { node, route: httpRoute(node.nodeId, node.base, this.apiKey), ready: false, leaving: false };
  }

  #startNode(nodeId: string): Promise<GatewayNode> {
    return GatewayNode.start({
      nodeId,
      backbone: this.options.backbone,
      apiKey: this.apiKey,
      configFile: this.#configFile,
      heartbeatS: this.options.heartbeatS ?? 10,
      drainWindowS: this.options.drainWindowS ?? 2,
      // Every client reaches the nodes from the balancer's one address, as behind an ingress
      // without X-Forwarded-For: the per-address limit would be a limit on the whole fleet.
      extraArgs: [
        '--connect-rate-per-address',
        '100000',
        ...(this.options.rebalance === false ? ['--rebalance-per-round', '0'] : []),
        ...(this.options.extraArgs ?? []),
      ],
    });
  }

  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const slots = [...this.#slots];
      const answers = await Promise.all(slots.map((s) => (s.leaving ? undefined : s.node.readyStatus(500))));
      for (let i = 0; i < slots.length; i++) (slots[i] as Slot).ready = answers[i] === 200;
    } finally {
      this.#polling = false;
    }
  }
}
