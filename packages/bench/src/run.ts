/**
 * One measurement of one scenario against one target set (the gateway, or a raw baseline):
 * open the connections at the ramp rate, let them settle, then do what the scenario measures,
 * reading the server's own figures from /metrics before and after and the latencies from the
 * clients. Every wait has a deadline and says what it waited for.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Histogram } from './histogram.js';
import type { HistogramSnapshot, LatencySummary } from './histogram.js';
import { CONNECTIONS_PER_SOURCE_ADDRESS, isLoopback } from './params.js';
import type { BenchParams } from './params.js';
import type { LoadTotals, WorkerPool } from './pool.js';
import type { ProgressSink } from './progress.js';
import { Publisher, payloadJson } from './publisher.js';
import type { PublishOutcome } from './publisher.js';
import type { ServerFigures } from './prometheus.js';
import type { TargetSet } from './targets.js';
import type { PlanEntry } from './worker.js';

/** One point of the timeline (one per second). */
export interface SeriesPoint {
  /** Seconds since the phase started. */
  t: number;
  open: number;
  subscribed: number;
  deliveriesPerSecond: number;
  p99Ms: number | null;
}

/** Storm figures. */
export interface StormFigures {
  cause: 'drop' | 'kill';
  /** From the drop until the last connection was back and resubscribed; null if some never came back. */
  allBackMs: number | null;
  /** Connections back and resubscribed. */
  back: number;
  /** Time from the drop to each connection's resubscription. */
  reconnectMs: LatencySummary;
  /** Attempts refused by admission, as clients saw them (4100-4199, 1013, HTTP 429/503). */
  refusals: number;
  /** gatehouse_admission_rejects_total over the storm. */
  serverAdmissionRejects: number;
  /** Disconnect events clients saw after the drop (one per failed attempt too). */
  disconnects: number;
  /** Worst event-loop delay the server reported during the storm. */
  peakEventLoopLagMs: number;
}

/** What one target set measured in one phase. */
export interface TargetResult {
  target: string;
  kind: 'gateway' | 'raw-ws';
  processes: number;
  connections: number;
  /** Resident memory after the connections settled minus before, per connection (after a full GC when the bench owns the process). */
  memoryPerConnectionBytes: number | null;
  /**
   * Machine-wide kernel slab growth per socket while the connections opened (/proc/meminfo Slab;
   * a loopback connection is two sockets). Noisy on a shared machine; null where unreadable.
   */
  kernelBytesPerSocket: number | null;
  /** Deliveries the clients received per CPU-second the server spent (fanout, channels). */
  deliveriesPerCpuSecond: number | null;
  /** Publish stamp to arrival on the client. */
  latencyMs: LatencySummary;
  /** Publications received by clients (subscriber x publication). */
  delivered: number;
  /** Deliveries expected but not received. */
  lost: number;
  /** Deliveries expected: accepted publications times the subscribers of their channel. */
  expected: number;
  /** Deliveries beyond those expected (a publication answered with an error that still went out). */
  extra: number;
  /** Publications that arrived out of sequence on a connection (a gap or a duplicate). */
  outOfOrder: number;
  failedConnections: number;
  /** Lean connection attempts that failed and were retried (each connection tries up to 3 times). */
  connectRetries: number;
  droppedConnections: number;
  /** Idle only: server CPU cores used while idle (CPU seconds per second). */
  idleCpuCores: number | null;
  /** Server CPU seconds in the measured window. */
  cpuSeconds: number;
  /** The measured window, seconds. */
  windowSeconds: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  eventLoopLagP99Ms: number;
  eventLoopLagMaxMs: number;
  queueMaxBytes: number;
  /** gatehouse_deliveries_total over the window (the server's own count). */
  serverDeliveries: number;
  /**
   * write(2)/writev(2) calls of the server processes over the window (bench-started servers on
   * Linux; null otherwise), and deliveries per such call: 1 means one write per socket per
   * publication, above 1 means publications were coalesced into fewer, larger writes.
   */
  serverWriteCalls: number | null;
  deliveriesPerWriteCall: number | null;
  /**
   * The delay the gateway's adaptive write batching added over the window: flushes it held and
   * their mean hold, ms (0 flushes: it never held one; null: not a gateway).
   */
  batchDelay: { flushes: number; meanMs: number } | null;
  publications: Omit<PublishOutcome, 'okByChannel'> | null;
  storm: StormFigures | null;
  closeCodes: Record<string, number>;
  failures: Record<string, number>;
  series: SeriesPoint[];
  latencyHistogram: HistogramSnapshot;
}

