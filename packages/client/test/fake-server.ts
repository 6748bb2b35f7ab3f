/**
 * A scripted Gatehouse server for SDK tests: a real WebSocket server on 127.0.0.1, port 0, whose
 * every reply is written by the test. That is the point of it: the test decides each close code,
 * retry hint, heartbeat silence and handshake stall the SDK has to survive.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  decodeClientFrame,
  encodeServerFrame,
  type ClientFrame,
  type ConnectFrame,
  type ConnectedFrame,
  type ServerFrame,
} from '@gatehouse/protocol';
import { withDeadline } from '@gatehouse/testkit';

type FrameOf<Op extends ClientFrame['op']> = Extract<ClientFrame, { op: Op }>;

interface Waiter {
  readonly op: string;
  readonly resolve: (f: ClientFrame) => void;
}

/** One client socket as the fake server sees it. */
export class FakeConnection {
  /** Every frame received, in order (for assertions). */
  readonly received: ClientFrame[] = [];
  /** Messages that did not decode as v1 client frames (a correct SDK sends none). */
  readonly invalid: string[] = [];
  /** When the server accepted the socket (ms since epoch). */
  readonly openedAt = Date.now();
  /** Resolves with the close code and reason once the socket is closed. */
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #unread: ClientFrame[] = [];
  readonly #waiters: Waiter[] = [];

  constructor(
    readonly ws: WebSocket,
    /** The request path and query of the upgrade (tokens must never appear here). */
    readonly path: string,
  ) {
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString();
      let frame: ClientFrame;
      try {
        frame = decodeClientFrame(text);
      } catch {
        this.invalid.push(text);
        return;
      }
      this.received.push(frame);
      const i = this.#waiters.findIndex((w) => w.op === frame.op);
      if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(frame);
      else this.#unread.push(frame);
    });
  }

  /** The next unread frame with `op` (earlier unread frames of other ops stay unread). */
  next<Op extends ClientFrame['op']>(op: Op, timeoutMs = 5_000): Promise<FrameOf<Op>> {
    const i = this.#unread.findIndex((f) => f.op === op);
    if (i >= 0) return Promise.resolve(this.#unread.splice(i, 1)[0] as FrameOf<Op>);
    const p = new Promise<ClientFrame>((resolve) => this.#waiters.push({ op, resolve }));
    return withDeadline(`a "${op}" frame from the client`, p, timeoutMs) as Promise<FrameOf<Op>>;
  }

  /** Sends a server frame (or raw text, to test malformed input). */
  send(frame: ServerFrame | string): void {
    this.ws.send(typeof frame === 'string' ? frame : encodeServerFrame(frame));
  }

  /** Waits for the connect frame and answers `connected`; returns the connect frame. */
  async accept(extra: Partial<ConnectedFrame> = {}): Promise<ConnectFrame> {
    const connect = await this.next('connect');
    this.send({ op: 'connected', id: connect.id, client: 'c1', node: 'fake', heartbeat: 60_000, ...extra });
    return connect;
  }

  /** Closes with a code and reason, as the real server would. */
  close(code: number, reason = ''): void {
    this.ws.close(code, reason);
  }

  /** Drops the TCP connection without a close frame (the client sees 1006). */
  drop(): void {
    this.ws.terminate();
  }
}

/** A WebSocket server at ws://127.0.0.1:<port>/ws whose behaviour each test scripts. */
export class FakeServer {
  /** Every connection accepted so far. */
  readonly connections: FakeConnection[] = [];
  #taken = 0;
  #arrived: (() => void) | undefined;

  private constructor(
    private readonly wss: WebSocketServer,
    readonly url: string,
  ) {
    wss.on('connection', (ws, req) => {
      this.connections.push(new FakeConnection(ws, req.url ?? ''));
      this.#arrived?.();
    });
  }

  /** Starts a fake server on a free loopback port. */
  static async start(): Promise<FakeServer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/ws' });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    const { port } = wss.address() as { port: number };
    return new FakeServer(wss, `ws://127.0.0.1:${port}/ws`);
  }

  /** The next connection not yet handed to the test, waiting for it if needed. */
  async nextConnection(timeoutMs = 5_000): Promise<FakeConnection> {
    const ready = this.connections[this.#taken];
    if (ready) {
      this.#taken++;
      return ready;
    }
    await withDeadline(
      'a new connection to the fake server',
      new Promise<void>((resolve) => {
        this.#arrived = () => {
          this.#arrived = undefined;
          resolve();
        };
      }),
      timeoutMs,
    );
    return this.nextConnection(timeoutMs);
  }

  /** Frames from any connection that did not decode as v1 client frames. */
  get invalidFrames(): string[] {
    return this.connections.flatMap((c) => c.invalid);
  }

  /** Drops every connection and stops listening. */
  async stop(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** A TCP server that accepts connections and never says a word: a handshake that stalls. */
export class SilentTcpServer {
  readonly sockets: Socket[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {
    server.on('connection', (s) => {
      this.sockets.push(s);
      s.on('error', () => {});
    });
  }

  /** Starts on a free loopback port. */
  static async start(): Promise<SilentTcpServer> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    return new SilentTcpServer(server, `ws://127.0.0.1:${port}/ws`);
  }

  /** Closes every socket and stops listening. */
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
