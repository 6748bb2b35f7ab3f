/**
 * @gatehouse/bench: `gatehouse bench` (load generation and figures against a raw baseline) and
 * `gatehouse capacity` (memory math from those figures). The CLI wires both entry points; the
 * rest is exported for scripts that want the pieces.
 */
export { benchMain } from './bench.js';
export type { BenchIo } from './bench.js';
export { capacityMain, capacityText, parseSize } from './capacity.js';
export { capacityPlan, DEFAULT_KERNEL_BYTES_PER_SOCKET } from './capacity-math.js';
export type { CapacityInput, CapacityPlan } from './capacity-math.js';
export { readBenchSample, MIN_TRUSTED_CONNECTIONS_PER_PROCESS } from './capacity-source.js';
export type { BenchSample } from './capacity-source.js';
export { parseBenchArgs, UsageError, SCENARIOS, BENCH_HELP } from './params.js';
export type { BenchParams, Scenario } from './params.js';
export type { BenchDocument, Machine, Ratio } from './report.js';
export type { TargetResult, SeriesPoint, StormFigures } from './run.js';
export { Histogram } from './histogram.js';
export type { LatencySummary, HistogramSnapshot } from './histogram.js';
export { presenceBenchMain, runPresenceBench } from './presence-bench.js';
export type { PresenceBenchResult } from './presence-bench.js';