/** What a phase needs. */
export interface PhaseContext {
  params: BenchParams;
  pool: WorkerPool;
  progress: ProgressSink;
  /** Distinct per phase, so each phase uses fresh source addresses. */
  phaseNo: number;
  signal: AbortSignal;
  /** With --profile: CPU profiles of the measured window are written here, by target. */
  profiles?: { target: string; files: string[] }[];
}

/** Sleeps, or rejects when the run is aborted (time bound, signal). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** A small seeded PRNG (mulberry32), so gateway and baseline see the same channel sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Channels, their subscriber counts, and their share of publications. */
export interface ChannelLayout {
  channels: string[];
  subscribers: number[];
  publishWeights: number[];
}

/**
 * Idle: connections spread evenly over --channels. Fanout and storm: one channel. Channels: every
 * channel gets one subscriber, the rest follow Zipf(s) by rank; publications use the same skew.
 */
export function channelLayout(p: Pick<BenchParams, 'scenario' | 'connections' | 'channels' | 'zipf'>): ChannelLayout {
  const n = p.connections;
  if (p.scenario === 'fanout' || p.scenario === 'storm') return { channels: ['public:bench'], subscribers: [n], publishWeights: [1] };
  const m = p.channels;
  const channels = Array.from({ length: m }, (_, i) => (p.scenario === 'idle' ? `public:idle-${i}` : `public:ch-${i}`));
  if (p.scenario === 'idle') {
    return {
      channels,
      subscribers: channels.map((_, i) => Math.floor(n / m) + (i < n % m ? 1 : 0)),
      publishWeights: channels.map(() => 1),
    };
  }
  const weights = channels.map((_, i) => 1 / Math.pow(i + 1, p.zipf));
  const total = weights.reduce((a, w) => a + w, 0);
  const spare = n - m;
  const subscribers = weights.map((w) => 1 + Math.floor((spare * w) / total));
  let left = n - subscribers.reduce((a, c) => a + c, 0);
  for (let i = 0; left > 0; i = (i + 1) % m, left--) subscribers[i] = (subscribers[i] as number) + 1;
  return { channels, subscribers, publishWeights: weights };
}

/** Splits each channel's subscribers over the workers, rotating remainders so none is favoured. */
export function splitPlans(layout: ChannelLayout, workers: number): PlanEntry[][] {
  const plans: PlanEntry[][] = Array.from({ length: workers }, () => []);
  let rot = 0;
  for (const [c, channel] of layout.channels.entries()) {
    const n = layout.subscribers[c] as number;
    const base = Math.floor(n / workers);
    const rem = n % workers;
    for (let w = 0; w < workers; w++) {
      const extra = (w - rot + workers) % workers < rem ? 1 : 0;
      (plans[w] as PlanEntry[]).push({ channel, count: base + extra });
    }
    rot = (rot + rem) % workers;
  }
  return plans;
}

/** Source addresses for one worker in one phase: one 127.x address per 10,000 connections. */
export function sourceAddresses(phaseNo: number, worker: number, count: number): string[] {
  const k = Math.max(1, Math.ceil(count / CONNECTIONS_PER_SOURCE_ADDRESS));
  return Array.from({ length: k }, (_, j) => `127.${20 + (phaseNo % 200)}.${worker}.${j + 1}`);
}

class Sampler {
  readonly series: SeriesPoint[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastReceived = 0;
  private lastAt = performance.now();
  private readonly t0 = performance.now();

  constructor(
    private readonly ctx: PhaseContext,
    private readonly label: string,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.sample(), 1000);
  }

