/**
 * The fleet as one node sees it. Every node announces itself over the control plane
 * (`node.announce`) with its load and health; every node keeps the announcements it heard recently. From that view a node decides whether it holds clearly more than its share and
 * should hand some clients to the others, and which node a user would prefer (rendezvous hashing,
 * so a node joining or leaving moves as few users as possible).
 */
import type { Logger } from 'pino';
import type { Backbone, BackboneState } from './backbone.js';
import { ControlType } from './control.js';
import type { ControlPlane } from './control.js';
import { RendezvousHash } from './rendezvous.js';

/** What a node says about itself. */
export interface NodeAnnouncement {
  node: string;
  connections: number;
  /** Event-loop lag p99 over the last second, ms. */
  lagMs: number;
  ready: boolean;
  draining: boolean;
  /** When the announcement was made, ms since the epoch. */
  ts: number;
}

/** A node as this node last heard of it. */
export interface FleetMember extends NodeAnnouncement {
  /** Ms since this node heard it. */
  ageMs: number;
}

/** Parses an announcement from another node; undefined for anything malformed. */
export function parseAnnouncement(json: string): NodeAnnouncement | undefined {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const a = v as Record<string, unknown>;
  if (typeof a['node'] !== 'string' || a['node'].length > 64 || typeof a['connections'] !== 'number' || typeof a['ts'] !== 'number') {
    return undefined;
  }
  return {
    node: a['node'],
    connections: Math.max(0, Math.floor(a['connections'])),
    lagMs: typeof a['lagMs'] === 'number' ? a['lagMs'] : 0,
    ready: a['ready'] === true,
    draining: a['draining'] === true,
    ts: a['ts'],
  };
}

/** The recent announcements of every node, this one included. */
export class FleetView {
  private readonly members = new Map<string, { a: NodeAnnouncement; heardAt: number }>();
  private ring: RendezvousHash | undefined;
  private ringKey = '';

  /** Announcements older than `expireMs` are forgotten (a node that died stops counting). */
  constructor(
    private readonly expireMs: number,
    private readonly maxMembers = 1000,
  ) {}

  /** Records an announcement. */
  hear(a: NodeAnnouncement, now = Date.now()): void {
    if (!this.members.has(a.node) && this.members.size >= this.maxMembers) return;
    this.members.set(a.node, { a, heardAt: now });
  }

  /** Live members, sorted by name. */
  list(now = Date.now()): FleetMember[] {
    const out: FleetMember[] = [];
    for (const [name, m] of this.members) {
      if (now - m.heardAt > this.expireMs) this.members.delete(name);
      else out.push({ ...m.a, ageMs: now - m.heardAt });
    }
    return out.sort((x, y) => (x.node < y.node ? -1 : x.node > y.node ? 1 : 0));
  }

  /**
   * How many connections `self` should hand over now: the excess over the fleet's mean (ready,
   * not draining nodes) times (1 + tolerance), paced to at most `maxPerRound`. Zero when the
   * fleet view is too small to judge, or the fleet holds fewer than `minFleetConnections`.
   */
  excess(self: string, selfConnections: number, tolerance: number, maxPerRound: number, minFleetConnections = 0, now = Date.now()): number {
    const live = this.list(now).filter((m) => m.ready && !m.draining);
    if (live.length < 2 || !live.some((m) => m.node === self)) return 0;
    let total = 0;
    for (const m of live) total += m.node === self ? selfConnections : m.connections;
    // A small fleet gains nothing worth a reconnect from being even.
    if (total < minFleetConnections) return 0;
    const mean = total / live.length;
    const limit = Math.ceil(mean * (1 + tolerance));
    if (selfConnections <= limit) return 0;
    // Hand over only down to the mean's upper band, a slice at a time, so the fleet absorbs it.
    return Math.min(selfConnections - limit, maxPerRound);
  }

  /** The node a user would prefer among the ready, non-draining nodes (rendezvous hashing). */
  preferredNode(user: string, now = Date.now()): string | undefined {
    const names = this.list(now)
      .filter((m) => m.ready && !m.draining)
      .map((m) => m.node);
    if (names.length === 0) return undefined;
    const key = names.join('\n');
    if (key !== this.ringKey) {
      this.ring = new RendezvousHash(names);
      this.ringKey = key;
    }
    return (this.ring as RendezvousHash).pick(user);
  }
}

/** What the fleet agent reads about this node and what it may do. */
export interface FleetAgentDeps {
  node: string;
  control: ControlPlane;
  backbone: Backbone;
  log: Logger;
  announceIntervalMs: number;
  rebalanceTolerance: number;
  rebalancePerRound: number;
  rebalanceMinFleetConnections: number;
  /** This node's announcement fields, read once per tick. */
  self(): Omit<NodeAnnouncement, 'node' | 'ts'>;
  /** Hands `n` connections to the rest of the fleet. */
  shed(n: number): void;
}

/**
 * Announces this node every interval, listens to the others, and rebalances: a node that holds
 * clearly more than its share hands some connections to the rest, a slice per interval.
 */
export class FleetAgent {
  readonly view: FleetView;
  private timer: NodeJS.Timeout | undefined;
  /** Since when the backbone has been up without a break (ms). */
  private upSince: number | undefined;

  constructor(private readonly d: FleetAgentDeps) {
    this.view = new FleetView(d.announceIntervalMs * 3);
    d.control.on(ControlType.Announce, (msg) => {
      const a = parseAnnouncement(msg.data);
      if (a && a.node === msg.from) this.view.hear(a);
    });
  }

  /** Tracks backbone state: rebalancing waits for a settled view after an outage. */
  onBackboneState(state: BackboneState): void {
    this.upSince = state === 'up' ? (this.upSince ?? Date.now()) : undefined;
  }

  /** Announces now and every interval. */
  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.d.announceIntervalMs);
    this.timer.unref();
  }

  /** Stops announcing. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private tick(): void {
    const me: NodeAnnouncement = { node: this.d.node, ts: Date.now(), ...this.d.self() };
    this.view.hear(me);
    if (this.d.backbone.state === 'up') this.d.control.send(ControlType.Announce, me).catch(() => {});
    // Rebalance only on a settled view: after an outage, announcements come back at different
    // times and a node would shed clients against a fleet it only half sees.
    const settled = this.upSince !== undefined && Date.now() - this.upSince >= 3 * this.d.announceIntervalMs;
    if (this.d.rebalancePerRound > 0 && me.ready && settled) {
      const excess = this.view.excess(
        me.node,
        me.connections,
        this.d.rebalanceTolerance,
        this.d.rebalancePerRound,
        this.d.rebalanceMinFleetConnections,
      );
      if (excess > 0) this.d.shed(excess);
    }
  }
}
