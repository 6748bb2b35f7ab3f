/**
 * What `gatehouse capacity --from <bench.json>` takes from a bench document, and why it may not
 * be trusted. Every scenario reads the gateway's memory at the same point (all connections open,
 * subscribed and settled, after a full GC, before the scenario's own work), so each can size held
 * connections; what the document cannot vouch for (too few connections per process, a running
 * gateway's un-collected heap, a run that stopped early, load the figure leaves out) becomes a
 * warning printed with the plan.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from './flags.js';
import { SCENARIOS } from './params.js';
import type { Scenario } from './params.js';

/**
 * Below this many connections per gateway process a measured figure overstates memory per
 * connection: the runtime's growth that does not scale with connections (heap sizing steps, code
 * and buffers allocated on first use) is divided over too few of them. In the recorded runs
 * (docs/benchmarks.md) the gateway measured 6,865 B per connection at 15,000 and 7,169 B at 14,286
 * per process over 100,000; 7,845 B at 10,000 (14% above the 15,000 figure, 9% above the 100,000
 * one); 10,453 B at 5,000 (raw `ws` 10,660 B in the same run, so the runtime and not the gateway:
 * 1.5 times), 15,315 B at 1,000 (2.2 times), and the 200-connection sample in issue 15 19 KB (2.8
 * times). 10,000 is the smallest recorded size that lands within 15%.
 */
export const MIN_TRUSTED_CONNECTIONS_PER_PROCESS = 10_000;

function atRest(scenario: string, before: string, missing: string): string {
  return `a ${scenario} document reads memory per connection before ${before}, so it sizes held connections at rest and leaves out ${missing}`;
}

const QUEUED = 'the bytes queued for subscribers while publishing (budget them with maxQueueBytes / admissionQueueBytes)';

/**
 * What a scenario's document leaves out of the memory figure, said next to the plan; idle is
 * the measurement made for sizing and needs no comment.
 */
export const SCENARIO_CAVEATS: Record<Scenario, string | null> = {
  idle: null,
  fanout: atRest('fanout', 'the first publication', QUEUED),
  channels: atRest('channels', 'the first publication', QUEUED),
  storm: atRest('storm', 'the drop', 'the reconnect peak (sessions closing while new ones open)'),
};

/** The sample a bench document gives the capacity math. */
export interface BenchSample {
  file: string;
  scenario: Scenario;
  /** gateway.memoryPerConnectionBytes. */
  bytesPerConnection: number;
  /** gateway.rssBeforeBytes divided by gateway.processes, when both are there. */
  processBaseBytes: number | undefined;
  /** Connections and gateway processes the figure was measured over, when the document says. */
  connections: number | null;
  processes: number | null;
  /** Why the figure may not hold for the plan; empty when nothing is known against it. */
  warnings: string[];
}

type Loose = Record<string, unknown> | undefined;

function obj(v: unknown): Loose {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function positive(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : null;
}

function n(v: number): string {
  return v.toLocaleString('en-US');
}

function sampleWarnings(
  file: string,
  doc: Record<string, unknown>,
  scenario: Scenario,
  connections: number | null,
  processes: number | null,
): string[] {
  const warnings: string[] = [];
  if (connections === null) {
    warnings.push(`${file} does not say how many connections it measured, so whether the sample is large enough cannot be checked`);
  } else {
    const procs = processes ?? 1;
    const perProcess = Math.round(connections / procs);
    if (perProcess < MIN_TRUSTED_CONNECTIONS_PER_PROCESS) {
      const over = procs === 1 ? 'on 1 gateway process' : `over ${procs} gateway processes (${n(perProcess)} each)`;
      warnings.push(
        `sample too small to trust: ${file} measured ${n(connections)} connections ${over}; below ${n(MIN_TRUSTED_CONNECTIONS_PER_PROCESS)} per process ` +
          'the figure overstates memory per connection, because memory that does not grow with connections is divided over too few of them ' +
          '(docs/benchmarks.md: 15,315 B at 1,000 and 10,453 B at 5,000 against 6,865 B at 15,000). ' +
          'Measure with "gatehouse bench idle --connections 15000 --json <file>"',
      );
    }
  }
  const params = obj(doc['params']);
  const urls = params?.['urls'];
  if (Array.isArray(urls) && urls.length > 0) {
    warnings.push(
      `${file} measured running gateways (--url): no full GC before the readings, and whatever else those gateways held in that time counts as connection memory`,
    );
  }
  if (typeof doc['incomplete'] === 'string') warnings.push(`${file} is from a run that stopped early (${doc['incomplete']})`);
  const caveat = SCENARIO_CAVEATS[scenario];
  if (caveat !== null) warnings.push(caveat);
  return warnings;
}

/** Reads a `gatehouse bench --json` document; refuses anything else, naming the field. */
export function readBenchSample(file: string): BenchSample {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--from ${file}: cannot read a JSON document (${(err as Error).message})`);
  }
  const doc = obj(raw);
  const scenario = doc?.['scenario'];
  if (doc === undefined || typeof scenario !== 'string' || !(SCENARIOS as readonly string[]).includes(scenario)) {
    const got = doc === undefined || scenario === undefined ? 'no scenario' : `scenario ${JSON.stringify(scenario)}`;
    throw new UsageError(
      `--from ${file}: not a "gatehouse bench --json" document (${got}; expected one of ${SCENARIOS.join(', ')}); write one with "gatehouse bench idle --connections 15000 --json ${file}"`,
    );
  }
  const gw = obj(doc['gateway']);
  const measured = gw?.['memoryPerConnectionBytes'];
  const bytes = positive(measured);
  const processes = positive(gw?.['processes']);
  const base = positive(gw?.['rssBeforeBytes']);
  const connections = positive(gw?.['connections']) ?? positive(obj(doc['params'])?.['connections']);
  if (bytes === null) {
    // Resident memory is read in pages and moves with the heap's own sizing: over a few hundred
    // connections it can stay flat or even shrink, which says the sample is too small, not that
    // connections are free.
    const why =
      typeof measured === 'number' && Number.isFinite(measured)
        ? `is ${measured}: resident memory did not grow measurably over ${connections === null ? 'the' : n(connections)} connections, a sample too small to size from`
        : 'is missing or not a number';
    throw new UsageError(
      `--from ${file}: gateway.memoryPerConnectionBytes ${why} (measure with "gatehouse bench idle --connections 15000 --json ${file}")`,
    );
  }
  const s = scenario as Scenario;
  return {
    file,
    scenario: s,
    bytesPerConnection: bytes,
    processBaseBytes: base !== null && processes !== null ? Math.round(base / processes) : undefined,
    connections,
    processes,
    warnings: sampleWarnings(file, doc, s, connections, processes),
  };
}
