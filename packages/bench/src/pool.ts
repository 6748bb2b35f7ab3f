/**
 * The coordinator's side of the load workers: forks them, hands each its share of the
 * connections, merges their reports (counters are cumulative per phase, latency histograms are
 * deltas that are merged here), and stops them cleanly.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { Histogram } from './histogram.js';
import type { Endpoint, LoadReport } from './load.js';
import type { FromWorker, PlanEntry, ToWorker } from './worker.js';

/** Totals over every worker: the reports' counters summed (latencies are merged separately). */
export type LoadTotals = Omit<LoadReport, 'latency' | 'backLatency' | 'states'> & {
  /** After `refresh(true)`: connections by state. */
  states: Record<string, number>;
};

/** The counters of a report that add up across workers. */
const COUNTERS = [
  'started',
  'open',
  'subscribed',
  'failed',
  'retries',
  'dropped',
  'received',
  'outOfOrder',
  'back',
  'refusals',
  'disconnects',
] as const;

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, n] of Object.entries(from)) into[k] = (into[k] ?? 0) + n;
}

/** One phase's share for each worker. */
export interface PhaseSpec {
  mode: 'lean' | 'sdk';
  endpoints: Endpoint[];
  /** Per worker: its plan (channel, count). */
  plans: PlanEntry[][];
  /** Per worker: its source addresses. */
  sourceAddresses: string[][];
  /** Total connections per second over all workers. */
  rampPerSecond: number;
  maxPending: number;
}

interface Slot {
  child: ChildProcess;
  last: LoadReport | undefined;
  /** From the last report that carried them (periodic reports do not). */
  states: Record<string, number> | undefined;
  exited: boolean;
}

const REPLY_TIMEOUT_MS = 15_000;

/** A set of forked load workers. */
export class WorkerPool {
  /** Latencies of the current phase. */
  readonly latency = new Histogram();
  /** Latencies since `takeInterval()` was last called (for the timeline and progress line). */
  private interval = new Histogram();
  /** Storm: time from the drop to each connection's resubscription. */
  readonly back = new Histogram();
  private seq = 0;
  private channelsInPhase = 0;
  private error: Error | undefined;

  private constructor(private readonly slots: Slot[]) {
    for (const [i, s] of slots.entries()) {
      s.child.on('message', (msg: FromWorker) => this.onMessage(s, msg));
      s.child.once('exit', (code, signal) => {
        s.exited = true;
        if (code !== 0) this.error ??= new Error(`load worker ${i + 1} exited (code ${code}, signal ${signal})`);
      });
    }
  }