  private sample(): void {
    const t = this.ctx.pool.totals();
    const h = this.ctx.pool.takeInterval();
    const now = performance.now();
    const perSecond = Math.max(0, (t.received - this.lastReceived) / ((now - this.lastAt) / 1000));
    this.lastReceived = t.received;
    this.lastAt = now;
    const p99 = h.quantile(0.99);
    const point = {
      t: Math.round((now - this.t0) / 100) / 10,
      open: t.open,
      subscribed: t.subscribed,
      deliveriesPerSecond: Math.round(perSecond),
      p99Ms: p99 === null ? null : Math.round(p99 * 1000) / 1000,
    };
    this.series.push(point);
    this.ctx.progress.update({
      label: this.label,
      open: t.open,
      target: this.ctx.params.connections,
      perSecond,
      p99Ms: p99,
      seconds: point.t,
    });
  }

  /**
   * Samples the time since the last point (at least 100 ms of it), so a run shorter than one
   * interval still has a point and a longer one keeps its tail.
   */
  finish(): void {
    clearInterval(this.timer);
    if (this.series.length === 0 || performance.now() - this.lastAt >= 100) this.sample();
  }

  stop(): void {
    clearInterval(this.timer);
    this.ctx.progress.done();
  }
}

function describeFailures(t: LoadTotals): string {
  const top = Object.entries(t.failures)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5);
  return top.length === 0 ? 'no failure reported' : top.map(([k, n]) => `${k} x${n}`).join(', ');
}

/** How long the subscribed count may stand still before the ramp is declared stuck. */
const RAMP_STALL_MS = 60_000;

/**
 * Waits until `n` connections are subscribed. Fails when every attempt has ended and some failed,
 * when the count stands still for a minute, or past four times the planned ramp plus two minutes
 * (a loaded machine ramps slower than asked, which is no reason to give up while it progresses).
 */
async function waitSubscribed(ctx: PhaseContext, n: number): Promise<LoadTotals> {
  const p = ctx.params;
  const limitMs = (n / p.rampPerSecond) * 4000 + 120_000;
  const t0 = performance.now();
  let last = -1;
  let lastChange = t0;
  for (;;) {
    await sleep(250, ctx.signal);
    ctx.pool.check();
    const t = ctx.pool.totals();
    if (t.subscribed >= n) return t;
    if (t.started >= n && t.failed > 0 && t.subscribed + t.failed >= n) {
      throw new Error(`only ${t.subscribed} of ${n} connections subscribed; ${t.failed} failed: ${describeFailures(t)}`);
    }
    const now = performance.now();
    if (t.subscribed !== last) {
      last = t.subscribed;
      lastChange = now;
    }
    if (now - lastChange > RAMP_STALL_MS || now - t0 > limitMs) {
      const why = now - lastChange > RAMP_STALL_MS ? `no progress for ${RAMP_STALL_MS / 1000} s` : `after ${Math.round(limitMs / 1000)} s`;
      const d = await ctx.pool.refresh(true);
      const states = Object.entries(d.states)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
      throw new Error(
        `only ${d.subscribed} of ${n} connections subscribed, ${why}; connections by state: ${states}; ${d.failed} failed: ${describeFailures(d)}`,
      );
    }
  }
}

/** Waits until clients received `expected` publications since `before`, or progress stalls for 3 s. */
async function waitDelivered(ctx: PhaseContext, before: number, expected: number): Promise<LoadTotals> {
  let last = -1;
  let lastChange = performance.now();
  const t0 = performance.now();
  for (;;) {
    const t = await ctx.pool.refresh();
    const got = t.received - before;
    if (got >= expected) return t;
    const now = performance.now();
    if (got !== last) {
      last = got;
      lastChange = now;
    } else if (now - lastChange > 3000 || now - t0 > 120_000) {
      return t;
    }
    await sleep(200, ctx.signal);
  }
}

function expectedDeliveries(layout: ChannelLayout, subscribedByChannel: number[], okByChannel: Map<string, number>): number {
  let e = 0;
  for (const [i, ch] of layout.channels.entries()) e += (okByChannel.get(ch) ?? 0) * (subscribedByChannel[i] ?? 0);
  return e;
}

