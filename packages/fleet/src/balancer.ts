/**
 * A TCP balancer in front of the fleet, standing in for the ingress: each new connection goes to
 * the next live, ready node in round-robin order, so a client that reconnects lands wherever the
 * rotation points ("any node takes any reconnect"), never back on a dead or draining node.
 * Connections already established are left alone until either side closes.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

/** An upstream the balancer may pick. */
export interface Upstream {
  readonly nodeId: string;
  readonly host: string;
  readonly port: number;
}

/** Counters of what the balancer did. */
export interface BalancerStats {
  /** Connections handed to a node, by node id. */
  readonly routed: Map<string, number>;
  /** Connections closed because no node was eligible or every eligible one refused. */
  refused: number;
}

/** Ends a socket, and destroys it if the peer does not finish the close within a second. */
function endSoon(s: Socket): void {
  if (s.destroyed) return;
  s.end();
  setTimeout(() => s.destroy(), 1000).unref();
}

/** Round robin over `eligible()`, evaluated for every new connection. */
export class Balancer {
  readonly stats: BalancerStats = { routed: new Map(), refused: 0 };
  readonly #server: Server;
  readonly #links = new Set<Socket>();
  #next = 0;

  /** @param eligible the nodes that may take a new connection now (live and ready), in a stable order. */
  constructor(private readonly eligible: () => readonly Upstream[]) {
    this.#server = createServer((down) => this.#accept(down));
    this.#server.on('error', () => {});
  }

  /** Listens on `host:port` (0: a free port); resolves with the port. */
  async listen(port = 0, host = '127.0.0.1'): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    return (this.#server.address() as { port: number }).port;
  }

  /** Open client connections. */
  get connections(): number {
    return this.#links.size;
  }

  #accept(down: Socket): void {
    down.on('error', () => down.destroy());
    this.#links.add(down);
    down.once('close', () => this.#links.delete(down));
    const candidates = this.eligible();
    if (candidates.length === 0) {
      this.stats.refused++;
      down.destroy();
      return;
    }
    const first = this.#next++ % candidates.length;
    // A node that died since the last readiness check refuses the TCP connect: try the next one.
    // Nothing has been piped yet, so the client's first bytes wait in `down` meanwhile.
    const attempt = (tries: number) => {
      if (down.destroyed) return;
      if (tries >= candidates.length) {
        this.stats.refused++;
        down.destroy();
        return;
      }
      const target = candidates[(first + tries) % candidates.length] as Upstream;
      const up = connect(target.port, target.host);
      let connected = false;
      up.once('connect', () => {
        connected = true;
        this.stats.routed.set(target.nodeId, (this.stats.routed.get(target.nodeId) ?? 0) + 1);
        down.pipe(up).pipe(down);
      });
      up.on('error', () => {
        if (!connected) attempt(tries + 1);
      });
      // Let what was already piped reach the other side (a close frame, say) before cutting.
      up.once('close', () => {
        if (connected) endSoon(down);
      });
      down.once('close', () => endSoon(up));
    };
    attempt(0);
  }

  /** Cuts every connection and stops listening. */
  async close(): Promise<void> {
    for (const s of this.#links) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