  /** Forks `n` workers and waits until each is ready. */
  static async start(n: number): Promise<WorkerPool> {
    const script = new URL('./worker.js', import.meta.url);
    const slots: Slot[] = [];
    for (let i = 0; i < n; i++) {
      slots.push({
        child: fork(script, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
        last: undefined,
        states: undefined,
        exited: false,
      });
    }
    const pool = new WorkerPool(slots);
    await Promise.all(
      slots.map(
        (s, i) =>
          new Promise<void>((resolve, reject) => {
            const timer = setTimeout(
              () => reject(new Error(`load worker ${i + 1} did not start within ${REPLY_TIMEOUT_MS} ms`)),
              REPLY_TIMEOUT_MS,
            );
            s.child.once('exit', () => reject(new Error(`load worker ${i + 1} exited while starting`)));
            const on = (msg: FromWorker) => {
              if (msg.type !== 'ready') return;
              clearTimeout(timer);
              s.child.off('message', on);
              resolve();
            };
            s.child.on('message', on);
          }),
      ),
    ).catch(async (err: unknown) => {
      await pool.exit();
      throw err;
    });
    return pool;
  }

  get size(): number {
    return this.slots.length;
  }

  /** Throws if a worker died or reported an error. */
  check(): void {
    if (this.error) throw this.error;
  }

  private onMessage(s: Slot, msg: FromWorker): void {
    if (msg.type === 'report' || msg.type === 'stopped') {
      s.last = msg.report;
      if (msg.report.states) s.states = msg.report.states;
      this.latency.merge(msg.report.latency);
      this.interval.merge(msg.report.latency);
      this.back.merge(msg.report.backLatency);
    } else if (msg.type === 'error') {
      this.error ??= new Error(`load worker failed: ${msg.message}`);
    }
  }

  private send(s: Slot, msg: ToWorker): void {
    if (!s.exited && s.child.connected) s.child.send(msg);
  }

  /** Starts a phase: every worker opens its share at its share of the ramp. */
  begin(spec: PhaseSpec): void {
    this.latency.reset();
    this.interval.reset();
    this.back.reset();
    this.channelsInPhase = spec.plans[0]?.length ?? 0;
    let offset = 0;
    for (const [i, s] of this.slots.entries()) {
      s.last = undefined;
      s.states = undefined;
      const plan = spec.plans[i] as PlanEntry[];
      const count = plan.reduce((a, p) => a + p.count, 0);
      this.send(s, {
        type: 'start',
        mode: spec.mode,
        endpoints: spec.endpoints,
        endpointOffset: offset,
        plan,
        sourceAddresses: spec.sourceAddresses[i] as string[],
        rampPerSecond: Math.max(1, spec.rampPerSecond / this.slots.length),
        maxPending: Math.max(1, Math.ceil(spec.maxPending / this.slots.length)),
      });
      offset += count;
    }
  }

  /** Asks every worker for a report now and waits for the answers; `detail` adds connection states. */
  async refresh(detail = false): Promise<LoadTotals> {
    const seq = ++this.seq;
    await Promise.all(this.slots.map((s) => this.await(s, { type: 'report', seq, detail }, (m) => m.type === 'report' && m.seq === seq)));
    return this.totals();
  }

  private await(s: Slot, msg: ToWorker, match: (m: FromWorker) => boolean): Promise<void> {
    if (s.exited) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        s.child.off('message', on);
        s.child.off('exit', exited);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`load worker did not answer "${msg.type}" within ${REPLY_TIMEOUT_MS} ms`));
      }, REPLY_TIMEOUT_MS);
      const on = (m: FromWorker) => {
        if (!match(m)) return;
        done();
        resolve();
      };
      // A worker that exits (the run is ending) answers nothing more: stop waiting for it.
      const exited = () => {
        done();
        resolve();
      };
      s.child.on('message', on);
      s.child.once('exit', exited);
      this.send(s, msg);
    });
  }

  /** The latest totals (from the periodic reports). */
  totals(): LoadTotals {
    const t: LoadTotals = {
      started: 0,
      open: 0,
      subscribed: 0,
      subscribedByChannel: new Array<number>(this.channelsInPhase).fill(0),
      failed: 0,
      retries: 0,
      dropped: 0,
      received: 0,
      outOfOrder: 0,
      back: 0,
      refusals: 0,
      disconnects: 0,
      failures: {},
      closeCodes: {},
      states: {},
    };
    for (const s of this.slots) {
      const r = s.last;
      if (!r) continue;
      for (const k of COUNTERS) t[k] += r[k];
      for (const [i, n] of r.subscribedByChannel.entries()) t.subscribedByChannel[i] = (t.subscribedByChannel[i] ?? 0) + n;
      addCounts(t.failures, r.failures);
      addCounts(t.closeCodes, r.closeCodes);
      addCounts(t.states, s.states ?? {});
    }
    return t;
  }

  /** Latencies recorded since the previous call. */
  takeInterval(): Histogram {
    const h = this.interval;
    this.interval = new Histogram();
    return h;
  }

  /** Storm: every worker marks the moment, and with 'drop' cuts every socket. */
  storm(cause: 'drop' | 'kill'): void {
    this.back.reset();
    for (const s of this.slots) this.send(s, { type: 'storm', cause });
  }

  /** Ends the phase: every connection closes cleanly; resolves with the final totals. */
  async stop(): Promise<LoadTotals> {
    const seq = ++this.seq;
    await Promise.all(this.slots.map((s) => this.await(s, { type: 'stop', seq }, (m) => m.type === 'stopped' && m.seq === seq)));
    return this.totals();
  }

  /** Ends the workers. */
  async exit(): Promise<void> {
    await Promise.all(
      this.slots.map(async (s) => {
        if (s.exited) return;
        const exited = new Promise<void>((resolve) => s.child.once('exit', () => resolve()));
        const timer = setTimeout(() => s.child.kill('SIGKILL'), 5000);
        this.send(s, { type: 'exit' });
        if (!s.child.connected) s.child.kill('SIGKILL');
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
