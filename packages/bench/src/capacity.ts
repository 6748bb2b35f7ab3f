/**
 * `gatehouse capacity`: flags in, the plan out as text, JSON or an HTML page. The math is in
 * capacity-math.ts; what a bench document offers, and what it cannot vouch for, in
 * capacity-source.ts.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { capacityHtml } from './capacity-html.js';
import { DEFAULT_HEADROOM, DEFAULT_KERNEL_BYTES_PER_SOCKET, DEFAULT_PROCESS_BASE_BYTES, capacityPlan } from './capacity-math.js';
import type { CapacityInput, CapacityPlan } from './capacity-math.js';
import { MIN_TRUSTED_CONNECTIONS_PER_PROCESS, readBenchSample } from './capacity-source.js';
import type { BenchSample } from './capacity-source.js';
import { UsageError, decimal, wholeNumber } from './flags.js';
import { MAX_SOCKETS_PER_PROCESS } from './params.js';
import type { BenchIo } from './bench.js';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1000,
  kb: 1000,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3,
};

/** Parses a byte size: `8192`, `5.6KB`, `6KiB`, `2GiB`. */
export function parseSize(flag: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw.trim());
  const unit = m ? UNITS[(m[2] as string).toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new UsageError(`--${flag} must be a size in bytes (e.g. 8192, 5.6KB, 6KiB), got ${JSON.stringify(raw)}`);
  return Math.round(Number(m[1]) * unit);
}

function count(flag: string, raw: string | undefined): number | undefined {
  return wholeNumber(flag, raw, 1);
}

function fraction(flag: string, raw: string | undefined, fallback: number, max: number): number {
  return decimal(flag, raw, 0, max) ?? fallback;
}

/** The `--help` text. */
export const CAPACITY_HELP = `gatehouse capacity [options]

The memory a deployment needs, from measured figures.

Load (one of):
  --connections-per-node <n>     connections each node holds
  --users <n> --nodes <k>        total users spread over k nodes
  --users <n> with --connections-per-node also prints the nodes needed
  --connections-per-user <f>     connections per user (default 1; tabs, devices)

Bytes per connection (one of):
  --bytes-per-connection <size>  measured gateway memory per connection (8192, 5.6KB, 6KiB)
  --from <bench.json>            read it from "gatehouse bench idle --json <file>"
                                 (gateway.memoryPerConnectionBytes; the process base memory from
                                 gateway.rssBeforeBytes / gateway.processes)

  Every bench scenario reads memory at the same point (connections open, subscribed and
  settled, before the scenario's own work), so --from takes any of them; idle is the one made
  for sizing. fanout and channels leave out bytes queued while publishing, storm the reconnect
  peak: the plan says so. Below ${MIN_TRUSTED_CONNECTIONS_PER_PROCESS.toLocaleString('en-US')} connections per gateway process the figure overstates
  memory per connection (1.5 times at 5,000, 2.2 at 1,000 in docs/benchmarks.md): the plan
  warns. Anything but a bench document is refused.

Other figures:
  --kernel-bytes-per-socket <size>   kernel memory per idle TCP socket (default ${DEFAULT_KERNEL_BYTES_PER_SOCKET}: the slab
                                     objects of one socket on Linux x86-64 - TCP 2368 + sock_inode_cache 832
                                     + filp 192 + dentry 192 + eventpoll 200 = ~3.8 KB, measured 4.2-4.3 KB
                                     by the bench; sockets with unsent data hold their send buffer on top)
  --process-base-bytes <size>        resident memory of one gateway process with no connections
                                     (default: from --from, else ${DEFAULT_PROCESS_BASE_BYTES / 1024 / 1024} MiB)
  --connections-per-process <n>      connections one gateway process holds (default ${MAX_SOCKETS_PER_PROCESS}: open-file limit)
  --headroom <fraction>              memory on top of the need (default ${DEFAULT_HEADROOM}: 30%)
  --json                             print the plan as JSON (warnings also go to stderr)
  --html <file>                      also write the plan as a self-contained HTML page with a chart
  -h, --help                         this text`;

