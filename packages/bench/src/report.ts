/**
 * The bench's JSON document and its text summary. The document carries the machine, the
 * parameters, the gateway's figures, the baseline's figures from the same run, and the ratios
 * (gateway divided by baseline), so a later run can be compared with it field by field.
 */
import { cpus, release, totalmem } from 'node:os';
import type { BaselineMode } from './child-protocol.js';
import type { LatencySummary } from './histogram.js';
import type { HotSpot } from './profile.js';
import type { BenchParams } from './params.js';
import type { TargetResult } from './run.js';

/** Gateway divided by baseline; below 1 is better for memory and p99, above 1 for deliveries. */
export interface Ratio {
  memoryPerConnection: number | null;
  deliveriesPerCpuSecond: number | null;
  p99: number | null;
  /** With --rounds above 1: the smallest and largest per-round ratio. */
  spread?: { memoryPerConnection: [number, number] | null; deliveriesPerCpuSecond: [number, number] | null; p99: [number, number] | null };
}

/** The machine a run happened on. */
export interface Machine {
  cores: number;
  cpuModel: string;
  node: string;
  platform: string;
  kernel: string;
  totalMemoryBytes: number;
}

/** The JSON document `--json` writes. */
export interface BenchDocument {
  tool: '@gatehouse/bench';
  scenario: BenchParams['scenario'];
  startedAt: string;
  finishedAt: string;
  /** Present when the run stopped early: why. The figures are those measured before. */
  incomplete?: string;
  /** What the run left out and why (a baseline that cannot run on this machine). */
  notes?: string[];
  machine: Machine;
  params: Record<string, unknown>;
  gateway: TargetResult;
  /** The first baseline mode (the one `ratio` uses). */
  baseline?: TargetResult;
  ratio?: Ratio;
  /** Every baseline mode measured, and its ratio, when there are several. */
  baselines?: Partial<Record<BaselineMode, TargetResult>>;
  ratios?: Partial<Record<BaselineMode, Ratio>>;
  /**
   * With --transport naming more than one: the gateway over each transport after the first, and
   * its ratio to the first (the `gateway` column; ratios above 1 for memory and p99 mean costlier).
   */
  transports?: Record<string, TargetResult>;
  transportRatios?: Record<string, Ratio>;
  /** With --rounds above 1: each round's headline figures. */
  rounds?: { target: string; memoryPerConnectionBytes: number | null; deliveriesPerCpuSecond: number | null; p99Ms: number | null }[][];
  /** With --profile: the gateway's hot spots. */
  profile?: {
    files: string[];
    hotSpots: HotSpot[];
    /** The baselines' hot spots over the same windows, for comparison. */
    baselines?: { target: string; files: string[]; hotSpots: HotSpot[] }[];
  };
}

/** The machine this process runs on. */
export function machine(): Machine {
  const c = cpus();
  return {
    cores: c.length,
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: process.platform,
    kernel: release(),
    totalMemoryBytes: totalmem(),
  };
}

/** The parameters as they go into the document (file paths left out). */
export function paramsForDocument(p: BenchParams): Record<string, unknown> {
  const out: Record<string, unknown> = { ...p };
  // Where the output went and how chatty the run was are not parameters of the measurement; the
  // API key is a secret.
  for (const k of ['jsonFile', 'htmlFile', 'quiet', 'verbose', 'profileDir', 'apiKey']) delete out[k];
  // Only what shaped this scenario: publishing knobs mean nothing to idle and storm, and so on.
  const publishing = p.scenario === 'fanout' || p.scenario === 'channels';
  if (!publishing) for (const k of ['rate', 'burst', 'batch', 'zipf']) delete out[k];
  else if (p.burst !== undefined) delete out['rate'];
  else delete out['burst'];
  if (p.scenario !== 'channels') delete out['zipf'];
  if (p.scenario !== 'storm') delete out['cause'];
  if (p.scenario !== 'channels' && p.scenario !== 'idle') delete out['channels'];
  if (!p.against) delete out['baselineModes'];
  if (p.transports.length === 1 && p.transports[0] === 'websocket') delete out['transports'];
  if (!p.protocols.includes('pusher')) delete out['protocols'];
  return out;
}

function div(a: number | null, b: number | null): number | null {
  if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null;
  return Math.round((a / b) * 1000) / 1000;
}

