/**
 * `gatehouse bench <scenario>`: starts (or finds) the gateways, starts the load workers, runs the
 * scenario against the gateway and, with --against raw-ws, against the raw baselines in the same
 * run (alternating order across rounds), then prints the summary and writes the JSON document and
 * the HTML report. The whole run is bounded in time and stops everything it started on the way
 * out, whatever happened.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { BaselineMode } from './child-protocol.js';
import { htmlReport } from './html.js';
import { BENCH_HELP, UsageError, parseBenchArgs } from './params.js';
import type { BenchParams, BenchTransport } from './params.js';
import { WorkerPool } from './pool.js';
import { hotSpots, readProfiles } from './profile.js';
import { Progress } from './progress.js';
import type { ProgressSink } from './progress.js';
import { combineRatios, combineRounds, machine, paramsForDocument, textSummary } from './report.js';
import type { BenchDocument, Ratio } from './report.js';
import { measure } from './run.js';
import type { TargetResult } from './run.js';
import { TargetSet } from './targets.js';
import { loadUws } from './uws-load.js';

/** Where a run writes: the summary (stdout) and diagnostics and progress (stderr). */
export interface BenchIo {
  out: (text: string) => void;
  err: NodeJS.WritableStream & { isTTY?: boolean };
}

const defaultIo: BenchIo = { out: (t) => process.stdout.write(t + '\n'), err: process.stderr };

/** The gateway over a transport, or (`pusher`) over WebSocket with Pusher clients. */
type GatewayLoad = BenchTransport | 'pusher';
type Phase = { kind: 'gateway'; transport: GatewayLoad } | { kind: 'raw-ws'; mode: BaselineMode };

/**
 * Runs `gatehouse bench` with `argv` (the arguments after "bench"). Resolves with the exit code:
 * 0 done, 1 the run failed (the message says why), 2 a usage mistake (the message names the flag).
 */
export async function benchMain(argv: string[], io: BenchIo = defaultIo): Promise<number> {
  let params: BenchParams | 'help';
  try {
    params = parseBenchArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err.write(`gatehouse bench: ${err.message}\nRun "gatehouse bench --help" for the options.\n`);
      return 2;
    }
    throw err;
  }
  if (params === 'help') {
    io.out(BENCH_HELP);
    return 0;
  }
  const p = params;
  const progress = new Progress(io.err, io.err.isTTY === true, p.quiet);
  const abort = new AbortController();
  const bound = setTimeout(
    () => abort.abort(new Error(`the run reached its time bound of ${p.timeoutSeconds} s (--timeout)`)),
    p.timeoutSeconds * 1000,
  );
  const onSignal = (signal: string) => abort.abort(new Error(`interrupted by ${signal}`));
  const onInt = () => onSignal('SIGINT');
  const onTerm = () => onSignal('SIGTERM');
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);
  const live = new Set<TargetSet>();
  let pool: WorkerPool | undefined;
  const state: RunState = { startedAt: new Date(), gateway: [], baselines: new Map(), transports: new Map(), profiles: [] };
  const write = (doc: BenchDocument) => {
    io.out(textSummary(doc));
    if (p.jsonFile) {
      writeFileSync(p.jsonFile, JSON.stringify(doc, null, 2) + '\n');
      io.err.write(`wrote ${p.jsonFile}\n`);
    }
    if (p.htmlFile) {
      writeFileSync(p.htmlFile, htmlReport(doc));
      io.err.write(`wrote ${p.htmlFile}\n`);
    }
  };
  try {
    const aborted = new Promise<never>((_, reject) => {
      abort.signal.addEventListener('abort', () => reject(abort.signal.reason as Error), { once: true });
    });
    aborted.catch(() => {});
    await Promise.race([
      run(p, state, progress, abort.signal, live, (x) => {
        pool = x;
      }),
      aborted,
    ]);
    write(assemble(p, state));
    return 0;
  } catch (err) {
    progress.done();
    const message = (err as Error).message;
    // What was measured before the failure is kept, marked incomplete, rather than thrown away.
    if (state.gateway.length > 0) write(assemble(p, state, message));
    io.err.write(`gatehouse bench: ${message}\n`);
    return 1;
  } finally {
    clearTimeout(bound);
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await Promise.allSettled([...live].map((s) => s.stop()));
    await (pool as WorkerPool | undefined)?.exit();
  }
}

