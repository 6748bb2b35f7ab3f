/**
 * One NATS connection with the state machine both backbones report: `connecting` until the first
 * connect, `down` from a disconnect until the client reconnected *and* the backbone finished its
 * own recovery step (flushing resubscriptions, re-reading the stream), `up` after, `closed`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { BackboneHandler, BackboneState, ControlMessage, Publication } from '@gatehouse/backbone-kit';
import { BackboneStateMachine, BackboneUnavailableError, backoffDelay, retryUntilDeadline } from '@gatehouse/backbone-kit';
import type { ResolvedNatsOptions } from './options.js';

/** Counters for metrics and /readyz. */
export interface NatsBackboneStats {
  /** Times the connection came back after a loss. */
  reconnects: number;
  /** Publishes that rejected. */
  publishErrors: number;
  /** Incoming messages on a channel subject that were not valid envelopes (dropped). */
  malformed: number;
  /** Incoming messages on the control subject that were not valid control messages (dropped). */
  controlMalformed: number;
  /** Stored fleet records that could not be decoded (skipped by `records`). */
  recordsMalformed: number;
  /** Times a handler callback threw (a bug in the caller; the message is dropped). */
  handlerErrors: number;
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
  readonly stats: NatsBackboneStats = {
    reconnects: 0,
    publishErrors: 0,
    malformed: 0,
    controlMalformed: 0,
    recordsMalformed: 0,
    handlerErrors: 0,
  };
  private readonly machine = new BackboneStateMachine({ onListenerError: () => this.stats.handlerErrors++ });
  private handler: BackboneHandler | undefined;
  lastError: Error | undefined;
  /** Bumped on every disconnect and recovery start, so a stale recovery loop stops. */
  private generation = 0;
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
    return this.machine.state;
  }

  /**
   * Connects; resolves once the server answered. Keeps trying, with backoff, until
   * `startTimeoutMs` has passed, then rejects with `BackboneUnavailableError`.
   */
  async open(handler: BackboneHandler): Promise<NatsConnection> {
    if (this.nc || this.closedNow()) throw new Error(`${this.kind} backbone: start was already called`);
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
      this.nc = await retryUntilDeadline(deadline, attempt, { giveUp: () => this.closedNow() });
    } catch (err) {
      this.machine.set('closed');
      throw new BackboneUnavailableError(`${this.kind}: cannot connect to ${o.servers.join(', ')}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (this.closedNow()) {
      // Closed while connecting.
      await this.nc.close().catch(() => {});
      throw new BackboneUnavailableError(`${this.kind} backbone closed while starting`);
    }
    this.handler = handler;
    this.machine.listen((state, err) => handler.onStateChange(state, err));
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

  /** Hands a control message to the handler, like `deliver`; nothing reaches a closed backbone. */
  deliverControl(msg: ControlMessage): void {
    if (this.closedNow()) return;
    try {
      this.handler?.onControl(msg);
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
    if (this.machine.state !== 'up' || !this.nc) {
      throw new BackboneUnavailableError(`${this.kind} backbone is ${this.machine.state}`, { cause: this.lastError });
    }
    return this.nc;
  }

  /** Reports `down` (for a loss the backbone noticed itself) and runs recovery again. */
  retryRecover(err: Error): void {
    if (this.closedNow()) return;
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
    for (let attempt = 1; ; attempt++) {
      if (generation !== this.generation || this.closedNow() || !this.nc || this.nc.isClosed()) return;
      try {
        await this.recover();
        if (generation === this.generation && this.machine.state === 'down') this.set('up');
        return;
      } catch (err) {
        this.lastError = err instanceof Error ? err : new Error(String(err));
      }
      await sleep(backoffDelay(attempt, 100, 5_000));
    }
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (this.closedNow()) break;
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
    if (!this.closedNow()) {
      const err = await nc.closed();
      this.lastError = err instanceof Error ? err : new Error('nats connection closed');
      this.generation++;
      this.set('down', this.lastError);
    }
  }

  /** A method, not a field test, so TypeScript does not narrow the state across awaits. */
  private closedNow(): boolean {
    return this.machine.state === 'closed';
  }

  /** Resolves when the link is (next) `up`, or once it is closed. */
  whenUp(): Promise<void> {
    if (this.machine.state === 'up' || this.closedNow()) return Promise.resolve();
    return new Promise((resolve) => this.upWaiters.push(resolve));
  }

  private set(state: BackboneState, err?: Error): void {
    if (this.machine.set(state, err) && (state === 'up' || state === 'closed')) for (const wake of this.upWaiters.splice(0)) wake();
  }

  /**
   * Reports `closed` once, then closes the connection (pending requests reject). Nothing is
   * delivered to the handler after `closed`.
   */
  async close(): Promise<void> {
    if (this.closedNow()) return;
    this.set('closed');
    this.handler = undefined;
    const nc = this.nc;
    if (nc && !nc.isClosed()) await nc.close().catch(() => {});
  }
}
