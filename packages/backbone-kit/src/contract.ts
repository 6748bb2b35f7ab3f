/**
 * The backbone contract: how publications move between gateway nodes (the data plane), where
 * channel history lives, and how nodes talk to each other (the control plane). The gateway core
 * reference-counts channel subscriptions and calls `subscribe` once per channel per node; adapters
 * never count.
 *
 * docs/backbones.md explains the contract in prose and what each adapter promises.
 */

/** A publication as it travels through the backbone. */
export interface Publication {
  /** Full channel name, `namespace:name`. */
  readonly channel: string;
  /** Identifies the continuous history this offset belongs to. */
  readonly epoch: string;
  /**
   * Strictly rising within (channel, epoch). Contiguous (+1) when `capabilities.contiguousOffsets`.
   * 0 (with epoch '') when the backbone is not `sequenced`.
   */
  readonly offset: number;
  /** When the publication was accepted, ms since the Unix epoch with a fraction (`nowMs()`). */
  readonly ts: number;
  /** The payload as JSON text. Never parsed by the gateway on the delivery path. */
  readonly data: string;
}

/** Where history retention comes from for one publish (the channel's namespace settings). */
export interface PublishOptions {
  /** Keep at most this many publications for recovery (0: no history kept). */
  readonly historySize: number;
  /** Keep publications for at most this many seconds (0: no time limit beyond size). */
  readonly historyTtlSeconds: number;
}

/** The answer to a history read. */
export interface HistoryResult {
  /** The channel's current position: epoch and the offset of the newest publication (0 if none). */
  readonly epoch: string;
  readonly offset: number;
  /**
   * Publications with offset strictly greater than the requested `after`, oldest first, in the
   * current epoch. Empty when `after` is absent.
   */
  readonly publications: readonly Publication[];
  /**
   * True when `publications` holds every publication after `after` (nothing was trimmed or
   * expired in between and the epoch matched). False means the caller must report a gap.
   */
  readonly complete: boolean;
}

/** Connection state of a backbone, as shown in /readyz and metrics. */
export type BackboneState = 'connecting' | 'up' | 'down' | 'closed';

/** What the backbone calls back into. The gateway core implements it. */
export interface BackboneHandler {
  /**
   * A publication arrived on a channel this node subscribed to (including one this node
   * published: every publication reaches local subscribers through this one path).
   * Must not throw; called in per-channel order.
   */
  onPublication(pub: Publication): void;
  /**
   * The connection state changed. Going `down` then `up` on a backbone without durable delivery
   * means publications may have been missed on every subscribed channel: the core tells clients.
   */
  onStateChange(state: BackboneState, error?: Error): void;
  /**
   * A control message arrived (including one this node sent). Must not throw. Every node receives
   * every control message; one with `to` is meant for that node only, and the core drops the others.
   */
  onControl(msg: ControlMessage): void;
}

/**
 * A message between gateway nodes: fleet announcements, token revocations, presence leases,
 * commands for a session held by another node. Control messages never travel on a data channel
 * and clients never see them.
 */
export interface ControlMessage {
  /** What it is, for example `node.announce` or `token.revoke`: 1-64 characters of a-z 0-9 . _ - */
  readonly type: string;
  /** The node that sent it. */
  readonly from: string;
  /** The node it is meant for; absent: every node. */
  readonly to?: string;
  /** The payload as JSON text, at most `CONTROL_MAX_BYTES` bytes. */
  readonly data: string;
}

/** Largest control payload, bytes (UTF-8). */
export const CONTROL_MAX_BYTES = 64 * 1024;

/**
 * A fleet record: state that must outlive the node that made it (a token revocation). Records of
 * one kind form a keyed set; writing a key again replaces its record.
 */
export interface ControlRecord {
  /** 1-256 characters. */
  readonly key: string;
  /** JSON text, at most `CONTROL_MAX_BYTES` bytes. */
  readonly value: string;
  /** When the record stops counting, ms since the Unix epoch. */
  readonly expiresAt: number;
}

/**
 * Optional: short-lived keys claimed atomically across the fleet (idempotent publish). `scope` is
 * the channel the key belongs to, so an adapter keeps the key beside the channel's data.
 */
export interface ClaimStore {
  /**
   * Stores `value` under (scope, key) for `ttlMs` unless the key is held. Resolves undefined when
   * this call took the key, or with the value held (the first caller's) when it did not.
   */
  claim(scope: string, key: string, value: string, ttlMs: number): Promise<string | undefined>;
  /** Replaces the value of a key this node claimed, for `ttlMs` from now. */
  settle(scope: string, key: string, value: string, ttlMs: number): Promise<void>;
  /** Gives a claimed key up (the work it guarded failed, so a retry may do it). */
  release(scope: string, key: string): Promise<void>;
}