/** Gateway divided by baseline, for one pair of results. */
export function ratioOf(gateway: TargetResult, baseline: TargetResult): Ratio {
  return {
    memoryPerConnection: div(gateway.memoryPerConnectionBytes, baseline.memoryPerConnectionBytes),
    deliveriesPerCpuSecond: div(gateway.deliveriesPerCpuSecond, baseline.deliveriesPerCpuSecond),
    p99: div(gateway.latencyMs.p99, baseline.latencyMs.p99),
  };
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function whole(v: number | null): number | null {
  return v === null ? null : Math.round(v);
}

function nums(xs: (number | null)[]): number[] {
  return xs.filter((x): x is number => x !== null && Number.isFinite(x));
}

function range(xs: (number | null)[]): [number, number] | null {
  const v = nums(xs);
  return v.length === 0 ? null : [Math.min(...v), Math.max(...v)];
}

/**
 * Several rounds of one target as one result: medians of the headline figures, totals of the
 * counts, the last round's timeline and the merged shape otherwise.
 */
export function combineRounds(results: TargetResult[]): TargetResult {
  const last = results[results.length - 1] as TargetResult;
  if (results.length === 1) return last;
  const med = (f: (r: TargetResult) => number | null) => {
    const m = median(nums(results.map(f)));
    return m === null ? null : Math.round(m * 1000) / 1000;
  };
  const latency: LatencySummary = {
    p50: med((r) => r.latencyMs.p50),
    p99: med((r) => r.latencyMs.p99),
    p999: med((r) => r.latencyMs.p999),
    max: nums(results.map((r) => r.latencyMs.max)).reduce<number | null>((a, b) => (a === null ? b : Math.max(a, b)), null),
  };
  const sum = (f: (r: TargetResult) => number) => results.reduce((a, r) => a + f(r), 0);
  return {
    ...last,
    memoryPerConnectionBytes: whole(med((r) => r.memoryPerConnectionBytes)),
    deliveriesPerCpuSecond: whole(med((r) => r.deliveriesPerCpuSecond)),
    deliveriesPerWriteCall: med((r) => r.deliveriesPerWriteCall),
    batchDelay: last.batchDelay && heldFlushes(results),
    idleCpuCores: med((r) => r.idleCpuCores),
    latencyMs: latency,
    delivered: sum((r) => r.delivered),
    lost: sum((r) => r.lost),
    extra: sum((r) => r.extra),
    expected: sum((r) => r.expected),
    outOfOrder: sum((r) => r.outOfOrder),
    failedConnections: sum((r) => r.failedConnections),
    connectRetries: sum((r) => r.connectRetries),
    droppedConnections: sum((r) => r.droppedConnections),
    publications: last.publications && {
      ...last.publications,
      sent: sum((r) => r.publications?.sent ?? 0),
      ok: sum((r) => r.publications?.ok ?? 0),
      failed: sum((r) => r.publications?.failed ?? 0),
    },
  };
}

/** Adaptive batching's holds over several rounds: every held flush, and their mean hold. */
function heldFlushes(results: TargetResult[]): { flushes: number; meanMs: number } {
  let flushes = 0;
  let ms = 0;
  for (const r of results) {
    flushes += r.batchDelay?.flushes ?? 0;
    ms += (r.batchDelay?.flushes ?? 0) * (r.batchDelay?.meanMs ?? 0);
  }
  return { flushes, meanMs: flushes > 0 ? Math.round((ms / flushes) * 100) / 100 : 0 };
}

/** Ratios over rounds: the median of per-round ratios and their spread. */
export function combineRatios(gateway: TargetResult[], baseline: TargetResult[]): Ratio {
  const per = gateway.map((g, i) => ratioOf(g, baseline[i] as TargetResult));
  if (per.length === 1) return per[0] as Ratio;
  const med = (f: (r: Ratio) => number | null) => {
    const m = median(nums(per.map(f)));
    return m === null ? null : Math.round(m * 1000) / 1000;
  };
  return {
    memoryPerConnection: med((r) => r.memoryPerConnection),
    deliveriesPerCpuSecond: med((r) => r.deliveriesPerCpuSecond),
    p99: med((r) => r.p99),
    spread: {
      memoryPerConnection: range(per.map((r) => r.memoryPerConnection)),
      deliveriesPerCpuSecond: range(per.map((r) => r.deliveriesPerCpuSecond)),
      p99: range(per.map((r) => r.p99)),
    },
  };
}

function fmtInt(v: number | null): string {
  return v === null ? '-' : Math.round(v).toLocaleString('en-US');
}

function fmtBytes(v: number | null): string {
  if (v === null) return '-';
  if (Math.abs(v) >= 1024 * 1024) return `${(v / 1024 / 1024).toFixed(1)} MiB`;
  if (Math.abs(v) >= 1024) return `${(v / 1024).toFixed(2)} KiB`;
  return `${v} B`;
}

function fmtMs(v: number | null): string {
  return v === null ? '-' : v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(2)} ms`;
}

function fmtRatio(v: number | null | undefined, spread?: [number, number] | null): string {
  if (v === null || v === undefined) return '-';
  return spread ? `${v.toFixed(2)} (${spread[0].toFixed(2)}-${spread[1].toFixed(2)})` : v.toFixed(2);
}

/** The human summary printed at the end of a run. */
export function textSummary(doc: BenchDocument): string {
  const p = doc.params as unknown as BenchParams;
  const cols: { name: string; r: TargetResult }[] = [{ name: doc.gateway.target, r: doc.gateway }];
  for (const [, r] of Object.entries(doc.baselines ?? (doc.baseline ? { first: doc.baseline } : {})))
    if (r) cols.push({ name: r.target, r });
  for (const r of Object.values(doc.transports ?? {})) cols.push({ name: r.target, r });
  const ratio = doc.ratio;
  const rows: [string, (r: TargetResult) => string, string][] = [
    [
      'memory per connection',
      (r) => fmtBytes(r.memoryPerConnectionBytes),
      fmtRatio(ratio?.memoryPerConnection, ratio?.spread?.memoryPerConnection),
    ],
    [
      'deliveries per CPU-second',
      (r) => fmtInt(r.deliveriesPerCpuSecond),
      fmtRatio(ratio?.deliveriesPerCpuSecond, ratio?.spread?.deliveriesPerCpuSecond),
    ],
    ['deliveries per write call', (r) => (r.deliveriesPerWriteCall === null ? '-' : r.deliveriesPerWriteCall.toFixed(2)), ''],
    [
      'batching: flushes held / mean hold',
      (r) => (r.batchDelay ? `${r.batchDelay.flushes} / ${r.batchDelay.meanMs.toFixed(1)} ms` : '-'),
      '',
    ],
    ['latency p50', (r) => fmtMs(r.latencyMs.p50), ''],
    ['latency p99', (r) => fmtMs(r.latencyMs.p99), fmtRatio(ratio?.p99, ratio?.spread?.p99)],
    ['latency p99.9', (r) => fmtMs(r.latencyMs.p999), ''],
    ['latency max', (r) => fmtMs(r.latencyMs.max), ''],
    ['delivered / expected', (r) => `${fmtInt(r.delivered)} / ${fmtInt(r.expected)}`, ''],
    ['lost', (r) => fmtInt(r.lost), ''],
    ['server CPU seconds', (r) => r.cpuSeconds.toFixed(2), ''],
    ['event-loop lag p99 / max', (r) => `${fmtMs(r.eventLoopLagP99Ms)} / ${fmtMs(r.eventLoopLagMaxMs)}`, ''],
  ];
  if (p.scenario === 'idle')
    rows.splice(2, 0, ['idle CPU (cores)', (r) => (r.idleCpuCores === null ? '-' : r.idleCpuCores.toFixed(4)), '']);
  if (p.scenario === 'storm') {
    rows.push(
      ['all back after', (r) => fmtMs(r.storm?.allBackMs ?? null), ''],
      ['reconnect p50 / p99', (r) => `${fmtMs(r.storm?.reconnectMs.p50 ?? null)} / ${fmtMs(r.storm?.reconnectMs.p99 ?? null)}`, ''],
      [
        'refusals (client / server)',
        (r) => `${fmtInt(r.storm?.refusals ?? null)} / ${fmtInt(r.storm?.serverAdmissionRejects ?? null)}`,
        '',
      ],
      ['peak event-loop lag', (r) => fmtMs(r.storm?.peakEventLoopLagMs ?? null), ''],
    );
  }
  rows.push([
    'connections failed / retried / dropped',
    (r) => `${r.failedConnections} / ${r.connectRetries} / ${r.droppedConnections}`,
    '',
  ]);
  const table = [
    ['', ...cols.map((c) => c.name), ratio ? `ratio (gateway / ${doc.baseline?.target ?? cols[1]?.name})` : ''],
    ...rows.map(([label, f, r]) => [label, ...cols.map((c) => f(c.r)), ratio ? r : '']),
  ];
  const width = (table[0] as string[]).map((_, i) => Math.max(...table.map((row) => (row[i] ?? '').length)) + 2);
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(width[i] ?? 0))
      .join('')
      .trimEnd();
  const out = [
    ...(doc.incomplete ? [`INCOMPLETE RUN (${doc.incomplete}): figures measured before it stopped`] : []),
    `gatehouse bench ${doc.scenario}: ${fmtInt(p.connections)} connections (${p.client}), ${doc.machine.cores} cores, Node ${doc.machine.node}`,
    ...table.map(line),
  ];
  for (const note of doc.notes ?? []) out.push(`note: ${note}`);
  const modes = Object.entries(doc.ratios ?? {}).slice(1);
  for (const [mode, r] of modes) {
    if (!r) continue;
    out.push(
      `ratio gateway / ${mode === 'uws' ? 'raw-uws' : `raw-ws (${mode})`}: memory ${fmtRatio(r.memoryPerConnection, r.spread?.memoryPerConnection)}, ` +
        `deliveries per CPU-second ${fmtRatio(r.deliveriesPerCpuSecond, r.spread?.deliveriesPerCpuSecond)}, p99 ${fmtRatio(r.p99, r.spread?.p99)}`,
    );
  }
  if (doc.profile) {
    out.push('', `gateway hot spots over the measured window (self time, ${doc.profile.files.length} profile(s)):`);
    for (const h of doc.profile.hotSpots.slice(0, 15)) out.push(`  ${h.selfPercent.toFixed(1).padStart(5)}%  ${h.function}  ${h.location}`);
    for (const b of doc.profile.baselines ?? []) {
      out.push('', `${b.target} hot spots over the same window:`);
      for (const h of b.hotSpots.slice(0, 6)) out.push(`  ${h.selfPercent.toFixed(1).padStart(5)}%  ${h.function}  ${h.location}`);
    }
  }
  return out.join('\n');
}