/** Parsed `gatehouse capacity` arguments: the math's input and where the plan goes. */
export interface CapacityArgs {
  input: CapacityInput;
  json: boolean;
  htmlFile: string | undefined;
}

/** Parses `gatehouse capacity` arguments into the math's input. */
export function parseCapacityArgs(argv: string[]): CapacityArgs | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'connections-per-node': { type: 'string' },
        users: { type: 'string' },
        nodes: { type: 'string' },
        'connections-per-user': { type: 'string' },
        'bytes-per-connection': { type: 'string' },
        from: { type: 'string' },
        'kernel-bytes-per-socket': { type: 'string' },
        'process-base-bytes': { type: 'string' },
        'connections-per-process': { type: 'string' },
        headroom: { type: 'string' },
        json: { type: 'boolean' },
        html: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values['help']) return 'help';
  const s = (k: string) => values[k] as string | undefined;
  const connectionsPerNode = count('connections-per-node', s('connections-per-node'));
  const users = count('users', s('users'));
  const nodes = count('nodes', s('nodes'));
  if (connectionsPerNode !== undefined && nodes !== undefined) {
    throw new UsageError('--connections-per-node and --nodes contradict each other: give --connections-per-node, or --users with --nodes');
  }
  if (connectionsPerNode === undefined && (users === undefined || nodes === undefined)) {
    throw new UsageError(
      users !== undefined
        ? '--users needs --nodes (or --connections-per-node) to divide the connections'
        : nodes !== undefined
          ? '--nodes needs --users'
          : 'say how many connections: --connections-per-node <n>, or --users <n> with --nodes <k>',
    );
  }
  const bytesFlag = s('bytes-per-connection');
  const from = s('from');
  if ((bytesFlag === undefined) === (from === undefined)) {
    throw new UsageError('give exactly one of --bytes-per-connection <size> and --from <bench.json>');
  }
  const bench = from !== undefined ? readBenchSample(from) : undefined;
  const bytesPerConnection =
    bytesFlag !== undefined ? parseSize('bytes-per-connection', bytesFlag) : (bench as BenchSample).bytesPerConnection;
  if (bytesPerConnection <= 0) throw new UsageError(`--bytes-per-connection must be positive, got ${JSON.stringify(bytesFlag)}`);
  const kernel = s('kernel-bytes-per-socket');
  const base = s('process-base-bytes');
  const input: CapacityInput = {
    ...(connectionsPerNode !== undefined ? { connectionsPerNode } : {}),
    ...(users !== undefined ? { users } : {}),
    ...(nodes !== undefined ? { nodes } : {}),
    connectionsPerUser: fraction('connections-per-user', s('connections-per-user'), 1, 1000),
    bytesPerConnection,
    kernelBytesPerSocket: kernel !== undefined ? parseSize('kernel-bytes-per-socket', kernel) : DEFAULT_KERNEL_BYTES_PER_SOCKET,
    processBaseBytes: base !== undefined ? parseSize('process-base-bytes', base) : (bench?.processBaseBytes ?? DEFAULT_PROCESS_BASE_BYTES),
    connectionsPerProcess: count('connections-per-process', s('connections-per-process')) ?? MAX_SOCKETS_PER_PROCESS,
    headroom: fraction('headroom', s('headroom'), DEFAULT_HEADROOM, 10),
    source: from !== undefined ? from : '--bytes-per-connection',
    ...(bench !== undefined ? { sample: bench } : {}),
  };
  if (input.connectionsPerUser <= 0) throw new UsageError('--connections-per-user must be above 0');
  const htmlFile = s('html');
  if (htmlFile === '') throw new UsageError('--html needs a file name');
  return { input, json: values['json'] === true, htmlFile };
}

