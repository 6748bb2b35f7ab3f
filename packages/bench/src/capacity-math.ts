/**
 * The memory math of a deployment from measured figures. Per node: gateway processes (one per
 * 19,000 connections: the open-file limit), each with its base resident memory, plus every
 * connection's gateway bytes and the kernel's bytes for its socket; then headroom on top, the
 * nodes needed, and what a node carries when one of its peers fails.
 */
import type { BenchSample } from './capacity-source.js';

/**
 * Kernel memory per established, idle TCP socket, bytes. The slab objects one socket holds on
 * Linux x86-64 (sizes from /proc/slabinfo on the 6.x kernel where the figures in
 * docs/benchmarks.md were measured): TCP 2,368 + sock_inode_cache 832 + filp 192 + dentry 192 +
 * eventpoll_epi 128 + eventpoll_pwq ~72 = ~3.8 KB; the bench's machine-wide slab growth per socket
 * measured 4,212 to 4,353 B in the issue-16 runs (allocator slack and per-socket objects the list
 * leaves out), so the default is the upper figure, 4.25 KiB. An idle socket holds no packet
 * buffers; a socket with unsent data holds up to its send buffer (net.ipv4.tcp_wmem) more, which is
 * why the gateway caps each outbound queue.
 */
export const DEFAULT_KERNEL_BYTES_PER_SOCKET = 4352;
/**
 * Resident memory of a gateway process with no connections, when no bench JSON says otherwise:
 * measured 61.9 MiB (idle, 15,000, issue 16 in docs/benchmarks.md; 66.7 MB per process over
 * 100,000 earlier), rounded up.
 */
export const DEFAULT_PROCESS_BASE_BYTES = 64 * 1024 * 1024;
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
  /** The bench document read with --from, and what it says against its own figure. */
  sample?: BenchSample;
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
  /** Why the plan may not hold (from the --from sample); empty when nothing is known against it. */
  warnings: string[];
  input: CapacityInput;
}

/** RAM one node needs for `conns` connections, before headroom, and the gateway processes it runs. */
export function nodeBytes(i: CapacityInput, conns: number): { bytes: number; processes: number } {
  const processes = Math.max(1, Math.ceil(conns / i.connectionsPerProcess));
  return { bytes: processes * i.processBaseBytes + conns * (i.bytesPerConnection + i.kernelBytesPerSocket), processes };
}

/** Computes the plan. */
export function capacityPlan(i: CapacityInput): CapacityPlan {
  const total = i.users !== undefined ? Math.ceil(i.users * i.connectionsPerUser) : null;
  const perNode = i.connectionsPerNode ?? Math.ceil((total as number) / (i.nodes as number));
  const { bytes, processes } = nodeBytes(i, perNode);
  const withHeadroom = Math.ceil(bytes * (1 + i.headroom));
  const nodesNeeded = total === null ? null : (i.nodes ?? Math.max(1, Math.ceil(total / perNode)));
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
    warnings: i.sample?.warnings ?? [],
    input: i,
  };
}
