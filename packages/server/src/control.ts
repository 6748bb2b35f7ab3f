/**
 * The node's side of the control plane: control messages dispatched by type to the part of the
 * node that handles them, and sent with this node as their sender. Messages addressed to another
 * node are dropped here (the contract lets every node receive every message).
 */
import type { Logger } from 'pino';
import type { Backbone, ControlMessage } from './backbone.js';

/** Control message types the core uses. Later parts (presence, session commands) add theirs. */
export const ControlType = {
  /** A node's load and health, every announce interval. */
  Announce: 'node.announce',
  /** A token id revoked fleet-wide. */
  Revoke: 'token.revoke',
  /** A node that started asks its peers for the revocations in force (backbones without records). */
  RevocationsRequest: 'token.revocations.request',
  /** A peer's answer to that request. */
  Revocations: 'token.revocations',
} as const;

/** Handles one type of control message; `data` is JSON text from another node: parse defensively. */
export type ControlHandler = (msg: ControlMessage) => void;

/** Routes control messages by type. */
export class ControlPlane {
  private readonly handlers = new Map<string, ControlHandler>();

  constructor(
    private readonly backbone: Backbone,
    /** This node's id: the sender of what it sends, the address it answers to. */
    readonly node: string,
    private readonly log: Logger,
  ) {}

  /** Registers the handler for `type` (one per type). */
  on(type: string, handler: ControlHandler): void {
    if (this.handlers.has(type)) throw new Error(`control type ${type} already has a handler`);
    this.handlers.set(type, handler);
  }

  /** Sends `data` (a JSON-serialisable value) to every node, or to `to` only. */
  send(type: string, data: unknown, to?: string): Promise<void> {
    const json = JSON.stringify(data);
    return this.backbone.sendControl(to === undefined ? { type, from: this.node, data: json } : { type, from: this.node, to, data: json });
  }

  /** The backbone handler's `onControl`: never throws. */
  dispatch(msg: ControlMessage): void {
    if (msg.to !== undefined && msg.to !== this.node) return;
    const handler = this.handlers.get(msg.type);
    if (!handler) return;
    try {
      handler(msg);
    } catch (err) {
      this.log.warn({ err, type: msg.type, from: msg.from }, 'control message handler failed');
    }
  }
}

/** Parses JSON from another node into an object, or undefined. */
export function parseObject(json: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(json);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
