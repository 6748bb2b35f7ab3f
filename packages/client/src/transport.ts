/**
 * The slice of the WebSocket API the SDK uses. Browsers' native WebSocket, Node 22+'s global one
 * and the `ws` package all fit it, so the core never imports a transport.
 */

/** The events the SDK reads: text messages, and the close code and reason. */
export interface SocketMessageEvent {
  readonly data: unknown;
}

/** A close event: RFC 6455 code (1006 when the connection was lost without a close frame). */
export interface SocketCloseEvent {
  readonly code: number;
  readonly reason: string;
}

/**
 * A WebSocket as the SDK sees it. Handler parameters are typed `never` on purpose: every
 * implementation declares its own event classes, and `never` lets any of them fit while the
 * SDK's handlers (which take the shapes above) can still be assigned.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: drop the TCP connection without a close handshake. */
  terminate?: () => void;
  onopen: ((ev: never) => unknown) | null;
  onmessage: ((ev: never) => unknown) | null;
  onclose: ((ev: never) => unknown) | null;
  onerror: ((ev: never) => unknown) | null;
}

/** A WebSocket constructor such as `globalThis.WebSocket` or `ws`'s default export. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** readyState of an open socket (the same in every implementation). */
export const OPEN = 1;
