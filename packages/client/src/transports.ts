/**
 * Which transport the next connection attempt uses. The list (default: WebSocket, HTTP streaming,
 * then SSE where `EventSource` exists) is walked when a connection dies before `connected` without a
 * close from the server (a blocked upgrade, a middlebox that kills the socket, a stalled handshake).
 * While on a fallback, a WebSocket is probed after `websocketRetryMs` (doubling after each failed
 * probe, at most 30 minutes); when one opens, the client moves back to WebSocket through an ordinary
 * reconnect, whose recovery loses and repeats nothing.
 */
import { HttpStreamSocket, SseSocket, sseAvailable } from './stream-socket.js';
import type { WebSocketConstructor, WebSocketLike } from './transport.js';

/** The transports the SDK speaks. */
export type TransportKind = 'websocket' | 'http-stream' | 'sse';

export const TRANSPORT_KINDS: readonly TransportKind[] = ['websocket', 'http-stream', 'sse'];

/** Longest wait between two WebSocket probes while on a fallback. */
const MAX_PROBE_MS = 30 * 60_000;

/** Picks the transport of each attempt and finds the way back to WebSocket. */
export class TransportChooser {
  private readonly list: TransportKind[];
  private index = 0;
  private probeTimer: ReturnType<typeof setTimeout> | undefined;
  private probeMs: number;
  private probe: WebSocketLike | undefined;

  constructor(
    list: readonly TransportKind[],
    private readonly WebSocket: WebSocketConstructor | undefined,
    private readonly retryMs: number,
  ) {
    this.list = list.filter((k) => (k === 'sse' ? sseAvailable() : k === 'websocket' ? WebSocket !== undefined : true));
    if (this.list.length === 0) this.list = ['http-stream'];
    this.probeMs = retryMs;
  }

  /** The transport the next attempt uses. */
  get current(): TransportKind {
    return this.list[this.index] as TransportKind;
  }

  /** Opens the current transport to `url` (the gateway's `/ws` URL). */
  open(url: string): WebSocketLike {
    switch (this.current) {
      case 'websocket':
        return new (this.WebSocket as WebSocketConstructor)(url);
      case 'http-stream':
        return new HttpStreamSocket(url);
      case 'sse':
        return new SseSocket(url);
    }
  }

  /**
   * A connection ended. One that never reached `connected` and was not closed by the server (an
   * abnormal close) moves to the next transport of the list.
   */
  lost(wasReady: boolean, code: number): void {
    this.stopProbe();
    if (wasReady || (code !== 1006 && code !== 1002 && code !== 1015)) return;
    this.index = (this.index + 1) % this.list.length;
  }

  /**
   * A connection reached `connected`. On a fallback, schedules the WebSocket probe; `switchBack` is
   * called once a WebSocket opens (the caller reconnects, which now picks WebSocket).
   */
  connected(url: string, switchBack: () => void): void {
    this.stopProbe();
    if (this.current === 'websocket' || this.list[0] !== 'websocket') {
      if (this.current === 'websocket') this.probeMs = this.retryMs;
      return;
    }
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      let ws: WebSocketLike;
      try {
        ws = new (this.WebSocket as WebSocketConstructor)(url);
      } catch {
        return;
      }
      this.probe = ws;
      ws.onopen = () => {
        this.probe = undefined;
        ws.onclose = null;
        ws.close(1000, 'probe');
        this.index = 0;
        // Back off the next probe in case WebSocket dies again before `connected` (a middlebox that
        // lets the upgrade through and kills the socket); a connected WebSocket resets it.
        this.probeMs = Math.min(MAX_PROBE_MS, this.probeMs * 2);
        switchBack();
      };
      ws.onerror = () => {};
      ws.onclose = () => {
        if (this.probe !== ws) return;
        this.probe = undefined;
        this.probeMs = Math.min(MAX_PROBE_MS, this.probeMs * 2);
        this.connected(url, switchBack);
      };
    }, this.probeMs);
  }

  /** Stops a pending or running probe. */
  stopProbe(): void {
    clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    const p = this.probe;
    this.probe = undefined;
    if (p) {
      p.onopen = null;
      p.onclose = null;
      try {
        p.close();
      } catch {
        // not open yet
      }
    }
  }
}
