/**
 * `gatehouse capacity`: the memory math of a deployment from measured figures. Per node:
 * gateway processes (one per 19,000 connections: the open-file limit), each with its base
 * resident memory, plus every connection's gateway bytes and the kernel's bytes for its socket;
 * then headroom on top, the nodes needed, and what a node carries when one of its peers fails.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError, decimal, wholeNumber } from './flags.js';
import { MAX_SOCKETS_PER_PROCESS } from './params.js';
import type { BenchIo } from './bench.js';

/**
 * Kernel memory per established, idle TCP socket, bytes. The slab objects one socket holds on
 * Linux x86-64 (sizes from /proc/slabinfo on the 6.x kernel where the figures in
 * docs/benchmarks.md were measured): TCP 2,368 + sock_inode_cache 832 + filp 192 + dentry 192 +
 * eventpoll_epi 128 + eventpoll_pwq ~72 = ~3.8 KB, rounded up to 4 KiB. An idle socket holds no
 * packet buffers; a socket with unsent data holds up to its send buffer (net.ipv4.tcp_wmem) more,
 * which is why the gateway caps each outbound queue.
 */
export const DEFAULT_KERNEL_BYTES_PER_SOCKET = 4096;
/** Resident memory of a gateway process with no connections, when no bench JSON says otherwise. */
export const DEFAULT_PROCESS_BASE_BYTES = 96 * 1024 * 1024;
/** Extra memory on top of the computed need, as a fraction. */
export const DEFAULT_HEADROOM = 0.3;

/** What the math is given. */
export interface CapacityInput {
  connectionsPerNode?: number;
  users?: number;
  nodes?: number;
  connectionsPerUser: number;
  bytesPerConnection: number;
  kernelBytesPerSocket: number;
  processBaseBytes: number;
  connectionsPerProcess: number;
  headroom: number;
  /** Where bytesPerConnection came from ("--bytes-per-connection" or the bench file). */
  source: string;
}

/** What the math says. */
export interface CapacityPlan {
  totalConnections: number | null;
  connectionsPerNode: number;
  processesPerNode: number;
  perConnectionBytes: number;
  nodeBytes: number;
  nodeBytesWithHeadroom: number;
  headroomBytes: number;
  nodesNeeded: number | null;
  /** With one node lost, what each of the others carries, and whether it fits in the headroom. */
  oneNodeLost: { connectionsPerNode: number; nodeBytes: number; fitsInHeadroom: boolean } | null;
  input: CapacityInput;
}

function nodeBytes(i: CapacityInput, conns: number): { bytes: number; processes: number } {
  const processes = Math.max(1, Math.ceil(conns / i.connectionsPerProcess));
  return { bytes: processes * i.processBaseBytes + conns * (i.bytesPerConnection + i.kernelBytesPerSocket), processes };
}

/** Computes the plan. */
export function capacityPlan(i: CapacityInput): CapacityPlan {
  const total = i.users !== undefined ? Math.ceil(i.users * i.connectionsPerUser) : null;
  const perNode = i.connectionsPerNode ?? Math.ceil((total as number) / (i.nodes as number));
  const { bytes, processes } = nodeBytes(i, perNode);
  const withHeadroom = Math.ceil(bytes * (1 + i.headroom));
  const nodesNeeded = total === null ? null : i.nodes ?? Math.max(1, Math.ceil(total / perNode));
  let oneNodeLost: CapacityPlan['oneNodeLost'] = null;
  if (total !== null && nodesNeeded !== null && nodesNeeded > 1) {
    const carried = Math.ceil(total / (nodesNeeded - 1));
    const b = nodeBytes(i, carried).bytes;
    oneNodeLost = { connectionsPerNode: carried, nodeBytes: b, fitsInHeadroom: b <= withHeadroom };
  }
  return {
    totalConnections: total,
    connectionsPerNode: perNode,
    processesPerNode: processes,
    perConnectionBytes: i.bytesPerConnection + i.kernelBytesPerSocket,
    nodeBytes: bytes,
    nodeBytesWithHeadroom: withHeadroom,
    headroomBytes: withHeadroom - bytes,
    nodesNeeded,
    oneNodeLost,
    input: i,
  };
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1000, kb: 1000, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };

/** Parses a byte size: `8192`, `5.6KB`, `6KiB`, `2GiB`. */
export function parseSize(flag: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw.trim());
  const unit = m ? UNITS[(m[2] as string).toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new UsageError(`--${flag} must be a size in bytes (e.g. 8192, 5.6KB, 6KiB), got ${JSON.stringify(raw)}`);
  return Math.round(Number(m[1]) * unit);
}

function count(flag: string, raw: string | undefined): number | undefined {
  return wholeNumber(flag, raw, 1);
}

function fraction(flag: string, raw: string | undefined, fallback: number, max: number): number {
  return decimal(flag, raw, 0, max) ?? fallback;
}

