/**
 * Fleet-wide presence over the control plane, as one node keeps it (docs/presence.md).
 *
 * Each node owns the presence entries of its own connections and is the only one that adds or
 * removes them. It tells the fleet in two ways: a delta as soon as a member joins or leaves, and a
 * lease every interval: the full state of its members (chunked under the control size limit), which
 * also proves it is alive. Every node keeps every node's members with the lease's expiry; a node
 * whose lease is not renewed within `ttlMs` (2.5 intervals) is dropped, and each of its members
 * leaves exactly once. A client id belongs to one node, so no member can leave twice.
 *
 * Control messages have no order across senders and may be lost. Each sender numbers what it sends
 * (`s`, per incarnation `i`); a message older than what was applied from that sender is ignored, and
 * the next lease corrects anything lost. A node that restarts under the same name has a new
 * incarnation: the old one's members leave at once.
 *
 * Transport-agnostic: the gateway wires it to its control plane, the conformance suite to a bare
 * backbone.
 */
import { CONTROL_MAX_BYTES, type ControlMessage } from './contract.js';

/** Control message types presence uses. */
export const PresenceControl = {
  /** A node's members joined or left (immediate). */
  Delta: 'presence.delta',
  /** A part of a node's full presence state; renews its lease. */
  Lease: 'presence.lease',
} as const;

/** One connection in one channel. */
export interface PresenceMember {
  /** The connection id (unique in the fleet). */
  readonly client: string;
  /** The user id ('' for anonymous connections). */
  readonly user: string;
  /** The token's `info` claim, if any. */
  readonly info?: Readonly<Record<string, unknown>>;
}

/** A member joined or left a channel, as this node learned it. */
export interface PresenceChange {
  readonly kind: 'join' | 'leave';
  readonly channel: string;
  readonly member: PresenceMember;
  /** The node holding the connection. */
  readonly node: string;
  /** Members in the channel fleet-wide after the change. */
  readonly clients: number;
  /** Connections of this user in any presence channel fleet-wide after the change (0 for anonymous). */
  readonly userMemberships: number;
}

/** What the book needs. */
export interface PresenceBookOptions {
  /** This node's name. */
  readonly node: string;
  /** Sends a control message to every node (this one included). Must not throw synchronously. */
  send(type: string, data: string): Promise<void>;
  /** Lease renewal interval, ms (the announce interval). */
  readonly intervalMs: number;
  /** A lease not renewed for this long drops the node. Default 2.5 intervals. */
  readonly ttlMs?: number;
  /** An opaque tag carried in every lease (nodes sharing a webhook endpoint carry the same one). */
  readonly tag?: string;
  /** Largest control payload this book sends. Default CONTROL_MAX_BYTES minus a margin. */
  readonly maxMessageBytes?: number;
  /** Remote nodes kept at most. Default 1000. */
  readonly maxNodes?: number;
  /** Members one remote node may hold in the book. Default 1,000,000. */
  readonly maxMembersPerNode?: number;
  readonly now?: () => number;
}

interface NodeState {
  inc: string;
  /** When this node first heard this incarnation. */
  since: number;
  /** Highest sequence applied. */
  seq: number;
  expiresAt: number;
  tag: string;
  /** channel -> client -> member */
  channels: Map<string, Map<string, PresenceMember>>;
  size: number;
  /** A lease being assembled from its parts. */
  pending: { seq: number; parts: number; got: Map<number, unknown[]> } | undefined;
}

type Op = ['j', string, string, string, Record<string, unknown>?] | ['l', string, string];

/** Parses a member tuple `[client, user, info?]` from another node. */
function readMember(v: unknown): PresenceMember | undefined {
  if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[1] !== 'string' || v[0].length === 0 || v[0].length > 128) return undefined;
  if (v[1].length > 256) return undefined;
  const info: unknown = v[2];
  if (info !== undefined && (typeof info !== 'object' || info === null || Array.isArray(info))) return undefined;
  return info === undefined ? { client: v[0], user: v[1] } : { client: v[0], user: v[1], info: info as Record<string, unknown> };
}

function memberTuple(m: PresenceMember): unknown[] {
  return m.info === undefined ? [m.client, m.user] : [m.client, m.user, m.info];
}

