/**
 * One channel the application listens to. The subscription outlives connections: it keeps the
 * last stream position it delivered, so after a reconnect the client resubscribes from there and
 * drops anything at or below it.
 */
import type { GapReason, PresenceInfo, PubFrame, StreamPosition, SubscribedFrame } from '@gatehouse/protocol';
import { TypedEmitter, type ListenerErrorHook } from './emitter.js';
import type { GatehouseError } from './errors.js';

/** A publication as the application receives it. */
export interface Publication {
  readonly channel: string;
  /** The stream's epoch; '' when the backbone does not sequence the channel. */
  readonly epoch: string;
  /** Position in the stream; 0 (with epoch '') when unsequenced. */
  readonly offset: number;
  /** When the server accepted the publication (ms since epoch). */
  readonly ts: number;
  readonly data: unknown;
}

/** Payload of `subscribed`: the server confirmed the subscription (again, after a reconnect). */
export interface SubscribedEvent {
  readonly channel: string;
  readonly epoch: string;
  readonly offset: number;
  /** Present on a resubscribe with a position: whether every missed publication follows. */
  readonly recovered?: boolean;
}

/** Payload of `gap`: publications may be missing; the application should reload the channel. */
export interface GapEvent {
  readonly channel: string;
  readonly reason: GapReason;
}

/** Payload of `unsubscribed`: the subscription ended and will not come back by itself. */
export interface UnsubscribedEvent {
  readonly channel: string;
  /**
   * Why: the application asked, the server refused the subscription, the client closed, or the
   * application's backend ended it through the server API (`server`).
   */
  readonly reason: 'unsubscribe' | 'error' | 'closed' | 'server';
}

/** Payload of `join` and `leave`: one connection entered or left the channel (namespaces with `joinLeave`). */
export interface PresenceEvent {
  readonly channel: string;
  /** The connection: its id, its user ('' when anonymous) and its token's `info` claim. */
  readonly info: PresenceInfo;
}

/** Counts of `presenceStats()`: connections and distinct users in the channel, fleet-wide. */
export interface PresenceStats {
  readonly clients: number;
  readonly users: number;
}

/** @internal How a subscription asks the server about its channel's presence. */
export type PresenceQuery = (channel: string, op: 'presence' | 'presence_stats') => Promise<Record<string, unknown>>;

/** Events of a `Subscription`. */
export interface SubscriptionEvents {
  publication: Publication;
  subscribed: SubscribedEvent;
  gap: GapEvent;
  join: PresenceEvent;
  leave: PresenceEvent;
  error: GatehouseError;
  unsubscribed: UnsubscribedEvent;
}

/** The subscription events the client re-emits on itself, so one listener can watch every channel. */
export type RelayedEvents = SubscriptionEvents;

/** @internal How a subscription passes its events on to the client. */
export type Relay = <K extends keyof RelayedEvents>(event: K, payload: RelayedEvents[K]) => void;

/** Where a subscription stands. */
export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed';

/** An unsequenced position (epoch '' and offset 0) carries nothing to deduplicate or recover by. */
export function isSequenced(p: { epoch: string; offset: number }): boolean {
  return !(p.epoch === '' && p.offset === 0);
}

/** A subscription to one channel, created by `GatehouseClient.subscribe`. */
export class Subscription extends TypedEmitter<SubscriptionEvents> {
  #state: SubscriptionState = 'subscribing';
  #position: StreamPosition | undefined;
  /** True once the server confirmed this subscription on some connection. */
  #everSubscribed = false;
  /** A server gap was just reported; the next publication does not report the same break again. */
  #gapReported = false;

  /** @internal Created by the client, which routes frames to it. */
  constructor(
    readonly channel: string,
    private readonly leave: (sub: Subscription) => Promise<void>,
    private readonly relay: Relay,
    onListenerError: ListenerErrorHook,
    private readonly query?: PresenceQuery,
  ) {
    super(onListenerError);
  }

  /**
   * The channel's members across the fleet (its namespace needs `presence`; the subscription must
   * be confirmed). Rejects with a `GatehouseError` (server code, 'not_connected' or 'timeout').
   */
  async presence(): Promise<PresenceInfo[]> {
    if (!this.query) throw new Error('presence needs a client');
    const reply = await this.query(this.channel, 'presence');
    return Array.isArray(reply['members']) ? (reply['members'] as PresenceInfo[]) : [];
  }

  /** Connections and distinct users in the channel across the fleet. */
  async presenceStats(): Promise<PresenceStats> {
    if (!this.query) throw new Error('presence needs a client');
    const reply = await this.query(this.channel, 'presence_stats');
    return { clients: Number(reply['clients']) || 0, users: Number(reply['users']) || 0 };
  }