/** What a bench JSON document offers to the capacity math. */
interface BenchFigures {
  bytesPerConnection: number;
  processBaseBytes: number | undefined;
}

function readBenchFile(file: string): BenchFigures {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--from ${file}: cannot read a JSON document (${(err as Error).message})`);
  }
  const gw = (doc as { gateway?: { memoryPerConnectionBytes?: unknown; rssBeforeBytes?: unknown; processes?: unknown } } | null)?.gateway;
  const b = gw?.memoryPerConnectionBytes;
  if (typeof b !== 'number' || !(b > 0)) {
    throw new UsageError(`--from ${file}: gateway.memoryPerConnectionBytes is missing or not positive (write the file with "gatehouse bench idle --json ${file}")`);
  }
  const base = gw?.rssBeforeBytes;
  const procs = gw?.processes;
  return {
    bytesPerConnection: b,
    processBaseBytes: typeof base === 'number' && typeof procs === 'number' && procs > 0 ? Math.round(base / procs) : undefined,
  };
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
                                 (gateway.memoryPerConnectionBytes; also the process base memory)

Other figures:
  --kernel-bytes-per-socket <size>   kernel memory per idle TCP socket (default ${DEFAULT_KERNEL_BYTES_PER_SOCKET}: the slab
                                     objects of one socket on Linux x86-64 - TCP 2368 + sock_inode_cache 832
                                     + filp 192 + dentry 192 + eventpoll 200 = ~3.8 KB; sockets with unsent
                                     data hold their send buffer on top)
  --process-base-bytes <size>        resident memory of one gateway process with no connections
                                     (default: from --from, else ${DEFAULT_PROCESS_BASE_BYTES / 1024 / 1024} MiB)
  --connections-per-process <n>      connections one gateway process holds (default ${MAX_SOCKETS_PER_PROCESS}: open-file limit)
  --headroom <fraction>              memory on top of the need (default ${DEFAULT_HEADROOM}: 30%)
  --json                             print the plan as JSON
  -h, --help                         this text`;

/** Parses `gatehouse capacity` arguments into the math's input. */
export function parseCapacityArgs(argv: string[]): CapacityInput | 'help' | { json: true; input: CapacityInput } {
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
  const bench = from !== undefined ? readBenchFile(from) : undefined;
  const bytesPerConnection = bytesFlag !== undefined ? parseSize('bytes-per-connection', bytesFlag) : (bench as BenchFigures).bytesPerConnection;
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
  };
  if (input.connectionsPerUser <= 0) throw new UsageError('--connections-per-user must be above 0');
  return values['json'] ? { json: true, input } : input;
}

function gib(b: number): string {
  return b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(2)} GiB` : `${(b / 1024 ** 2).toFixed(1)} MiB`;
}

function n(v: number): string {
  return v.toLocaleString('en-US');
}

/** The plan as text. */
export function capacityText(plan: CapacityPlan): string {
  const i = plan.input;
  const lines: string[] = [];
  const head =
    plan.totalConnections !== null
      ? `${n(plan.totalConnections)} connections (${n(i.users as number)} users x ${i.connectionsPerUser})${i.nodes ? ` over ${n(i.nodes)} nodes` : ''}`
      : `${n(plan.connectionsPerNode)} connections per node`;
  lines.push(`capacity: ${head}`);
  lines.push(`  connections per node        ${n(plan.connectionsPerNode)}`);
  lines.push(`  gateway processes per node  ${plan.processesPerNode} (at most ${n(i.connectionsPerProcess)} connections each)`);
  lines.push(`  per connection              ${n(i.bytesPerConnection)} B gateway (${i.source}) + ${n(i.kernelBytesPerSocket)} B kernel = ${n(plan.perConnectionBytes)} B`);
  lines.push(`  RAM per node                ${gib(plan.nodeBytes)} (${plan.processesPerNode} x ${gib(i.processBaseBytes)} process base + ${n(plan.connectionsPerNode)} x ${n(plan.perConnectionBytes)} B)`);
  lines.push(`  with headroom               ${gib(plan.nodeBytesWithHeadroom)} (headroom ${gib(plan.headroomBytes)}, ${Math.round(i.headroom * 100)}%)`);
  if (plan.nodesNeeded !== null) lines.push(`  nodes needed                ${n(plan.nodesNeeded)}`);
  if (plan.oneNodeLost) {
    const o = plan.oneNodeLost;
    lines.push(`  if one node is lost         the others carry ${n(o.connectionsPerNode)} each: ${gib(o.nodeBytes)} (${o.fitsInHeadroom ? 'within' : 'BEYOND'} the headroom)`);
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
    if ('json' in parsed) {
      io.out(JSON.stringify(capacityPlan(parsed.input), null, 2));
      return 0;
    }
    io.out(capacityText(capacityPlan(parsed)));
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
