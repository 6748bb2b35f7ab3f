/**
 * Lean stream connections for `--transport sse|http-stream`: a raw TCP socket that opens
 * `GET /sse?channel=...` (the gateway connects and subscribes it) or `POST /stream` with the
 * connect and subscribe frames in the body, decodes the chunked response by hand and counts
 * publications by their stamp, like the lean WebSocket connection. No pongs: a stream's liveness is
 * its bytes leaving the gateway.
 */
import { connect as tcpConnect } from 'node:net';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Endpoint, LoadConnection, LoadStats } from './load.js';

const HANDSHAKE_TIMEOUT_MS = 15_000;

const enum StreamState {
  Connecting = 0,
  Headers = 1,
  Subscribing = 2,
  Subscribed = 3,
  Closed = 4,
}

const STATE_NAMES = ['connecting', 'response headers', 'subscribing', 'subscribed', 'closed'];

/** One stream subscribed to one channel. */
export class StreamConnection implements LoadConnection {
  private state = StreamState.Connecting;
  private readonly socket: Socket;
  private head = '';
  private sizeLine = '';
  private chunkLeft = 0;
  private skip = 0;
  private line = '';
  private lastOffset = 0;
  private counted = false;

  constructor(
    private readonly stats: LoadStats,
    private readonly channelIndex: number,
    channel: string,
    endpoint: Endpoint,
    localAddress: string | undefined,
  ) {
    stats.started++;
    const host = `${endpoint.host}:${endpoint.port}`;
    let request: string;
    if (endpoint.path === '/sse') {
      request = `GET /sse?channel=${encodeURIComponent(channel)} HTTP/1.1\r\nhost: ${host}\r\naccept: text/event-stream\r\n\r\n`;
    } else {
      const body = `{"op":"connect","id":1,"v":1}\n${JSON.stringify({ op: 'subscribe', id: 2, channel })}`;
      request = `POST /stream HTTP/1.1\r\nhost: ${host}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    }
    const s = tcpConnect({ host: endpoint.host, port: endpoint.port, ...(localAddress ? { localAddress } : {}) });
    this.socket = s;
    s.setNoDelay(true);
    s.setTimeout(HANDSHAKE_TIMEOUT_MS);
    s.once('connect', () => {
      stats.open++;
      this.counted = true;
      this.state = StreamState.Headers;
      s.write(request);
    });
    s.on('data', (chunk: Buffer) => this.data(chunk));
    s.on('timeout', () => this.failed(`no ${STATE_NAMES[this.state] ?? 'reply'} within ${HANDSHAKE_TIMEOUT_MS / 1000} s`));
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (this.state === StreamState.Subscribed) stats.note(err.code ?? err.message);
      else this.failed(err.code ?? err.message);
    });
    s.once('close', () => this.closed());
  }

  get gone(): boolean {
    return this.state === StreamState.Closed;
  }

  get stateName(): string {
    return STATE_NAMES[this.state] ?? String(this.state);
  }

  private data(chunk: Buffer): void {
    const now = performance.timeOrigin + performance.now();
    let i = 0;
    if (this.state === StreamState.Headers) {
      this.head += chunk.toString('latin1');
      const end = this.head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = /^HTTP\/1\.1 (\d{3})/.exec(this.head)?.[1];
      if (status !== '200') return this.failed(`HTTP ${status ?? '?'}`);
      i = chunk.length - (this.head.length - end - 4);
      this.head = '';
      this.state = StreamState.Subscribing;
    }
    // Chunked transfer encoding, by hand.
    while (i < chunk.length && this.state !== StreamState.Closed) {
      if (this.chunkLeft > 0) {
        const n = Math.min(this.chunkLeft, chunk.length - i);
        this.text(chunk.toString('utf8', i, i + n), now);
        i += n;
        this.chunkLeft -= n;
        if (this.chunkLeft === 0) this.skip = 2;
        continue;
      }
      if (this.skip > 0) {
        i++;
        this.skip--;
        continue;
      }
      const nl = chunk.indexOf(10, i);
      if (nl < 0) {
        this.sizeLine += chunk.toString('latin1', i);
        return;
      }
      const size = parseInt(this.sizeLine + chunk.toString('latin1', i, nl), 16);
      this.sizeLine = '';
      i = nl + 1;
      if (size === 0) return void this.socket.destroy();
      this.chunkLeft = size;
    }
  }

  /** Payload text: complete lines are frames (SSE: their `data: ` lines). */
  private text(t: string, now: number): void {
    let start = 0;
    let nl: number;
    while ((nl = t.indexOf('\n', start)) >= 0) {
      const line = this.line + t.slice(start, nl);
      this.line = '';
      start = nl + 1;
      this.frame(line.startsWith('data: ') ? line.slice(6) : line, now);
    }
    this.line += t.slice(start);
  }

  private frame(json: string, now: number): void {
    if (!json.startsWith('{"op":"')) return;
    const stats = this.stats;
    if (json.startsWith('{"op":"pub"')) {
      stats.received++;
      stats.latency.record(now - numberAfter(json, '"ts":'));
      const offset = numberAfter(json, '"offset":');
      if (offset !== 0) {
        if (this.lastOffset !== 0 && offset !== this.lastOffset + 1) stats.outOfOrder++;
        this.lastOffset = offset;
      }
    } else if (json.startsWith('{"op":"subscribed"') && this.state === StreamState.Subscribing) {
      this.state = StreamState.Subscribed;
      this.socket.setTimeout(0);
      this.lastOffset = numberAfter(json, '"offset":');
      stats.subscribedTo(this.channelIndex, 1);
    } else if (json.startsWith('{"op":"close"')) {
      const code = numberAfter(json, '"code":');
      stats.closeCode(code);
      if (this.state !== StreamState.Subscribed) stats.note(`closed ${code}`);
    } else if (json.startsWith('{"op":"error"') && this.state !== StreamState.Subscribed) {
      this.failed(`error ${json.slice(0, 100)}`);
    }
  }

  private failed(reason: string): void {
    if (this.state === StreamState.Closed) return;
    if (this.state !== StreamState.Subscribed) {
      this.stats.fail(reason);
      this.state = StreamState.Closed;
    }
    this.socket.destroy();
  }

  private closed(): void {
    if (this.counted) this.stats.open--;
    this.counted = false;
    if (this.state === StreamState.Subscribed) {
      this.stats.subscribedTo(this.channelIndex, -1);
      if (!this.stats.stopping) this.stats.dropped++;
    } else if (this.state !== StreamState.Closed && !this.stats.stopping) {
      this.stats.fail('closed before subscribed');
    }
    this.state = StreamState.Closed;
  }

  stop(): void {
    this.socket.end();
  }

  drop(): void {
    this.socket.destroy();
  }
}

/** The number after `key` in `json` (0 when absent). */
function numberAfter(json: string, key: string): number {
  const i = json.indexOf(key);
  return i < 0 ? 0 : parseFloat(json.slice(i + key.length, i + key.length + 24));
}
