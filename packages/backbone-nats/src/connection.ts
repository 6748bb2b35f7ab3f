/**
 * One NATS connection with the state machine both backbones report: `connecting` until the first
 * connect, `down` from a disconnect until the client reconnected *and* the backbone finished its
 * own recovery step (flushing resubscriptions, re-reading the stream), `up` after, `closed`.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { BackboneHandler, BackboneState, Publication } from '@gatehouse/server';
import { BackboneUnavailableError } from '@gatehouse/server';
import type { ResolvedNatsOptions } from './options.js';

/** Counters for metrics and /readyz. */
export interface NatsBackboneStats {
  /** Times the connection came back after a loss. */
  reconnects: number;
  /** Publishes that rejected. */
  publishErrors: number;
  /** Incoming messages that were not valid envelopes (dropped). */
  malformed: number;
  /** Times the handler threw from onPublication (a bug in the caller; the message is dropped). */
  handlerErrors: number;
}

/**
 * Runs `attempt` until it resolves, pausing 100, 200, 400 ms ... (at most 2 s) between tries.
 * Rethrows the last error once `giveUp(error)` says so, or when the next try would start after
 * `deadline` (ms since the Unix epoch).
 */
export async function retryUntil<T>(deadline: number, attempt: () => Promise<T>, giveUp: (err: unknown) => boolean): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      const wait = Math.min(2_000, 100 * 2 ** n);
      if (giveUp(err) || Date.now() + wait >= deadline) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** Rejects with `BackboneUnavailableError` if `p` does not settle within `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new BackboneUnavailableError(`${what} got no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The connection plus the state both NATS backbones report. */
export class NatsLink {
  nc: NatsConnection | undefined;
  private current: BackboneState = 'connecting';
  private handler: BackboneHandler | undefined;
  lastError: Error | undefined;
  /** Bumped on every disconnect and recovery start, so a stale recovery loop stops. */
  private generation = 0;
  readonly stats: NatsBackboneStats = { reconnects: 0, publishErrors: 0, malformed: 0, handlerErrors: 0 };
  private readonly upWaiters: (() => void)[] = [];

  /**
   * @param recover runs after every reconnect, before `up` is reported; it is retried with
   *   backoff until it succeeds, and the state stays `down` meanwhile.
   */
  constructor(
    private readonly options: ResolvedNatsOptions,
    private readonly kind: string,
    private readonly recover: () => Promise<void>,
  ) {}

  get state(): BackboneState {
    return this.current;
  }

  /**
   * Connects; resolves once the server answered. Keeps trying, with backoff, until
   * `startTimeoutMs` has passed, then rejects with `BackboneUnavailableError`.
   */
  async open(handler: BackboneHandler): Promise<NatsConnection> {
    if (this.nc || this.current === 'closed') throw new Error(`${this.kind} backbone: start was already called`);
    const o = this.options;
    const deadline = Date.now() + o.startTimeoutMs;
    const attempt = () =>
      connect({
        servers: [...o.servers],
        name: o.name,
        timeout: Math.max(1, Math.min(o.timeoutMs, deadline - Date.now())),
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: o.reconnectTimeWaitMs,
        reconnectJitter: Math.min(100, o.reconnectTimeWaitMs),
        pingInterval: o.pingIntervalMs,
        maxPingOut: 2,
        ...(o.tls ? { tls: {} } : {}),
      });
    try {
      this.nc = await retryUntil(deadline, attempt, () => this.closedNow());
    } catch (err) {
      this.current = 'closed';
      throw new BackboneUnavailableError(`${this.kind}: cannot connect to ${o.servers.join(', ')}: ${(err as Error).message}`, { cause: err });
    }
    if (this.closedNow()) {
      // Closed while connecting.
      await this.nc.close().catch(() => {});
      throw new BackboneUnavailableError(`${this.kind} backbone closed while starting`);
    }
    this.handler = handler;
    void this.watch(this.nc);
    return this.nc;
  }

  /**
   * Hands a publication to the handler. The contract forbids throwing there; if it happens
   * anyway it is counted and must not break the client library's delivery loop.
   */
  deliver(handler: BackboneHandler | undefined, pub: Publication): void {
    try {
      handler?.onPublication(pub);
    } catch {
      this.stats.handlerErrors++;
    }
  }

  /** Marks the link usable (after the backbone's own start steps) and reports `up`. */
  ready(): void {
    this.set('up');
  }

  /** Throws `BackboneUnavailableError` unless the link is up. */
  assertUp(): NatsConnection {
    if (this.current !== 'up' || !this.nc) {
      throw new BackboneUnavailableError(`${this.kind} backbone is ${this.current}`, { cause: this.lastError });
    }
    return this.nc;
  }

  /** Reports `down` (for a loss the backbone noticed itself) and runs recovery again. */
  retryRecover(err: Error): void {
    if (this.current === 'closed') return;
    this.lastError = err;
    this.set('down', err);
    void this.runRecover();
  }

  /**
   * Runs the backbone's recovery until it succeeds (then reports `up`), the link drops again (a
   * newer attempt takes over) or the backbone closes. Retries back off up to 5 s: JetStream, for
   * one, answers a little after the server accepts connections again.
   */
  private async runRecover(): Promise<void> {
    const generation = ++this.generation;
    for (let attempt = 0; ; attempt++) {
      if (generation !== this.generation || this.current === 'closed' || !this.nc || this.nc.isClosed()) return;
      try {
        await this.recover();
        if (generation === this.generation && this.current === 'down') this.set('up');
        return;
      } catch (err) {
        this.lastError = err instanceof Error ? err : new Error(String(err));
      }
      await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** attempt)));
    }
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (this.current === 'closed') break;
      switch (s.type) {
        case 'disconnect':
          this.generation++;
          this.lastError = new Error(`disconnected from ${s.server}`);
          this.set('down', this.lastError);
          break;
        case 'reconnect':
          this.stats.reconnects++;
          void this.runRecover();
          break;
        case 'error':
          this.lastError = s.error;
          break;
        default:
          break;
      }
    }
    // The status stream ends when the connection closed. If we did not close it (a fatal error
    // the client gave up on), the backbone stays unusable: say so.
    if (this.current !== 'closed') {
      const err = await nc.closed();
      this.lastError = err instanceof Error ? err : new Error('nats connection closed');
      this.generation++;
      this.set('down', this.lastError);
    }
  }

  /** A method, not a field test, so TypeScript does not narrow the state across awaits. */
  private closedNow(): boolean {
    return this.current === 'closed';
  }

  /** Resolves when the link is (next) `up`, or once it is closed. */
  whenUp(): Promise<void> {
    if (this.current === 'up' || this.current === 'closed') return Promise.resolve();
    return new Promise((resolve) => this.upWaiters.push(resolve));
  }

  private set(state: BackboneState, err?: Error): void {
    if (this.current === state || this.current === 'closed') return;
    this.current = state;
    this.handler?.onStateChange(state, err);
    if (state === 'up' || state === 'closed') for (const wake of this.upWaiters.splice(0)) wake();
  }

  /** Closes the connection (pending requests reject) and reports `closed` once. */
  async close(): Promise<void> {
    if (this.current === 'closed') return;
    this.current = 'closed';
    for (const wake of this.upWaiters.splice(0)) wake();
    const handler = this.handler;
    this.handler = undefined;
    const nc = this.nc;
    if (nc && !nc.isClosed()) await nc.close().catch(() => {});
    handler?.onStateChange('closed');
  }
}
