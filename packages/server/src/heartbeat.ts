/**
 * Heartbeats and token expiry. Every interval each open session gets one heartbeat (spread over
 * the registry's shards, one shard per tick, so a beat is never one burst for the whole node); a
 * session that showed no sign of life since its previous beat is reported as missed. Sessions whose
 * token is about to expire are asked to refresh, and reported once the grace after expiry is over.
 *
 * Time comes from an injectable clock, so tests drive beats without waiting.
 */
import { REGISTRY_SHARDS } from './registry.js';
import type { SessionRegistry } from './registry.js';
import { SessionState } from './session.js';
import type { Session } from './session.js';

/** Where time comes from. */
export interface Clock {
  now(): number;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/** The process clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};

/** Stop writing heartbeats to a connection that already has this much unsent. */
export const HEARTBEAT_SKIP_BYTES = 64 * 1024;

/** What heartbeats need to know and whom they tell. */
export interface HeartbeatOptions {
  registry: SessionRegistry;
  clock?: Clock;
  /** One heartbeat per session per this many ms. */
  intervalMs: number;
  /** Ms before a token's expiry at which the client is asked to refresh. */
  refreshLeadMs: number;
  /** Ms after expiry before an unrefreshed session is reported. */
  tokenGraceMs: number;
  /** Nothing came back since the previous beat. */
  onMissed(s: Session): void;
  /** The token expired and was not refreshed within the grace. */
  onExpired(s: Session): void;
  /** Ask the client to refresh a token that expires in `inMs`. */
  askRefresh(s: Session, inMs: number): void;
}

/** The heartbeat loop of one node. */
export class Heartbeats {
  private readonly clock: Clock;
  private timer: unknown;
  private slot = 0;

  constructor(private readonly o: HeartbeatOptions) {
    this.clock = o.clock ?? systemClock;
  }

  /** Starts beating. */
  start(): void {
    if (this.timer !== undefined) return;
    const tick = Math.max(1, Math.floor(this.o.intervalMs / REGISTRY_SHARDS));
    this.timer = this.clock.setInterval(() => this.tick(), tick);
  }

  /** Stops beating. */
  stop(): void {
    if (this.timer !== undefined) this.clock.clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Beats the next shard (what the timer calls; tests may call it directly). */
  tick(): void {
    const shard = this.o.registry.shard(this.slot);
    this.slot = (this.slot + 1) % REGISTRY_SHARDS;
    const now = this.clock.now();
    for (const s of shard) {
      // Closing at the peer's request: no heartbeat may follow the close echo (RFC 6455 5.5.1).
      if (s.state !== SessionState.Open || !s.transport.writable) continue;
      if (!s.alive) {
        // Nothing came back since the last beat: a half-open peer, or a path that drops traffic.
        this.o.onMissed(s);
        continue;
      }
      // Cleared even when the beat is skipped: a peer that neither reads a backlog nor answers for
      // two beats is gone or as good as gone (it would be cut as a slow consumer next).
      s.alive = false;
      if (s.transport.bufferedBytes < HEARTBEAT_SKIP_BYTES) s.transport.heartbeat();
      const exp = s.grant?.expiresAt;
      if (exp === undefined) continue;
      if (now >= exp + this.o.tokenGraceMs) {
        this.o.onExpired(s);
      } else if (!s.refreshAsked && now >= exp - this.o.refreshLeadMs) {
        s.refreshAsked = true;
        this.o.askRefresh(s, Math.max(0, exp - now));
      }
    }
  }
}