/** Publishes a plan and waits for the deliveries it should cause. */
async function publishAndWait(
  ctx: PhaseContext,
  set: TargetSet,
  layout: ChannelLayout,
  plan: { rate: number | undefined; count: number; batch: number; channelOf: (i: number) => string },
): Promise<{ outcome: PublishOutcome; expected: number; delivered: number }> {
  const p = ctx.params;
  const start = await ctx.pool.refresh();
  const publisher = new Publisher(
    set.targets.map((t) => t.httpBase),
    set.apiKey,
    p.concurrency,
    p.publishTo === 'all',
    (c) => set.publishChannel(c),
  );
  try {
    const outcome = await publisher.run({
      ...plan,
      dataJson: payloadJson(p.payloadBytes),
      deadlineMs: (plan.rate === undefined ? 300 : plan.count / plan.rate + 60) * 1000,
    });
    const expected = expectedDeliveries(layout, start.subscribedByChannel, outcome.okByChannel);
    const end = await waitDelivered(ctx, start.received, expected);
    return { outcome, expected, delivered: end.received - start.received };
  } finally {
    publisher.close();
  }
}

/** Probe publications: each channel gets `probes` of them, a few per second. */
function probe(ctx: PhaseContext, set: TargetSet, layout: ChannelLayout) {
  const m = layout.channels.length;
  return publishAndWait(ctx, set, layout, {
    rate: 5 * m,
    count: ctx.params.probes * m,
    batch: 1,
    channelOf: (i) => layout.channels[i % m] as string,
  });
}