function gib(b: number): string {
  return b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(2)} GiB` : `${(b / 1024 ** 2).toFixed(1)} MiB`;
}

function n(v: number): string {
  return v.toLocaleString('en-US');
}

function sampleSize(b: BenchSample): string {
  const size = b.connections === null ? 'an unknown number of connections' : `${n(b.connections)} connections`;
  const procs = b.processes === null ? '' : ` on ${b.processes} gateway process${b.processes === 1 ? '' : 'es'}`;
  return `${size}${procs} (bench ${b.scenario})`;
}

/** The plan as text; `withWarnings: false` leaves the warnings to whoever shows them apart. */
export function capacityText(plan: CapacityPlan, withWarnings = true): string {
  const i = plan.input;
  const lines: string[] = [];
  const head =
    plan.totalConnections !== null
      ? `${n(plan.totalConnections)} connections (${n(i.users as number)} users x ${i.connectionsPerUser})${i.nodes ? ` over ${n(i.nodes)} nodes` : ''}`
      : `${n(plan.connectionsPerNode)} connections per node`;
  lines.push(`capacity: ${head}`);
  if (withWarnings) for (const w of plan.warnings) lines.push(`  warning: ${w}`);
  lines.push(`  connections per node        ${n(plan.connectionsPerNode)}`);
  lines.push(`  gateway processes per node  ${plan.processesPerNode} (at most ${n(i.connectionsPerProcess)} connections each)`);
  lines.push(
    `  per connection              ${n(i.bytesPerConnection)} B gateway (${i.source}) + ${n(i.kernelBytesPerSocket)} B kernel = ${n(plan.perConnectionBytes)} B`,
  );
  if (i.sample) lines.push(`  measured over               ${sampleSize(i.sample)}`);
  lines.push(
    `  RAM per node                ${gib(plan.nodeBytes)} (${plan.processesPerNode} x ${gib(i.processBaseBytes)} process base + ${n(plan.connectionsPerNode)} x ${n(plan.perConnectionBytes)} B)`,
  );
  lines.push(
    `  with headroom               ${gib(plan.nodeBytesWithHeadroom)} (headroom ${gib(plan.headroomBytes)}, ${Math.round(i.headroom * 100)}%)`,
  );
  if (plan.nodesNeeded !== null) lines.push(`  nodes needed                ${n(plan.nodesNeeded)}`);
  if (plan.oneNodeLost) {
    const o = plan.oneNodeLost;
    lines.push(
      `  if one node is lost         the others carry ${n(o.connectionsPerNode)} each: ${gib(o.nodeBytes)} (${o.fitsInHeadroom ? 'within' : 'BEYOND'} the headroom)`,
    );
  }
  return lines.join('\n');
}

const defaultIo: BenchIo = { out: (t) => process.stdout.write(t + '\n'), err: process.stderr };

/** Runs `gatehouse capacity`; resolves with the exit code (2 for usage mistakes, naming the flag). */
export async function capacityMain(argv: string[], io: BenchIo = defaultIo): Promise<number> {
  try {
    const parsed = parseCapacityArgs(argv);
    if (parsed === 'help') {
      io.out(CAPACITY_HELP);
      return 0;
    }
    const plan = capacityPlan(parsed.input);
    if (parsed.json) {
      // stdout stays one JSON document; a person reading the terminal still sees the warnings.
      for (const w of plan.warnings) io.err.write(`warning: ${w}\n`);
      io.out(JSON.stringify(plan, null, 2));
    } else {
      io.out(capacityText(plan));
    }
    if (parsed.htmlFile !== undefined) {
      try {
        writeFileSync(parsed.htmlFile, capacityHtml(plan, capacityText(plan, false)));
      } catch (err) {
        throw new Error(`--html ${parsed.htmlFile}: cannot write the page (${(err as Error).message})`, { cause: err });
      }
      io.err.write(`wrote ${parsed.htmlFile}\n`);
    }
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err.write(`gatehouse capacity: ${err.message}\nRun "gatehouse capacity --help" for the options.\n`);
      return 2;
    }
    io.err.write(`gatehouse capacity: ${(err as Error).message}\n`);
    return 1;
  }
}
