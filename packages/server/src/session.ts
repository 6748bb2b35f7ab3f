/**
 * One client connection. Kept deliberately small (it is multiplied by every connection on the
 * node): the socket, what the token granted, the channels, and an outbound queue that only holds
 * what was queued since the last flush.
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Grant } from './auth.js';
import type { Publication } from './backbone.js';

/** Lifecycle of a session. */
export const enum SessionState {
  /** Upgraded, waiting for the `connect` frame. */
  Authenticating = 0,
  /** `connect` accepted. */
  Open = 1,
  /** A close was started; nothing more is queued or read. */
  Closing = 2,
}

/** A connected client. Fields are public for the hub; nothing outside the server package uses them. */
export class Session {
  state = SessionState.Authenticating;
  /** Assigned at connect: `<node>-<n>`. */
  id = '';
  grant: Grant | undefined;
  /** Channels this session is subscribed to (a small array: at most maxSubscriptions). */
  readonly channels: string[] = [];
  /**
   * Channels whose subscription is still replaying history: live publications for them wait here
   * and are released, deduplicated by offset, after the replay. Allocated only while recovering.
   */
  recovering: Map<string, Publication[]> | undefined;
  /** Frames queued since the last flush, and their total size. */
  readonly queue: Buffer[] = [];
  queuedBytes = 0;
  /** The socket's unsent bytes when this tick's first frame was queued. */
  socketBacklog = 0;
  /** Cleared by each heartbeat, set by any pong or message; a beat that finds it clear closes. */
  alive = true;
  /** Inbound rate windows (start of the current second and count in it). */
  msgWindow = 0;
  msgCount = 0;
  pingWindow = 0;
  pingCount = 0;
  /** The client was asked to refresh its token. */
  refreshAsked = false;
  authTimer: NodeJS.Timeout | undefined;
  /** Heartbeat slot (heartbeats are spread over slots so a beat is not one big burst). */
  slot = 0;

  constructor(
    readonly ws: WebSocket,
    /** The raw socket under `ws`: the hub writes pre-framed bytes straight to it. */
    readonly socket: Duplex & { writableLength: number },
    /** Client address (from the socket, or X-Forwarded-For behind a trusted proxy). */
    readonly address: string,
  ) {}

  /** Bytes waiting: queued in this tick plus what the socket has not handed to the kernel yet. */
  get pendingBytes(): number {
    return this.queuedBytes + this.socket.writableLength;
  }
}