/** Runs the scenario against `set` (already started) and returns what it measured. */
export async function measure(ctx: PhaseContext, set: TargetSet): Promise<TargetResult> {
  const p = ctx.params;
  const n = p.connections;
  const pool = ctx.pool;
  const layout = channelLayout(p);
  const plans = splitPlans(layout, pool.size);
  const loopback = set.targets.every((t) => isLoopback(t.host));
  const sampler = new Sampler(ctx, set.label);

  await set.gc();
  const before = await set.figures();
  const slabBefore = slabBytes();
  ctx.progress.phase(
    `${set.label}: opening ${n.toLocaleString('en-US')} ${p.client} connections over ${set.targets.length} process(es) from ${pool.size} worker(s) at ${p.rampPerSecond}/s`,
  );
  sampler.start();
  try {
    pool.begin({
      mode: p.client,
      endpoints: set.endpoints(),
      plans,
      sourceAddresses: plans.map((plan, w) =>
        loopback
          ? sourceAddresses(
              ctx.phaseNo,
              w,
              plan.reduce((a, e) => a + e.count, 0),
            )
          : [],
      ),
      rampPerSecond: p.rampPerSecond,
      // Handshakes in flight stay below a listen backlog (Node's default is 511 per server), so a
      // server that stalls for a moment is not sent more than its accept queue holds.
      maxPending: Math.min(p.rampPerSecond, 256 * set.targets.length),
    });
    await waitSubscribed(ctx, n);
    await sleep(p.settleSeconds * 1000, ctx.signal);
    await set.gc();
    const settled = await set.figures();
    const memoryPerConnectionBytes = Math.round((settled.rssBytes - before.rssBytes) / n);
    const profiling = p.profileDir !== undefined && set.owned;
    if (profiling) await set.startProfile();
    const stopProfile = async () => {
      if (!profiling) return;
      const slug = set.label.replace(/[^a-z0-9]+/gi, '-').replace(/-$/, '');
      const files = await set.stopProfile(join(p.profileDir as string, `phase${ctx.phaseNo}-${slug}`));
      ctx.profiles?.push({ target: set.label, files });
    };
    const slabAfter = slabBytes();
    const kernelBytesPerSocket =
      slabBefore === null || slabAfter === null ? null : Math.round((slabAfter - slabBefore) / (loopback ? 2 * n : n));

    let window: { from: ServerFigures; to: ServerFigures };
    let delivered = 0;
    let expected = 0;
    let outcome: PublishOutcome | null = null;
    let idleCpuCores: number | null = null;
    let deliveriesPerCpuSecond: number | null = null;
    let storm: StormFigures | null = null;

    if (p.scenario === 'idle') {
      ctx.progress.phase(
        `${set.label}: holding ${n.toLocaleString('en-US')} idle connections for ${p.durationSeconds} s (heartbeat every ${p.heartbeatSeconds} s)`,
      );
      await sleep(p.durationSeconds * 1000, ctx.signal);
      const idleEnd = await set.figures();
      await stopProfile();
      window = { from: settled, to: idleEnd };
      idleCpuCores = (idleEnd.cpuSeconds - settled.cpuSeconds) / ((idleEnd.at - settled.at) / 1000);
      pool.latency.reset();
      const r = await probe(ctx, set, layout);
      ({ outcome, expected, delivered } = r);
    } else if (p.scenario === 'storm') {
      const r = await runStorm(ctx, set, n, profiling);
      await stopProfile();
      storm = r.storm;
      // After a kill the counters belong to the new processes: they start from zero.
      window = { from: r.restartedAt === undefined ? settled : zeroFigures(r.restartedAt), to: r.after };
      await sleep(1000, ctx.signal);
      pool.latency.reset();
      const pr = await probe(ctx, set, layout);
      ({ outcome, expected, delivered } = pr);
    } else {
      pool.latency.reset();
      const count = p.burst ?? Math.max(1, Math.round((p.rate as number) * p.durationSeconds));
      const rng = seededRandom(p.seed);
      const cumulative: number[] = [];
      let acc = 0;
      for (const w of layout.publishWeights) cumulative.push((acc += w));
      const pick = () => {
        const x = rng() * acc;
        let lo = 0;
        let hi = cumulative.length - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if ((cumulative[mid] as number) > x) hi = mid;
          else lo = mid + 1;
        }
        return layout.channels[lo] as string;
      };
      const what = p.burst !== undefined ? `a burst of ${p.burst}` : `${p.rate}/s for ${p.durationSeconds} s`;
      ctx.progress.phase(
        `${set.label}: publishing ${what} (${p.batch} per tick, ${p.payloadBytes} bytes) to ${layout.channels.length} channel(s)`,
      );
      const r = await publishAndWait(ctx, set, layout, { rate: p.rate, count, batch: p.batch, channelOf: () => pick() });
      ({ outcome, expected, delivered } = r);
      const after = await set.figures();
      await stopProfile();
      window = { from: settled, to: after };
      const cpu = after.cpuSeconds - settled.cpuSeconds;
      deliveriesPerCpuSecond = cpu > 0 ? Math.round(delivered / cpu) : null;
    }

    const totals = await pool.refresh();
    sampler.finish();
    const writes = window.to.writeCalls === null || window.from.writeCalls === null ? null : window.to.writeCalls - window.from.writeCalls;
    return {
      target: set.label,
      kind: set.kind,
      processes: set.targets.length,
      connections: n,
      memoryPerConnectionBytes,
      kernelBytesPerSocket,
      deliveriesPerCpuSecond,
      latencyMs: pool.latency.summary(),
      delivered,
      lost: Math.max(0, expected - delivered),
      expected,
      extra: Math.max(0, delivered - expected),
      outOfOrder: totals.outOfOrder,
      failedConnections: totals.failed,
      connectRetries: totals.retries,
      droppedConnections: totals.dropped,
      idleCpuCores: idleCpuCores === null ? null : Math.round(idleCpuCores * 10_000) / 10_000,
      cpuSeconds: Math.round((window.to.cpuSeconds - window.from.cpuSeconds) * 1000) / 1000,
      windowSeconds: Math.round(window.to.at - window.from.at) / 1000,
      rssBeforeBytes: before.rssBytes,
      rssAfterBytes: settled.rssBytes,
      eventLoopLagP99Ms: Math.round(window.to.eventLoopLagP99Ms * 1000) / 1000,
      eventLoopLagMaxMs: Math.round(window.to.eventLoopLagMaxMs * 1000) / 1000,
      queueMaxBytes: window.to.queueMaxBytes,
      serverDeliveries: window.to.deliveries - window.from.deliveries,
      serverWriteCalls: writes,
      deliveriesPerWriteCall:
        // uWebSockets.js writes with send(2), which the write counter does not see.
        writes === null || writes === 0 || p.scenario === 'idle' || p.scenario === 'storm' || set.label === 'raw-uws'
          ? null
          : Math.round((delivered / writes) * 100) / 100,
      batchDelay: set.kind === 'gateway' ? batchDelay(window.from, window.to) : null,
      publications: outcome
        ? {
            sent: outcome.sent,
            ok: outcome.ok,
            failed: outcome.failed,
            errors: outcome.errors,
            lateTicks: outcome.lateTicks,
            seconds: Math.round(outcome.seconds * 1000) / 1000,
          }
        : null,
      storm,
      closeCodes: totals.closeCodes,
      failures: totals.failures,
      series: sampler.series,
      latencyHistogram: pool.latency.snapshot(),
    };
  } finally {
    sampler.stop();
  }
}