/** The fleet's presence as this node knows it. */
export class PresenceBook {
  readonly node: string;
  readonly incarnation = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  readonly ttlMs: number;
  private readonly nodes = new Map<string, NodeState>();
  /** channel -> client -> [member, node]: the union over nodes, for queries. */
  private readonly index = new Map<string, Map<string, { m: PresenceMember; node: string }>>();
  /** channel -> user -> connections in the channel. */
  private readonly users = new Map<string, Map<string, number>>();
  /** user -> memberships in any channel. */
  private readonly userTotals = new Map<string, number>();
  private readonly listeners: ((c: PresenceChange) => void)[] = [];
  private readonly maxBytes: number;
  private seq = 0;
  private ops: Op[] = [];
  private opsBytes = 0;
  private flushScheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  /** When this node last heard its own lease (it reaches the fleet). */
  private heardSelfAt = 0;
  /** Since when this node has heard itself without a break longer than `selfWindowMs`. */
  private connectedSince: number | undefined;
  /** This node reaches the fleet while it heard its own lease within this (the ttl). */
  private readonly selfWindowMs: number;

  constructor(private readonly o: PresenceBookOptions) {
    this.node = o.node;
    this.ttlMs = o.ttlMs ?? Math.ceil(o.intervalMs * 2.5);
    this.maxBytes = o.maxMessageBytes ?? CONTROL_MAX_BYTES - 1024;
    this.now = o.now ?? Date.now;
    this.selfWindowMs = this.ttlMs;
    this.nodes.set(o.node, this.fresh(this.incarnation, o.tag ?? ''));
  }

  private fresh(inc: string, tag: string): NodeState {
    return { inc, since: this.now(), seq: 0, expiresAt: Infinity, tag, channels: new Map(), size: 0, pending: undefined };
  }

  /** Calls `fn` for every join and leave this node learns (its own and every other node's). */
  onChange(fn: (c: PresenceChange) => void): void {
    this.listeners.push(fn);
  }

  /** Sends the first lease and renews it every interval; checks expiries four times an interval. */
  start(): void {
    if (this.timer) return;
    this.sendLease();
    let tick = 0;
    this.timer = setInterval(
      () => {
        this.expire();
        if (++tick % 4 === 0) this.sendLease();
      },
      Math.max(1, Math.floor(this.o.intervalMs / 4)),
    );
    this.timer.unref();
  }

  /** Stops sending; forgets nothing. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  // ---- this node's members ----

  /** A local connection joined `channel`. Idempotent. */
  join(channel: string, member: PresenceMember): void {
    const self = this.nodes.get(this.node) as NodeState;
    if (self.channels.get(channel)?.has(member.client)) return;
    this.put(self, this.node, channel, member);
    this.queue(
      member.info === undefined ? ['j', channel, member.client, member.user] : ['j', channel, member.client, member.user, member.info],
    );
  }

  /** A local connection left `channel`. Idempotent. */
  leave(channel: string, client: string): void {
    const self = this.nodes.get(this.node) as NodeState;
    if (!self.channels.get(channel)?.has(client)) return;
    this.remove(self, this.node, channel, client);
    this.queue(['l', channel, client]);
  }

  // ---- queries (local state, no fan-in) ----

  /** The channel's members fleet-wide. */
  members(channel: string): PresenceMember[] {
    const ch = this.index.get(channel);
    if (!ch) return [];
    const out: PresenceMember[] = [];
    for (const e of ch.values()) out.push(e.m);
    return out;
  }

  /** Connections and distinct (non-anonymous) users in the channel fleet-wide. */
  stats(channel: string): { clients: number; users: number } {
    return { clients: this.index.get(channel)?.size ?? 0, users: this.users.get(channel)?.size ?? 0 };
  }

  /** Memberships of `user` in any presence channel fleet-wide. */
  userMemberships(user: string): number {
    return this.userTotals.get(user) ?? 0;
  }

  /** Channels with members, fleet-wide. */
  get channelCount(): number {
    return this.index.size;
  }

  /** Memberships known, fleet-wide. */
  get memberCount(): number {
    let n = 0;
    for (const ch of this.index.values()) n += ch.size;
    return n;
  }

  /** Nodes with a live lease (this one included) whose tag is `tag`, sorted. */
  liveNodes(tag?: string): string[] {
    const out: string[] = [];
    for (const [name, st] of this.nodes) if (tag === undefined || st.tag === tag) out.push(name);
    return out.sort();
  }

  /**
   * Nodes that have held a live lease for at least a full ttl, with tag `tag`, sorted: every node
   * of the fleet computes the same list (give or take a message's delay) and acts on it. This node
   * is in it only while it has reached the fleet (heard its own leases) for a full ttl.
   */
  settledNodes(tag: string, now = this.now()): string[] {
    const out: string[] = [];
    for (const [name, st] of this.nodes) {
      if (st.tag !== tag) continue;
      if (name === this.node ? this.connectedMs(now) >= this.ttlMs : now - st.since >= this.ttlMs) out.push(name);
    }
    return out.sort();
  }

