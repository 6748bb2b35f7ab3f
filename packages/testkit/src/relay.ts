/**
 * A TCP relay in front of a loopback server, for tests that cut a link on purpose instead of
 * hoping for the timing: refuse new connections, swallow the server's answers while requests still
 * reach it, or cut every connection at once.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class TcpRelay {
  /** While false, new connections are closed at once. */
  accepting = true;
  /** The server's port; may be set after start, before the first connection. */
  target: number;
  #dropReplies = false;
  readonly #sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    /** The port clients connect to. */
    readonly port: number,
    target: number,
  ) {
    this.target = target;
  }

  /** Listens on a free loopback port and relays each connection to port `target` on loopback. */
  static async start(target = 0): Promise<TcpRelay> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const relay = new TcpRelay(server, (server.address() as { port: number }).port, target);
    server.on('connection', (client) => relay.#relay(client));
    return relay;
  }

  /** From now on the server's answers are dropped; what clients send still reaches it. */
  dropReplies(): void {
    this.#dropReplies = true;
  }

  /** Destroys every relayed connection (their streams may have lost bytes) and passes answers again. */
  cut(): void {
    for (const s of this.#sockets) s.destroy();
    this.#dropReplies = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #relay(client: Socket): void {
    if (!this.accepting) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: '127.0.0.1', port: this.target });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('error', end).on('close', () => {
        this.#sockets.delete(s);
        end();
      });
    }
    client.on('data', (d: Buffer) => upstream.write(d));
    upstream.on('data', (d: Buffer) => {
      if (!this.#dropReplies) client.write(d);
    });
  }
}