/** The Pusher app of the `--protocol pusher` phase (its namespace is `pusher-bench`). */
const BENCH_PUSHER_APP = { id: 'bench', key: 'bench-key', secret: randomBytes(16).toString('hex') };

/** What the phases measured so far: enough to write a document even if a later phase fails. */
interface RunState {
  startedAt: Date;
  gateway: TargetResult[];
  baselines: Map<BaselineMode, TargetResult[]>;
  /** The gateway over the transports after the first (--transport), and with Pusher clients (--protocol pusher). */
  transports: Map<GatewayLoad, TargetResult[]>;
  profiles: { target: string; files: string[] }[];
  /** Baseline modes left out of this run, with why. */
  skipped?: Map<BaselineMode, string>;
}

async function run(
  p: BenchParams,
  state: RunState,
  progress: ProgressSink,
  signal: AbortSignal,
  live: Set<TargetSet>,
  onPool: (pool: WorkerPool) => void,
): Promise<void> {
  const apiKey = p.apiKey ?? `bench-${randomBytes(12).toString('hex')}`;
  if (p.profileDir) mkdirSync(p.profileDir, { recursive: true });
  const pool = await WorkerPool.start(p.workers);
  onPool(pool);
  const spawn = {
    apiKey,
    heartbeatMs: Math.round(p.heartbeatSeconds * 1000),
    connectRate: p.gatewayConnectRate,
    connectRatePerAddress: 100_000_000,
    // The bench paces its own ramp; a loaded shared machine must not turn it into refusals. A
    // storm keeps the gateway's adaptive admission, since refusals are part of what it measures.
    admissionLagMs: p.scenario === 'storm' ? undefined : 3_600_000,
    coalesceMs: p.coalesceMs,
    maxBatchDelayMs: p.maxBatchDelayMs,
    nativeWrites: p.nativeWrites,
    gatewayNodeFlags: p.gatewayNodeFlags,
    verbose: p.verbose,
  };
  const start = async (phase: Phase): Promise<TargetSet> => {
    if (phase.kind === 'gateway') {
      if (p.urls.length > 0)
        return TargetSet.external(
          p.urls.map((u) => new URL(u)),
          p.apiKey,
        );
      return TargetSet.startGateways({
        ...spawn,
        hosts: Array.from({ length: p.gateways }, (_, i) => `127.0.1.${i + 1}`),
        ...(phase.transport === 'pusher' ? { pusherApp: BENCH_PUSHER_APP } : {}),
      });
    }
    return TargetSet.startRaw({ ...spawn, mode: phase.mode, hosts: Array.from({ length: p.gateways }, (_, i) => `127.0.2.${i + 1}`) });
  };

  const uws = p.against && p.baselineModes.includes('uws') ? loadUws() : undefined;
  if (uws && 'skipped' in uws) {
    (state.skipped ??= new Map()).set('uws', uws.skipped);
    progress.phase(uws.skipped);
  }
  const modes = p.baselineModes.filter((m) => !state.skipped?.has(m));
  const phases: Phase[] = [
    ...p.transports.map((transport) => ({ kind: 'gateway' as const, transport })),
    ...(p.protocols.includes('pusher') ? [{ kind: 'gateway' as const, transport: 'pusher' as const }] : []),
    ...(p.against ? modes.map((mode) => ({ kind: 'raw-ws' as const, mode })) : []),
  ];
  let phaseNo = 0;
  for (let round = 0; round < p.rounds; round++) {
    // Alternate the order so drift on a shared machine does not always favour the same side.
    const order = round % 2 === 0 ? phases : [...phases].reverse();
    if (p.rounds > 1) progress.phase(`round ${round + 1} of ${p.rounds}`);
    for (const phase of order) {
      const set = await start(phase);
      const stream = phase.kind === 'gateway' && phase.transport !== p.transports[0];
      if (phase.kind === 'gateway' && phase.transport !== 'websocket') {
        set.transport = phase.transport;
        set.label = `gateway-${phase.transport}`;
      }
      if (set.owned) live.add(set);
      try {
        const result = await measure({ params: p, pool, progress, phaseNo: phaseNo++, signal, profiles: state.profiles }, set);
        if (stream) state.transports.set(phase.transport, [...(state.transports.get(phase.transport) ?? []), result]);
        else if (phase.kind === 'gateway') state.gateway.push(result);
        else state.baselines.set(phase.mode, [...(state.baselines.get(phase.mode) ?? []), result]);
      } finally {
        await pool.stop().catch(() => undefined);
        if (set.owned) {
          await set.stop();
          live.delete(set);
        }
      }
    }
  }
}

