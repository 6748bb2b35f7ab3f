/**
 * Commands for a stream held by another node. A stream's id names the node that holds it
 * (`<node>~<random>`), so a POST that lands elsewhere (no sticky sessions) is forwarded to that
 * node as a fleet request (fleet-requests.ts: correlation id, deadline, bounded requests in
 * flight), and its answer comes back to the POST.
 */
import { ApiError } from './http-api.js';
import type { FleetRequests } from './fleet-requests.js';

/** Control message types of streams (beside the core's ControlType). */
export const StreamControlType = {
  /** A node opened an SSE ticket: { nonce } (single use, fleet-wide). */
  TicketUsed: 'stream.ticket.used',
} as const;

/** The fleet request kind that carries a stream's commands: { stream, secret, frames: string[] }. */
const COMMAND_KIND = 'stream.command';
/** How long a forward waits for its answer. */
export const FORWARD_DEADLINE_MS = 2000;
/** The same for a node this one has not heard of (yet). */
export const UNKNOWN_NODE_DEADLINE_MS = 1000;
/** The outcome of handing commands to a stream: an HTTP status and a message for errors. */
export interface CommandResult {
  status: number;
  message: string;
}

/** Hands frames to a local stream. */
export type LocalCommands = (stream: string, secret: string, frames: string[]) => CommandResult;

/** The node a stream id names, or undefined when the id is malformed. */
export function nodeOfStream(stream: string): string | undefined {
  const m = /^([A-Za-z0-9_.-]{1,64})~[A-Za-z0-9_-]{16,64}$/.exec(stream);
  return m ? m[1] : undefined;
}

/** Routes stream commands to the node holding the stream. */
export class StreamRouter {
  constructor(
    private readonly requests: FleetRequests,
    private readonly local: LocalCommands,
    /** True when `node` is a live member of the fleet (announced recently). */
    private readonly isMember: (node: string) => boolean,
  ) {
    requests.handle(COMMAND_KIND, (d) => {
      const frames = Array.isArray(d['frames']) ? (d['frames'] as unknown[]).filter((f): f is string => typeof f === 'string') : [];
      return typeof d['stream'] === 'string' && typeof d['secret'] === 'string'
        ? this.local(d['stream'], d['secret'], frames)
        : { status: 400, message: 'malformed forward' };
    });
  }

  /** Hands `frames` to `stream` wherever it is held. */
  async route(stream: string, secret: string, frames: string[]): Promise<CommandResult> {
    const node = nodeOfStream(stream);
    if (node === undefined) return { status: 404, message: 'no such stream' };
    if (node === this.requests.node) return this.local(stream, secret, frames);
    // A node this one has not heard announce itself may be new (announcements are periodic) or may
    // not exist: forward anyway, but give up sooner and call the stream unknown.
    const member = this.isMember(node);
    const deadline = member ? FORWARD_DEADLINE_MS : UNKNOWN_NODE_DEADLINE_MS;
    let reply;
    try {
      reply = (await this.requests.ask(COMMAND_KIND, { stream, secret, frames }, deadline, node)).replies[0];
    } catch (err) {
      return { status: 503, message: err instanceof ApiError ? err.message : 'control plane unavailable; retry' };
    }
    const r = reply?.result as Partial<CommandResult> | undefined;
    if (r !== undefined && typeof r.status === 'number')
      return { status: r.status, message: typeof r.message === 'string' ? r.message : '' };
    if (reply?.error) return { status: 502, message: reply.error.message };
    return member
      ? { status: 504, message: `the node holding the stream did not answer within ${deadline} ms` }
      : { status: 404, message: 'no such stream (its node did not answer and is not in the fleet)' };
  }
}