function batchDelay(from: ServerFigures, to: ServerFigures): { flushes: number; meanMs: number } {
  const flushes = to.batchDelayedFlushes - from.batchDelayedFlushes;
  const ms = (to.batchDelaySeconds - from.batchDelaySeconds) * 1000;
  return { flushes, meanMs: flushes > 0 ? Math.round((ms / flushes) * 100) / 100 : 0 };
}

/** Kernel slab memory of the whole machine, bytes (Linux), or null. */
function slabBytes(): number | null {
  try {
    const m = /^Slab:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function zeroFigures(at: number): ServerFigures {
  return {
    cpuSeconds: 0,
    rssBytes: 0,
    eventLoopLagP99Ms: 0,
    eventLoopLagMaxMs: 0,
    deliveries: 0,
    queueMaxBytes: 0,
    connections: 0,
    admissionRejects: 0,
    slowConsumers: 0,
    writeCalls: 0,
    batchDelayedFlushes: 0,
    batchDelaySeconds: 0,
    at,
  };
}

async function runStorm(
  ctx: PhaseContext,
  set: TargetSet,
  n: number,
  profiling: boolean,
): Promise<{ storm: StormFigures; after: ServerFigures; restartedAt: number | undefined }> {
  const p = ctx.params;
  const pool = ctx.pool;
  const pre = await set.figures();
  ctx.progress.phase(`${set.label}: storm (${p.cause}): ${n.toLocaleString('en-US')} clients reconnect with the SDK's backoff`);
  pool.storm(p.cause);
  let restartedAt: number | undefined;
  if (p.cause === 'kill') {
    await set.kill();
    restartedAt = performance.now();
    await set.restart();
    // The profile died with the killed processes: profile the new ones from their start.
    if (profiling) await set.startProfile();
  }
  let peakLag = 0;
  let last: ServerFigures | undefined;
  const t0 = performance.now();
  let totals = pool.totals();
  while (performance.now() - t0 < p.durationSeconds * 1000) {
    await sleep(500, ctx.signal);
    totals = await pool.refresh();
    const fig = await set.figuresIfUp();
    if (fig) {
      peakLag = Math.max(peakLag, fig.eventLoopLagMaxMs);
      last = fig;
    }
    if (totals.back >= n && totals.subscribed >= n) break;
  }
  const after = last ?? (await set.figures());
  const back = pool.back;
  const rejects = after.admissionRejects - (p.cause === 'drop' ? pre.admissionRejects : 0);
  return {
    storm: {
      cause: p.cause,
      allBackMs: back.count >= n ? Math.round(back.max) : null,
      back: back.count,
      reconnectMs: summarize(back),
      refusals: totals.refusals,
      serverAdmissionRejects: rejects,
      disconnects: totals.disconnects,
      peakEventLoopLagMs: Math.round(peakLag * 1000) / 1000,
    },
    after,
    restartedAt,
  };
}

function summarize(h: Histogram): LatencySummary {
  const s = h.summary();
  const r = (v: number | null) => (v === null ? null : Math.round(v));
  return { p50: r(s.p50), p99: r(s.p99), p999: r(s.p999), max: r(s.max) };
}