/**
 * The document from what was measured. With `error`, the run stopped early: the document says so
 * and holds only complete rounds' ratios (a ratio needs both sides of the same round).
 */
function assemble(p: BenchParams, state: RunState, error?: string): BenchDocument {
  const doc: BenchDocument = {
    tool: '@gatehouse/bench',
    scenario: p.scenario,
    startedAt: state.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: machine(),
    params: paramsForDocument(p),
    gateway: combineRounds(state.gateway),
  };
  if (error !== undefined) doc.incomplete = error;
  if (state.skipped) doc.notes = [...state.skipped.values()];
  if (p.against) {
    const all: Partial<Record<BaselineMode, TargetResult>> = {};
    const ratios: Partial<Record<BaselineMode, Ratio>> = {};
    for (const mode of p.baselineModes) {
      const rs = state.baselines.get(mode) ?? [];
      if (rs.length === 0) continue;
      const pairs = Math.min(rs.length, state.gateway.length);
      all[mode] = combineRounds(rs);
      ratios[mode] = combineRatios(state.gateway.slice(0, pairs), rs.slice(0, pairs));
    }
    const first = p.baselineModes.find((m) => all[m] !== undefined);
    if (first) {
      doc.baseline = all[first];
      doc.ratio = ratios[first];
    }
    if (Object.keys(all).length > 1) {
      doc.baselines = all;
      doc.ratios = ratios;
    }
  }
  if (state.transports.size > 0) {
    doc.transports = {};
    doc.transportRatios = {};
    for (const [t, rs] of state.transports) {
      doc.transports[t] = combineRounds(rs);
      doc.transportRatios[t] = combineRatios(rs.slice(0, state.gateway.length), state.gateway.slice(0, rs.length));
    }
  }
  if (p.rounds > 1) {
    doc.rounds = state.gateway.map((g, i) =>
      [g, ...p.baselineModes.map((m) => state.baselines.get(m)?.[i]).filter((r): r is TargetResult => r !== undefined)].map((r) => ({
        target: r.target,
        memoryPerConnectionBytes: r.memoryPerConnectionBytes,
        deliveriesPerCpuSecond: r.deliveriesPerCpuSecond,
        p99Ms: r.latencyMs.p99,
      })),
    );
  }
  if (p.profileDir) {
    const files = state.profiles.filter((x) => x.target === 'gateway').flatMap((x) => x.files);
    doc.profile = { files, hotSpots: hotSpots(readProfiles(files)) };
    const others = state.profiles.filter((x) => x.target !== 'gateway');
    if (others.length > 0)
      doc.profile.baselines = others.map((x) => ({ target: x.target, files: x.files, hotSpots: hotSpots(readProfiles(x.files), 10) }));
  }
  return doc;
}