/** What an adapter can promise; the core and the conformance suite read these. */
export interface BackboneCapabilities {
  /**
   * Publications carry a real stream position. False only where the backbone cannot order a
   * channel across publishers (NATS core): offsets are then 0 and the epoch '', clients cannot
   * recover, and every reconnect or backbone outage is reported to them as a gap.
   */
  readonly sequenced: boolean;
  /** Publications are kept for recovery (`history` returns them). */
  readonly history: boolean;
  /** Offsets in a channel rise by exactly one; otherwise only strictly. */
  readonly contiguousOffsets: boolean;
  /** History survives a gateway restart (it lives outside the process). */
  readonly durable: boolean;
  /** Several gateway processes can share this backbone. */
  readonly shared: boolean;
  /**
   * Fleet records (`putRecord`) are kept by the backbone servers and outlive every gateway node.
   * False (NATS core): records are not kept at all; the core learns live records from its peers.
   */
  readonly durableRecords: boolean;
}

/**
 * A message backbone.
 *
 * Semantics every adapter states and the conformance suite checks:
 * - Delivery: a publication accepted by `publish` reaches every node subscribed to its channel
 *   at most once while the backbone is up (at least once is never surfaced: offsets dedupe).
 * - Ordering: per channel, `onPublication` is called in offset order on every node.
 * - Self-delivery: the publishing node receives its own publications through `onPublication`.
 * - `subscribe` and `unsubscribe` are idempotent; `subscribe` resolves once publications on the
 *   channel published after it resolves will be delivered.
 * - History is a barrier: on a node where `channel` is subscribed (its `subscribe` resolved), once
 *   `history(channel, ...)` resolves, `onPublication` is never again called for a publication of
 *   that channel at or below the position it answered (same epoch): each was delivered before the
 *   read resolved or never will be. The core answers a client's subscribe with that position and
 *   forwards what follows, so a later one would reach the client twice.
 * - While unreachable: `publish` rejects (it never silently drops); the adapter reconnects by
 *   itself, re-establishes every subscription, and reports state through `onStateChange`.
 * - Offsets are assigned by the backbone atomically with the publish, so two publishers on two
 *   nodes never get the same offset in a channel.
 *
 * The control plane (`sendControl`, `putRecord`, `records`) is separate from every data channel:
 * - `sendControl` reaches every started node of the fleet (the sender included) through
 *   `onControl`, at most once, with no history and no order across senders. It rejects while the
 *   backbone is down; control messages are never queued for later.
 * - `putRecord` keeps a record where `capabilities.durableRecords` says it is kept; `records`
 *   answers the unexpired records of a kind. Expired records may linger on the servers but are
 *   never answered.
 */
export interface Backbone {
  /** Short name for logs and metrics (`memory`, `redis`, `nats`, `jetstream`, `kafka`). */
  readonly kind: string;
  readonly capabilities: BackboneCapabilities;
  /** Current connection state. */
  readonly state: BackboneState;
  /** Connects and registers the handler. Resolves when the backbone is usable. */
  start(handler: BackboneHandler): Promise<void>;
  /** Publishes `data` (JSON text) to `channel`; resolves with its position once accepted. */
  publish(channel: string, data: string, options: PublishOptions): Promise<Publication>;
  /** Starts delivering `channel`'s publications to the handler. Idempotent. */
  subscribe(channel: string): Promise<void>;
  /** Stops delivering `channel`. Idempotent. */
  unsubscribe(channel: string): Promise<void>;
  /**
   * The channel's position and the publications after `after` (at most `limit`). Without
   * `after`, only the position. A channel never published to has a stable epoch and offset 0.
   */
  history(channel: string, after: { epoch: string; offset: number } | undefined, limit: number): Promise<HistoryResult>;
  /** Sends a control message to every node of the fleet (see the control plane above). */
  sendControl(msg: ControlMessage): Promise<void>;
  /** Keeps `record` under `kind` (1-64 characters of a-z 0-9 . _ -); replaces the same key. */
  putRecord(kind: string, record: ControlRecord): Promise<void>;
  /** The unexpired records of `kind`; empty where `capabilities.durableRecords` is false. */
  records(kind: string): Promise<ControlRecord[]>;
  /** Disconnects. Pending operations reject. Idempotent. */
  close(): Promise<void>;
  /** Optional atomic claims (Redis: SET NX); without them the core routes claims to one owner node. */
  readonly claims?: ClaimStore;
  /**
   * Optional counters of the adapter's own (reconnects, publish errors, malformed messages, ...):
   * every numeric field is exported as `gatehouse_backbone_stat{stat="<field>"}`.
   */
  stats?(): object;
}

/**
 * Wall-clock time in ms with a sub-millisecond fraction: the stamp every adapter puts on a
 * publication it accepts, and what publish-to-delivery latency is measured against.
 */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Thrown by adapters when the backbone cannot take an operation now. */
export class BackboneUnavailableError extends Error {
  override readonly name = 'BackboneUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
