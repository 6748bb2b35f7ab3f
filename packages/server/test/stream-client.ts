/**
 * Bare stream clients for server tests: an SSE reader and an HTTP-stream reader over node:http,
 * recording every event or frame and the end of the response. Every wait has a deadline.
 */
import { request } from 'node:http';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { waitFor } from '@gatehouse/testkit';
import type { Frame } from './helpers.js';

/** One SSE event as a browser's EventSource would dispatch it. */
export interface SseEvent {
  event: string;
  data: any;
  /** The last event id in force when the event was dispatched. */
  id: string;
}

/** What both readers share: the response, its status, the end. */
abstract class StreamReader {
  status = 0;
  ended = false;
  stream = '';
  secret = '';
  protected res: IncomingMessage | undefined;
  protected buf = '';
  constructor(readonly req: ClientRequest) {
    req.on('response', (res) => {
      this.res = res;
      this.status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        this.buf += chunk;
        this.parse();
      });
      res.on('end', () => (this.ended = true));
      res.on('close', () => (this.ended = true));
      res.on('error', () => (this.ended = true));
    });
    req.on('error', () => (this.ended = true));
  }
  protected abstract parse(): void;

  /** Waits for the status line. */
  async opened(): Promise<number> {
    return waitFor('response status', () => this.status || undefined);
  }

  /** Drops the connection. */
  close(): void {
    this.req.destroy();
    this.res?.destroy();
  }

  /** POSTs frames for this stream (to `port`, which may be another node's). */
  async command(port: number, frames: Frame[], secret = this.secret): Promise<{ status: number; body: any }> {
    const res = await fetch(`http://127.0.0.1:${port}/stream/${this.stream}`, {
      method: 'POST',
      headers: { 'gatehouse-secret': secret },
      body: frames.map((f) => JSON.stringify(f)).join('\n'),
    });
    return { status: res.status, body: await res.json() };
  }
}

/** Reads `GET /sse`. */
export class SseReader extends StreamReader {
  readonly events: SseEvent[] = [];
  lastId = '';
  private ev = { event: '', data: '' };

  static open(port: number, query: string, headers: Record<string, string> = {}): SseReader {
    const req = request({ host: '127.0.0.1', port, path: `/sse${query}`, headers: { accept: 'text/event-stream', ...headers } });
    req.end();
    return new SseReader(req);
  }

  protected parse(): void {
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (line === '') {
        if (this.ev.data !== '') {
          const data = JSON.parse(this.ev.data.slice(0, -1));
          const e = { event: this.ev.event || 'message', data, id: this.lastId };
          if (e.event === 'stream') {
            this.stream = data.stream;
            this.secret = data.secret;
          }
          this.events.push(e);
        }
        this.ev = { event: '', data: '' };
        continue;
      }
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') this.ev.event = value;
      else if (field === 'data') this.ev.data += value + '\n';
      else if (field === 'id') this.lastId = value;
    }
  }

  /** Publications received (the unnamed events). */
  pubs(channel?: string): any[] {
    return this.events.filter((e) => e.event === 'message' && (!channel || e.data.channel === channel)).map((e) => e.data);
  }

  async next(event: string, pred: (d: any) => boolean = () => true, timeoutMs = 10_000): Promise<SseEvent> {
    return waitFor(`SSE event ${event}`, () => this.events.find((e) => e.event === event && pred(e.data)), timeoutMs);
  }
}

/** Reads `POST /stream`. */
export class HttpStreamReader extends StreamReader {
  readonly frames: Frame[] = [];

  static open(port: number, frames: Frame[], headers: Record<string, string> = {}): HttpStreamReader {
    const req = request({ host: '127.0.0.1', port, path: '/stream', method: 'POST', headers });
    req.end(frames.map((f) => JSON.stringify(f)).join('\n'));
    return new HttpStreamReader(req);
  }

  protected parse(): void {
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (line === '') continue;
      const f = JSON.parse(line) as Frame;
      if (f['op'] === 'stream') {
        this.stream = f['stream'];
        this.secret = f['secret'];
      }
      this.frames.push(f);
    }
  }

  async next(op: string, pred: (f: Frame) => boolean = () => true, timeoutMs = 10_000): Promise<Frame> {
    return waitFor(`stream frame ${op}`, () => this.frames.find((f) => f['op'] === op && pred(f)), timeoutMs);
  }
}
