/**
 * Every session on this node, in one place, and how many connections each user holds. Sessions are
 * kept in a few shards so that periodic work (heartbeats) can visit one shard per tick instead of
 * the whole node at once.
 */
import type { Session } from './session.js';
import type { ConnectionLabels } from './metrics.js';

/** Shards of the registry (and heartbeat slots per interval). */
export const REGISTRY_SHARDS = 8;

/** The node's sessions and per-user counts. */
export class SessionRegistry implements Iterable<Session> {
  private readonly shards: Set<Session>[] = Array.from({ length: REGISTRY_SHARDS }, () => new Set());
  private readonly users = new Map<string, number>();
  private nextShard = 0;
  private count = 0;

  /** Sessions on this node, authenticated or not. */
  get size(): number {
    return this.count;
  }

  /** Adds a new session (round-robin over the shards). */
  add(s: Session): void {
    s.shard = this.nextShard;
    this.nextShard = (this.nextShard + 1) % REGISTRY_SHARDS;
    (this.shards[s.shard] as Set<Session>).add(s);
    this.count++;
  }

  /** Removes a session; false when it was not registered. */
  delete(s: Session): boolean {
    if (!(this.shards[s.shard] as Set<Session>).delete(s)) return false;
    this.count--;
    return true;
  }

  /** The sessions of shard `i` (0 to REGISTRY_SHARDS - 1). */
  shard(i: number): ReadonlySet<Session> {
    return this.shards[i] as Set<Session>;
  }

  *[Symbol.iterator](): Iterator<Session> {
    for (const shard of this.shards) yield* shard;
  }

  /** Connections `user` holds. */
  userConnections(user: string): number {
    return this.users.get(user) ?? 0;
  }

  /** Counts one more connection for `user`. */
  addUser(user: string): void {
    this.users.set(user, (this.users.get(user) ?? 0) + 1);
  }

  /** Counts one connection less for `user`; forgets users with none. */
  removeUser(user: string): void {
    const n = (this.users.get(user) ?? 1) - 1;
    if (n <= 0) this.users.delete(user);
    else this.users.set(user, n);
  }

  /** Sessions per transport kind and client protocol (the `transport` and `protocol` labels of gatehouse_connections). */
  byTransport(): Map<string, ConnectionLabels & { n: number }> {
    const out = new Map<string, ConnectionLabels & { n: number }>([
      ['websocket gatehouse', { transport: 'websocket', protocol: 'gatehouse', n: 0 }],
    ]);
    for (const s of this) {
      const key = `${s.transport.kind} ${s.protocol}`;
      const e = out.get(key);
      if (e) e.n++;
      else out.set(key, { transport: s.transport.kind, protocol: s.protocol, n: 1 });
    }
    return out;
  }

  /** Distinct users with at least one connection. */
  get userCount(): number {
    return this.users.size;
  }
}
