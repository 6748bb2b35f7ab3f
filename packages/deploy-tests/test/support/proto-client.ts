/**
 * A bare protocol v1 client: raw JSON frames over `ws`, no SDK, so the test sees exactly what
 * crosses the proxy. It answers the server's heartbeats (the WebSocket ping automatically, the
 * application ping with a pong), remembers the last stream position per channel, and records the
 * close.
 */
import { WebSocket } from 'ws';
import { closeClass, parseRetryHint } from '@gatehouse/protocol';
import { waitFor } from '@gatehouse/testkit';

/** One received frame. */
export type Frame = Record<string, unknown> & { op: string };

/** A stream position as the protocol carries it. */
export interface Position {
  epoch: string;
  offset: number;
}

/** An upgrade the proxy or the gateway refused with an HTTP status. */
export class UpgradeRefused extends Error {
  constructor(readonly status: number) {
    super(`upgrade refused with HTTP ${status}`);
    this.name = 'UpgradeRefused';
  }
}

/** `connect` was answered with a close (or an error frame) instead of `connected`. */
export class ConnectRefused extends Error {
  constructor(readonly reply: Frame) {
    super(`connect failed: ${JSON.stringify(reply)}`);
    this.name = 'ConnectRefused';
  }

  /** The server's retry delay when the refusal asks to back off and retry, else undefined. */
  get backoffMs(): number | undefined {
    if (this.reply.op !== 'closed' || closeClass(this.reply['code'] as number) !== 'backoff') return undefined;
    return parseRetryHint(String(this.reply['reason'])) ?? 1000;
  }
}

/** A raw client on one WebSocket. */
export class ProtoClient {
  readonly frames: Frame[] = [];
  /** Application pings received (each answered). */
  pings = 0;
  closed: { code: number; reason: string; at: number } | undefined;
  /** The node that accepted `connect`. */
  node: string | undefined;
  /** Last position seen per channel (from `subscribed` and `pub`). */
  readonly positions = new Map<string, Position>();
  readonly openedAt = Date.now();
  /** When the server last sent anything (a frame or a WebSocket ping). */
  lastServerTrafficAt = Date.now();
  private nextId = 1;

  private constructor(readonly ws: WebSocket) {
    ws.on('ping', () => {
      this.lastServerTrafficAt = Date.now();
    });
    ws.on('message', (data, isBinary) => {
      this.lastServerTrafficAt = Date.now();
      if (isBinary) return;
      const frame = JSON.parse(data.toString()) as Frame;
      if (frame.op === 'ping') {
        this.pings++;
        this.send({ op: 'pong' });
        return;
      }
      if (frame.op === 'subscribed' || frame.op === 'pub') {
        const channel = frame['channel'] as string;
        const offset = frame['offset'] as number;
        const seen = this.positions.get(channel);
        if (!seen || seen.epoch !== frame['epoch'] || offset > seen.offset) {
          this.positions.set(channel, { epoch: frame['epoch'] as string, offset });
        }
      }
      this.frames.push(frame);
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString(), at: Date.now() };
    });
    ws.on('error', () => {});
  }

  /** Opens a WebSocket to `url`; rejects with UpgradeRefused when the upgrade gets an HTTP status. */
  static open(url: string, headers: Record<string, string> = {}): Promise<ProtoClient> {
    const ws = new WebSocket(url, { headers, handshakeTimeout: 10_000 });
    const client = new ProtoClient(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        ws.terminate();
        reject(new UpgradeRefused(res.statusCode ?? 0));
      });
      ws.once('error', reject);
    });
  }

  /** Opens a socket and completes `connect` (anonymous unless a token is given). */
  static async connect(url: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<ProtoClient> {
    const client = await ProtoClient.open(url, headers);
    const reply = await client.request({ op: 'connect', v: 1, ...extra });
    if (reply.op !== 'connected') {
      client.terminate();
      throw new ConnectRefused(reply);
    }
    client.node = reply['node'] as string;
    return client;
  }

  /**
   * `connect` as the SDK does it: a refusal of the backoff class (an overloaded node, close code
   * 4100 with a retry hint) is retried after the hinted delay, a few times; anything else throws.
   */
  static async connectRetrying(url: string, extra: Record<string, unknown> = {}, attempts = 5): Promise<ProtoClient> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await ProtoClient.connect(url, extra);
      } catch (err) {
        const retry = err instanceof ConnectRefused ? err.backoffMs : undefined;
        if (retry === undefined || attempt >= attempts) throw err;
        await new Promise((r) => setTimeout(r, retry));
      }
    }
  }

  send(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Sends a request and waits for the reply with the same id (or the close). */
  request(frame: Record<string, unknown>, timeoutMs = 10_000): Promise<Frame> {
    const id = this.nextId++;
    this.send({ ...frame, id });
    return waitFor(
      `reply to ${String(frame['op'])} #${id}`,
      () => this.frames.find((f) => f['id'] === id) ?? (this.closed ? ({ op: 'closed', ...this.closed } as Frame) : undefined),
      timeoutMs,
    );
  }

  /** Subscribes; with `since`, asks to recover what came after it. */
  async subscribe(channel: string, since?: Position): Promise<Frame> {
    const reply = await this.request({ op: 'subscribe', channel, ...(since ? { since } : {}) });
    if (reply.op !== 'subscribed') throw new Error(`subscribe ${channel} failed: ${JSON.stringify(reply)}`);
    return reply;
  }

  /** Publications received on `channel`, in arrival order. */
  pubs(channel: string): Frame[] {
    return this.frames.filter((f) => f.op === 'pub' && f['channel'] === channel);
  }

  /** Waits for the close, with a deadline. */
  waitClose(timeoutMs = 10_000): Promise<{ code: number; reason: string; at: number }> {
    return waitFor('the connection to close', () => this.closed, timeoutMs, 5);
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/**
 * A peer that completes the WebSocket upgrade directly at a gateway and then never answers
 * anything, not even a close frame. A draining gateway waits for it until its close timeout, so
 * the drain lasts seconds however few clients it has: a test can act during the drain without
 * racing its end.
 */
export async function silentPeer(port: number): Promise<{ destroy(): void }> {
  const { connect } = await import('node:net');
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    let head = '';
    socket.once('connect', () => {
      socket.write(
        'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
    });
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      if (head.startsWith('HTTP/1.1 101')) resolve();
      else reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed before the upgrade finished')));
  });
  // Keep reading (so nothing backs up) but never reply.
  socket.on('data', () => {});
  return { destroy: () => socket.destroy() };
}