  /**
   * Ms this node has reached the fleet without a break (it hears its own leases); 0 while it
   * does not (cut off, or not started). A node cut off must not act for the fleet.
   */
  connectedMs(now = this.now()): number {
    if (this.connectedSince === undefined || now - this.heardSelfAt > this.selfWindowMs) return 0;
    return now - this.connectedSince;
  }

  // ---- the control plane ----

  /** Handles a control message (any type; others are ignored). Never throws. */
  onControl(msg: ControlMessage): void {
    if (msg.type !== PresenceControl.Delta && msg.type !== PresenceControl.Lease) return;
    let v: unknown;
    try {
      v = JSON.parse(msg.data);
    } catch {
      return;
    }
    if (typeof v !== 'object' || v === null) return;
    const d = v as Record<string, unknown>;
    const inc = d['i'];
    const seq = d['s'];
    if (typeof inc !== 'string' || typeof seq !== 'number' || !Number.isSafeInteger(seq)) return;
    const now = this.now();
    if (msg.from === this.node) {
      if (inc !== this.incarnation) return;
      if (msg.type === PresenceControl.Lease) {
        if (this.connectedSince === undefined || now - this.heardSelfAt > this.selfWindowMs) this.connectedSince = now;
        this.heardSelfAt = now;
      }
      return;
    }
    let st = this.nodes.get(msg.from);
    if (st && st.inc !== inc) {
      // A new incarnation under the same name: the old process is gone, and its members with it.
      this.drop(msg.from);
      st = undefined;
    }
    if (!st) {
      if (this.nodes.size >= (this.o.maxNodes ?? 1000)) return;
      st = this.fresh(inc, typeof d['w'] === 'string' ? d['w'] : '');
      this.nodes.set(msg.from, st);
    }
    st.expiresAt = now + (typeof d['t'] === 'number' && d['t'] > 0 ? Math.min(d['t'], 10 * this.ttlMs) : this.ttlMs);
    if (msg.type === PresenceControl.Delta) this.applyDelta(msg.from, st, seq, d['o']);
    else this.applyLeasePart(msg.from, st, seq, d);
  }

  /** Drops every node whose lease ran out. Called by the timer; callable by tests. */
  expire(now = this.now()): void {
    for (const [name, st] of this.nodes) if (st.expiresAt <= now) this.drop(name);
  }

  private applyDelta(from: string, st: NodeState, seq: number, ops: unknown): void {
    if (seq <= st.seq || !Array.isArray(ops)) return;
    st.seq = seq;
    for (const op of ops) {
      if (!Array.isArray(op) || typeof op[1] !== 'string') continue;
      if (op[0] === 'j') {
        const m = readMember(op.slice(2));
        if (m && !st.channels.get(op[1])?.has(m.client)) this.putRemote(st, from, op[1], m);
      } else if (op[0] === 'l' && typeof op[2] === 'string') {
        this.remove(st, from, op[1], op[2]);
      }
    }
  }

  private applyLeasePart(from: string, st: NodeState, seq: number, d: Record<string, unknown>): void {
    const parts = d['n'];
    const part = d['p'];
    const channels = d['c'];
    if (typeof parts !== 'number' || typeof part !== 'number' || !Array.isArray(channels) || part < 0 || part >= parts || parts > 100_000)
      return;
    if (seq <= st.seq) return;
    if (!st.pending || st.pending.seq !== seq) st.pending = { seq, parts, got: new Map() };
    st.pending.got.set(part, channels);
    if (st.pending.got.size < parts) return;
    // Every part arrived: the lease is the node's whole state at `seq`.
    const got = st.pending.got;
    st.pending = undefined;
    st.seq = seq;
    const next = new Map<string, Map<string, PresenceMember>>();
    for (let i = 0; i < parts; i++) {
      for (const entry of got.get(i) as unknown[]) {
        if (!Array.isArray(entry) || typeof entry[0] !== 'string' || !Array.isArray(entry[1])) continue;
        let ch = next.get(entry[0]);
        if (!ch) next.set(entry[0], (ch = new Map()));
        for (const t of entry[1] as unknown[]) {
          const m = readMember(t);
          if (m) ch.set(m.client, m);
        }
      }
    }
    for (const [channel, have] of st.channels) {
      const want = next.get(channel);
      for (const client of [...have.keys()]) if (!want?.has(client)) this.remove(st, from, channel, client);
    }
    for (const [channel, want] of next) {
      const have = st.channels.get(channel);
      for (const m of want.values()) if (!have?.has(m.client)) this.putRemote(st, from, channel, m);
    }
  }