  /** @internal A `join` or `leave` frame for this channel. */
  presenceChange(kind: 'join' | 'leave', info: PresenceInfo): void {
    if (this.#state !== 'subscribed') return;
    this.#tell(kind, { channel: this.channel, info });
  }

  /** Emits on this subscription, then on the client. */
  #tell<K extends keyof RelayedEvents>(event: K, payload: RelayedEvents[K]): void {
    this.emit(event, payload as SubscriptionEvents[K]);
    this.relay(event, payload);
  }

  /** Where the subscription stands. */
  get state(): SubscriptionState {
    return this.#state;
  }

  /** The last stream position delivered (or confirmed by the server), if any. */
  get position(): StreamPosition | undefined {
    return this.#position && { ...this.#position };
  }

  /**
   * Stops the subscription. Resolves once the server confirmed, or at once when there is no
   * connection (then the server holds nothing to undo). Never rejects: a server error is
   * reported on the client's `error` event.
   */
  unsubscribe(): Promise<void> {
    if (this.#state === 'unsubscribed') return Promise.resolve();
    return this.leave(this);
  }

  /** @internal What to send as `since` when (re)subscribing. */
  recoverFrom(): StreamPosition | undefined {
    return this.#position && isSequenced(this.#position) ? { ...this.#position } : undefined;
  }

  /** @internal The connection dropped: the subscription waits for the next one. */
  suspend(): void {
    if (this.#state === 'subscribed') this.#state = 'subscribing';
  }

  /** @internal The server answered `subscribed` to a request that carried `since` (or not). */
  confirm(frame: SubscribedFrame, since: StreamPosition | undefined): void {
    if (this.#state === 'unsubscribed') return;
    const wasResubscribe = this.#everSubscribed;
    const lastPosition = this.#position;
    this.#state = 'subscribed';
    this.#everSubscribed = true;
    let gap: GapReason | undefined;
    if (since !== undefined) {
      if (frame.recovered === true) {
        // Replayed publications follow; dedupe keeps counting from where we were.
      } else {
        // An answer without `recovered` to a request with `since` is treated as not recovered:
        // a silent gap is the one outcome the protocol forbids.
        gap = frame.epoch !== since.epoch ? 'epoch' : 'history';
        this.#position = { epoch: frame.epoch, offset: frame.offset };
      }
    } else {
      this.#position = { epoch: frame.epoch, offset: frame.offset };
      // A channel without sequence numbers cannot be recovered: after a lost connection the
      // application must assume it missed publications.
      if (wasResubscribe && lastPosition !== undefined && !isSequenced(lastPosition)) gap = 'history';
    }
    const event: SubscribedEvent =
      frame.recovered === undefined
        ? { channel: this.channel, epoch: frame.epoch, offset: frame.offset }
        : { channel: this.channel, epoch: frame.epoch, offset: frame.offset, recovered: frame.recovered };
    this.#tell('subscribed', event);
    if (gap !== undefined) this.#tell('gap', { channel: this.channel, reason: gap });
  }

  /**
   * @internal A `pub` frame for this channel. Delivers it unless it is a duplicate (at or below
   * the last delivered offset in the same epoch) or arrived outside a confirmed subscription.
   * Returns whether it was delivered.
   */
  receive(frame: PubFrame): boolean {
    if (this.#state !== 'subscribed') return false;
    const pub: Publication = { channel: frame.channel, epoch: frame.epoch, offset: frame.offset, ts: frame.ts, data: frame.data };
    if (isSequenced(frame)) {
      const last = this.#position;
      // After a server gap the next publication starts the position afresh, whatever its offset.
      if (!this.#gapReported && last !== undefined && isSequenced(last) && frame.epoch === last.epoch && frame.offset <= last.offset)
        return false;
      this.#position = { epoch: frame.epoch, offset: frame.offset };
      if (last !== undefined && isSequenced(last) && frame.epoch !== last.epoch && !this.#gapReported) {
        // The stream was reset under a live subscription: earlier publications may be gone.
        this.#tell('gap', { channel: this.channel, reason: 'epoch' });
      }
    }
    this.#gapReported = false;
    this.#tell('publication', pub);
    return true;
  }

  /**
   * @internal The server reported lost continuity. The position stays: a reconnect before the
   * next publication must still resubscribe from it (or, unsequenced, still report its own gap);
   * the next publication moves it on without reporting the same break twice.
   */
  markGap(reason: GapReason): void {
    if (this.#state === 'unsubscribed') return;
    this.#gapReported = true;
    this.#tell('gap', { channel: this.channel, reason });
  }

  /** @internal Reports an error about this subscription. */
  fail(error: GatehouseError): void {
    this.#tell('error', error);
  }

  /** @internal Ends the subscription for good. */
  end(reason: UnsubscribedEvent['reason']): void {
    if (this.#state === 'unsubscribed') return;
    this.#state = 'unsubscribed';
    this.#tell('unsubscribed', { channel: this.channel, reason });
  }
}
