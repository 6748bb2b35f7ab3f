/**
 * The fallback transports as `WebSocketLike`s, so the client core drives them exactly as it drives
 * a WebSocket (same frames, same recovery):
 *
 * - `HttpStreamSocket`: `POST /stream` answered by a chunked response of protocol v1 frames, one
 *   per line, read with `fetch` streams; the first frames sent (connect, subscribes) ride in that
 *   request's body.
 * - `SseSocket`: the browser's `EventSource` on `GET /sse` (a token is traded for a single-use
 *   ticket first, so it never appears in a URL).
 *
 * Both send later frames as `POST /stream/<id>` with the stream's secret, one request at a time so
 * frames keep their order. Works wherever `fetch` streams (and, for SSE, `EventSource`) exist:
 * browsers and Node 20+.
 */
import { OPEN, type WebSocketLike } from './transport.js';

const CONNECTING = 0;
const CLOSED = 3;
/** Bytes of frames one command POST carries at most (a larger frame goes alone). */
const POST_BYTES = 32 * 1024;

/** The HTTP base (`http(s)://host[/prefix]`) for a `ws(s)://host[/prefix]/ws` URL. */
export function httpBase(url: string): string {
  const u = new URL(url);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = u.pathname.replace(/\/ws\/?$/, '').replace(/\/$/, '');
  u.search = '';
  u.hash = '';
  return u.toString().replace(/\/$/, '');
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** What both stream sockets share: WebSocketLike events, the command POSTs, the close. */
abstract class StreamSocketBase implements WebSocketLike {
  readyState = CONNECTING;
  onopen: ((ev: object) => unknown) | null = null;
  onmessage: ((ev: { data: string }) => unknown) | null = null;
  onclose: ((ev: { code: number; reason: string }) => unknown) | null = null;
  onerror: ((ev: { message: string }) => unknown) | null = null;
  protected readonly base: string;
  protected readonly abort = new AbortController();
  protected stream = '';
  protected secret = '';
  protected readonly outbox: string[] = [];
  private posting = false;
  private postFailures = 0;

  constructor(url: string) {
    this.base = httpBase(url);
    // Like a WebSocket, events start after the constructor returns.
    setTimeout(() => {
      if (this.readyState !== CONNECTING) return;
      this.readyState = OPEN;
      this.onopen?.({});
      this.begin();
    }, 0);
  }

  /** Opens the downstream; frames sent in `onopen` wait in `outbox`. */
  protected abstract begin(): void;

  send(data: string): void {
    if (this.readyState !== OPEN) throw new Error('stream is not open');
    this.outbox.push(data);
    void this.flush();
  }

  close(code = 1000, reason = ''): void {
    this.end(code, reason);
  }

  terminate(): void {
    this.end(1006, 'terminated');
  }

  /** The stream said who it is: later frames go by POST. */
  protected identified(stream: string, secret: string): void {
    this.stream = stream;
    this.secret = secret;
    void this.flush();
  }

  /** Hands one server frame (JSON text) to the core, or ends the socket on a close frame. */
  protected frame(text: string): void {
    if (this.readyState !== OPEN) return;
    if (text.startsWith('{"op":"close"')) {
      let code = 1006;
      let reason = '';
      try {
        const f = JSON.parse(text) as { code?: unknown; reason?: unknown };
        if (typeof f.code === 'number') code = f.code;
        if (typeof f.reason === 'string') reason = f.reason;
      } catch {
        // keep 1006
      }
      this.end(code, reason);
      return;
    }
    // The gap an SSE stream adds after `subscribed` with `recovered: false`: the core reports that one.
    if (text.startsWith('{"op":"gap"') && text.endsWith('"resume":true}')) return;
    if (text.startsWith('{"op":"stream"')) {
      const f = JSON.parse(text) as { stream: string; secret: string };
      this.identified(f.stream, f.secret);
      return;
    }
    this.onmessage?.({ data: text });
  }

  /** Sends what waits, one POST at a time (order is kept). */
  private async flush(): Promise<void> {
    if (this.posting || this.stream === '' || this.outbox.length === 0 || this.readyState !== OPEN) return;
    this.posting = true;
    let n = 0;
    let bytes = 0;
    while (n < this.outbox.length && n < 64 && (n === 0 || bytes + (this.outbox[n] as string).length <= POST_BYTES)) {
      bytes += (this.outbox[n] as string).length + 1;
      n++;
    }
    const batch = this.outbox.slice(0, n);
    try {
      const res = await fetch(`${this.base}/stream/${encodeURIComponent(this.stream)}`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain', 'gatehouse-secret': this.secret },
        body: batch.join('\n'),
        signal: this.abort.signal,
      });
      await res.body?.cancel().catch(() => {});
      if (res.status === 202) this.outbox.splice(0, n);
      else if (res.status === 429 || res.status === 503 || res.status === 504) await new Promise((r) => setTimeout(r, 500));
      else return this.end(1006, `command POST refused: HTTP ${res.status}`);
      this.postFailures = 0;
    } catch (err) {
      // A kept-alive connection to a node that just died fails before the request reaches anyone:
      // try once more on a fresh one, unless a publish is in the batch (it may have landed, and
      // its outcome is then unknown, as on a WebSocket that drops).
      if (this.readyState !== OPEN || ++this.postFailures > 1 || batch.some((f) => f.includes('"op":"publish"'))) {
        return this.end(1006, `command POST failed: ${messageOf(err)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      this.posting = false;
    }
    void this.flush();
  }

  /** Ends the socket once: stops the downstream and tells the core. */
  protected end(code: number, reason: string): void {
    if (this.readyState === CLOSED) return;
    const wasOpen = this.readyState === OPEN;
    this.readyState = CLOSED;
    this.abort.abort();
    this.stop();
    if (!wasOpen && code === 1000) return;
    if (code === 1006 && reason) this.onerror?.({ message: reason });
    setTimeout(() => this.onclose?.({ code, reason }), 0);
  }

  /** Stops the downstream (beyond aborting fetches). */
  protected stop(): void {}
}

/** HTTP streaming: `POST /stream`, newline-delimited protocol v1 frames back. */
export class HttpStreamSocket extends StreamSocketBase {
  protected begin(): void {
    const body = this.outbox.splice(0).join('\n');
    void this.read(body);
  }

  private async read(body: string): Promise<void> {
    let res: Response;
    try {
      res = await fetch(`${this.base}/stream`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body,
        signal: this.abort.signal,
        cache: 'no-store',
      });
    } catch (err) {
      return this.end(1006, `stream request failed: ${messageOf(err)}`);
    }
    if (res.status !== 200 || !res.body) {
      const text = await res.text().catch(() => '');
      return this.end(1006, `stream refused: HTTP ${res.status} ${text.slice(0, 200)}`);
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line !== '') this.frame(line);
        }
      }
    } catch (err) {
      return this.end(1006, `stream lost: ${messageOf(err)}`);
    }
    this.end(1006, 'stream ended without a close');
  }
}

/** The named SSE events the SDK reads (publications are the unnamed `message` events). */
const SSE_EVENTS = ['stream', 'connected', 'subscribed', 'published', 'ok', 'problem', 'ping', 'refresh', 'gap', 'close', 'drain'];

interface EventSourceLike {
  readyState: number;
  onerror: ((ev: unknown) => unknown) | null;
  addEventListener(type: string, fn: (ev: { data: string }) => void): void;
  close(): void;
}
type EventSourceCtor = new (url: string) => EventSourceLike;

/** True where the SSE transport can run. */
export function sseAvailable(): boolean {
  return typeof (globalThis as { EventSource?: unknown }).EventSource === 'function';
}

/**
 * Server-Sent Events through `EventSource`. The core's `connect` frame is read here: its token (if
 * any) is traded for a ticket, and the server answers `connected` to that same request id.
 */
export class SseSocket extends StreamSocketBase {
  private source: EventSourceLike | undefined;

  protected begin(): void {
    const first = this.outbox.shift();
    let token: string | undefined;
    try {
      token = (JSON.parse(first ?? '{}') as { token?: string }).token;
    } catch {
      token = undefined;
    }
    void this.open(token);
  }

  private async open(token: string | undefined): Promise<void> {
    let query = '';
    if (token !== undefined) {
      try {
        const res = await fetch(`${this.base}/sse/ticket`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
          signal: this.abort.signal,
        });
        const body = (await res.json()) as { ticket?: string; error?: { message?: string } };
        if (res.status !== 200 || typeof body.ticket !== 'string') {
          return this.end(res.status === 401 ? 4001 : 1006, `ticket refused: ${body.error?.message ?? `HTTP ${res.status}`}`);
        }
        query = `?ticket=${encodeURIComponent(body.ticket)}`;
      } catch (err) {
        return this.end(1006, `ticket request failed: ${messageOf(err)}`);
      }
    }
    if (this.readyState !== OPEN) return;
    const ES = (globalThis as unknown as { EventSource: EventSourceCtor }).EventSource;
    const source = (this.source = new ES(`${this.base}/sse${query}`));
    const onFrame = (ev: { data: string }) => this.frame(ev.data);
    source.addEventListener('message', onFrame);
    for (const name of SSE_EVENTS) source.addEventListener(name, onFrame);
    // The core reconnects and recovers by itself: never let EventSource retry on its own.
    source.onerror = () => this.end(1006, 'event stream lost');
  }

  protected override stop(): void {
    this.source?.close();
  }
}
