/**
 * One client connection. Kept deliberately small (it is multiplied by every connection on the
 * node): the transport, what the token granted, the channels, and an outbound queue that only
 * holds what was queued since the last flush. The hub owns the delivery fields, the protocol
 * handler the rest; nothing outside the server package sees a Session.
 */
import type { Grant } from './auth.js';
import type { Publication } from './backbone.js';
import type { Transport, TransportListener } from './transport.js';

/** What handles a session's transport events (the protocol handler; one for all sessions). */
export interface SessionHandler {
  onMessage(s: Session, data: Buffer, isBinary: boolean): void;
  onPing(s: Session, data: Buffer): void;
  onClose(s: Session, code: number): void;
  onError(s: Session, err: Error & { code?: string }): void;
}

/** Lifecycle of a session. */
export const enum SessionState {
  /** Connected, waiting for the `connect` frame. */
  Authenticating = 0,
  /** `connect` accepted. */
  Open = 1,
  /** A close was started; nothing more is queued or read. */
  Closing = 2,
  /** `connect` arrived and its token is being verified; frames that follow it wait in `held`. */
  Connecting = 3,
}

/**
 * A connected client. It listens to its own transport and hands events to the shared handler, so a
 * connection costs no closures.
 */
export class Session implements TransportListener {
  state = SessionState.Authenticating;
  /** Assigned at connect: `<node>-<n>`. */
  id = '';
  grant: Grant | undefined;
  /** When `connect` was accepted, ms since the epoch (0 before). */
  openedAt = 0;
  /** The client protocol, for the `protocol` label of the connection metrics (a prototype getter: no per-session cost). */
  get protocol(): string {
    return 'gatehouse';
  }

  // ---- delivery (the hub) ----
  /** Channels this session is subscribed to (a small array: at most maxSubscriptions; replaced, not grown, on subscribe). */
  channels: string[] = [];
  /**
   * Channels whose subscription is still replaying history: live publications for them wait here
   * and are merged after the replay (recovery.ts). Allocated only while recovering.
   */
  recovering: Map<string, Publication[]> | undefined;
  /**
   * Channels whose `subscribed` reply named a position this node's hub had not delivered yet (a fill
   * from history was running, or the channel lagged): publications at or below it are skipped for
   * this session. Allocated only then; an entry goes once a publication passes it.
   */
  floors: Map<string, { epoch: string; offset: number }> | undefined;
  /**
   * Frames queued since the last flush: none, one (most ticks: no array, so a tick that queues one
   * frame allocates nothing per connection), or several in order, in an array that other sessions
   * may share and that only outbound.ts changes (see `Outbound.appended`).
   */
  queued: Buffer | Buffer[] | undefined = undefined;
  /** How many frames `queued` holds, and their total size. */
  queuedCount = 0;
  queuedBytes = 0;
  /**
   * The transport's unsent bytes when this tick's first frame was queued; 0 after a batched send
   * the kernel took whole (then it is not read again), -1 after any other write (read it again).
   */
  socketBacklog = 0;
  /** The queue is held until the transport drains (its backlog passed the hub's high-water mark). */
  waitingDrain = false;

  // ---- liveness and limits (heartbeats and the protocol handler) ----
  /** Cleared by each heartbeat, set by any pong or message; a beat that finds it clear closes. */
  alive = true;
  /** Inbound rate windows (start of the current second and count in it). */
  msgWindow = 0;
  msgCount = 0;
  pingWindow = 0;
  pingCount = 0;
  /** Frames that arrived while `connect` was verified, handled in order after it (bounded). */
  held: Buffer[] | undefined;
  /** The close code the server decided, when it started the close (0: the client's or the network's). */
  closeCode = 0;
  /** Operations started and not answered yet (subscribe, publish, refresh). */
  inflight = 0;
  /** A close decided while operations were in flight: sent once they are answered (bounded). */
  closeAfter: { code: number; reason: string } | undefined;
  /** The client was asked to refresh its token. */
  refreshAsked = false;
  authTimer: NodeJS.Timeout | undefined;
  /** Registry shard, which is also the heartbeat slot (beats are spread over the shards). */
  shard = 0;

  constructor(
    readonly transport: Transport,
    private readonly handler: SessionHandler,
  ) {}

  onMessage(data: Buffer, isBinary: boolean): void {
    this.handler.onMessage(this, data, isBinary);
  }

  onAlive(): void {
    this.alive = true;
  }

  onPing(data: Buffer): void {
    this.handler.onPing(this, data);
  }

  onClose(code: number): void {
    this.handler.onClose(this, code);
  }

  onError(err: Error & { code?: string }): void {
    this.handler.onError(this, err);
  }

  /** The client's address. */
  get address(): string {
    return this.transport.remoteAddress;
  }

  /** Drops what is queued (the session is closing, or its queue was written). */
  clearQueued(): void {
    this.queued = undefined;
    this.queuedCount = 0;
    this.queuedBytes = 0;
  }

  /** Writes what is queued through the transport now, in one write, and clears it (a close follows). */
  writeQueued(): void {
    const q = this.queued;
    if (q !== undefined && this.transport.writable) {
      if (Array.isArray(q)) this.transport.writeMany(q, this.queuedBytes);
      else this.transport.write(q);
    }
    this.clearQueued();
  }

  /** Bytes waiting: queued in this tick plus what the transport has not handed to the kernel yet. */
  get pendingBytes(): number {
    return this.queuedBytes + this.transport.bufferedBytes;
  }
}
