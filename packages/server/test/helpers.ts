/**
 * A bare protocol client for server tests: raw frames over `ws`, every wait with a deadline.
 * (The SDK has its own suite; here the server is under test, so the client stays dumb.)
 */
import { WebSocket } from 'ws';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { Gateway } from '../src/index.js';
import type { GatewayDeps, GatewayOptions } from '../src/index.js';
import { waitFor } from '@gatehouse/testkit';

export const SECRET = 'test-secret-0123456789';
export const API_KEY = 'test-api-key-0123';

/** Starts a gateway on a free port with test-friendly defaults. */
export async function startGateway(options: Partial<GatewayOptions> = {}, deps: GatewayDeps = {}): Promise<Gateway> {
  const gw = new Gateway(
    {
      port: 0,
      host: '127.0.0.1',
      tokenSecret: SECRET,
      apiKeys: [{ key: API_KEY }],
      ...options,
    },
    { logger: pino({ level: process.env['GATEHOUSE_TEST_LOG'] ?? 'silent' }), ...deps },
  );
  await gw.start();
  return gw;
}

/** Mints an HS256 token. */
export async function token(sub: string, claims: Record<string, unknown> = {}, ttlSeconds = 3600, secret = SECRET): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(new TextEncoder().encode(secret));
}

/** One received frame. */
export type Frame = Record<string, any>;

/** A raw protocol client that records every frame and the close. */
export class RawClient {
  readonly frames: Frame[] = [];
  closed: { code: number; reason: string } | undefined;
  private nextId = 1;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (!isBinary) this.frames.push(JSON.parse(data.toString()));
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
    });
    ws.on('error', () => {});
  }

  static async open(port: number, headers: Record<string, string> = {}): Promise<RawClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers });
    const c = new RawClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return c;
  }

  /** Opens a socket and completes `connect`. */
  static async connect(port: number, tok?: string, extra: Frame = {}): Promise<RawClient> {
    const c = await RawClient.open(port);
    const reply = await c.request({ op: 'connect', v: 1, ...(tok ? { token: tok } : {}), ...extra });
    if (reply['op'] !== 'connected') throw new Error(`connect failed: ${JSON.stringify(reply)}`);
    return c;
  }

  send(frame: Frame): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Sends `frames` in one TCP write, as a client that does not wait for replies does. */
  sendTogether(frames: Frame[]): void {
    const socket = (this.ws as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
    socket.cork();
    for (const f of frames) this.send(f);
    socket.uncork();
  }

  /** Sends a request and waits for the reply with the same id. */
  async request(frame: Frame, timeoutMs = 5000): Promise<Frame> {
    const id = this.nextId++;
    this.send({ ...frame, id });
    return waitFor(
      `reply to ${frame['op']} #${id}`,
      () => this.frames.find((f) => f['id'] === id) ?? (this.closed ? { op: 'closed', ...this.closed } : undefined),
      timeoutMs,
    );
  }

  /** Publications received on `channel`, in arrival order. */
  pubs(channel?: string): Frame[] {
    return this.frames.filter((f) => f['op'] === 'pub' && (channel === undefined || f['channel'] === channel));
  }

  async waitPubs(n: number, channel?: string, timeoutMs = 5000): Promise<Frame[]> {
    return waitFor(
      `${n} publications on ${channel ?? 'any channel'} (have ${this.pubs(channel).length})`,
      () => {
        const p = this.pubs(channel);
        return p.length >= n ? p : undefined;
      },
      timeoutMs,
    );
  }

  async waitClose(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    return waitFor('close', () => this.closed, timeoutMs);
  }

  close(): void {
    this.ws.terminate();
  }
}

/** POSTs JSON to the publish API. */
export async function api(port: number, path: string, body: unknown, key: string | null = API_KEY): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `apikey ${key}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}