  private drop(name: string): void {
    const st = this.nodes.get(name);
    if (!st || name === this.node) return;
    this.nodes.delete(name);
    for (const [channel, members] of st.channels) for (const client of [...members.keys()]) this.remove(st, name, channel, client);
  }

  // ---- state ----

  private putRemote(st: NodeState, node: string, channel: string, m: PresenceMember): void {
    if (st.size >= (this.o.maxMembersPerNode ?? 1_000_000)) return;
    this.put(st, node, channel, m);
  }

  private put(st: NodeState, node: string, channel: string, m: PresenceMember): void {
    let members = st.channels.get(channel);
    if (!members) st.channels.set(channel, (members = new Map()));
    members.set(m.client, m);
    st.size++;
    let ch = this.index.get(channel);
    if (!ch) this.index.set(channel, (ch = new Map()));
    ch.set(m.client, { m, node });
    if (m.user !== '') {
      let users = this.users.get(channel);
      if (!users) this.users.set(channel, (users = new Map()));
      users.set(m.user, (users.get(m.user) ?? 0) + 1);
      this.userTotals.set(m.user, (this.userTotals.get(m.user) ?? 0) + 1);
    }
    this.emit({ kind: 'join', channel, member: m, node, clients: ch.size, userMemberships: this.userMemberships(m.user) });
  }

  private remove(st: NodeState, node: string, channel: string, client: string): void {
    const members = st.channels.get(channel);
    const m = members?.get(client);
    if (!members || !m) return;
    members.delete(client);
    if (members.size === 0) st.channels.delete(channel);
    st.size--;
    const ch = this.index.get(channel);
    if (ch?.get(client)?.node === node) {
      ch.delete(client);
      if (ch.size === 0) this.index.delete(channel);
    }
    if (m.user !== '') {
      const users = this.users.get(channel);
      const n = (users?.get(m.user) ?? 1) - 1;
      if (n > 0) users?.set(m.user, n);
      else {
        users?.delete(m.user);
        if (users?.size === 0) this.users.delete(channel);
      }
      const t = (this.userTotals.get(m.user) ?? 1) - 1;
      if (t > 0) this.userTotals.set(m.user, t);
      else this.userTotals.delete(m.user);
    }
    this.emit({ kind: 'leave', channel, member: m, node, clients: ch?.size ?? 0, userMemberships: this.userMemberships(m.user) });
  }

  private emit(c: PresenceChange): void {
    for (const fn of this.listeners) {
      try {
        fn(c);
      } catch {
        // A listener's failure is its own; the book's state is already consistent.
      }
    }
  }

  // ---- sending ----

  private queue(op: Op): void {
    const bytes = JSON.stringify(op).length + 1;
    if (this.opsBytes + bytes > this.maxBytes - 200) this.flush();
    this.ops.push(op);
    this.opsBytes += bytes;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.ops.length === 0) return;
    const data = JSON.stringify({ i: this.incarnation, s: ++this.seq, t: this.ttlMs, w: this.o.tag, o: this.ops });
    this.ops = [];
    this.opsBytes = 0;
    this.o.send(PresenceControl.Delta, data).catch(() => {
      // Lost while the backbone is away: the next lease carries the state.
    });
  }

  /** Sends this node's whole state as one lease, in parts under the size limit. */
  sendLease(): void {
    this.flush();
    const seq = ++this.seq;
    const self = this.nodes.get(this.node) as NodeState;
    const parts: unknown[][] = [];
    let cur: unknown[] = [];
    let bytes = 0;
    const budget = this.maxBytes - 200;
    for (const [channel, members] of self.channels) {
      let tuples: unknown[] = [];
      const head = JSON.stringify(channel).length + 8;
      bytes += head;
      for (const m of members.values()) {
        const t = memberTuple(m);
        const size = JSON.stringify(t).length + 1;
        if (bytes + size > budget && (tuples.length > 0 || cur.length > 0)) {
          if (tuples.length > 0) cur.push([channel, tuples]);
          parts.push(cur);
          cur = [];
          tuples = [];
          bytes = head;
        }
        tuples.push(t);
        bytes += size;
      }
      if (tuples.length > 0) cur.push([channel, tuples]);
    }
    parts.push(cur);
    const n = parts.length;
    for (let p = 0; p < n; p++) {
      const data = JSON.stringify({ i: this.incarnation, s: seq, t: this.ttlMs, w: this.o.tag, n, p, c: parts[p] });
      this.o.send(PresenceControl.Lease, data).catch(() => {});
    }
  }
}
