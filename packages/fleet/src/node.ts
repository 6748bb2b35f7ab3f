/**
 * One real gateway process (`gatehouse start`) the fleet started: its port (read from the JSON
 * log line "gateway listening"), its health, its metrics, and the two ways it can end: SIGKILL
 * (a crash) and SIGTERM (a drain).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor, withDeadline } from '@gatehouse/testkit';

/** The CLI entry, resolved from this file (dist/src/node.js) to packages/cli/bin/gatehouse.js. */
export const GATEHOUSE_BIN = fileURLToPath(new URL('../../../cli/bin/gatehouse.js', import.meta.url));

/** Lines of a gateway's output kept for diagnostics. */
const LOG_LINES = 200;
/**
 * For diagnosis: when set, every line each node prints is appended to `<dir>/<node id>.log`
 * (GATEHOUSE_FLEET_LOG_LEVEL=debug adds the gateways' debug lines).
 */
const LOG_DIR = process.env['GATEHOUSE_FLEET_LOG_DIR'];

/** How to start one gateway. */
export interface NodeSpec {
  readonly nodeId: string;
  /** `--backbone` values (several only for sharded Redis). */
  readonly backbone: readonly string[];
  readonly apiKey: string;
  /** A config file (JSON) with the namespaces. */
  readonly configFile?: string;
  /** Seconds between server heartbeats. */
  readonly heartbeatS: number;
  /** Seconds over which SIGTERM spreads the closes. */
  readonly drainWindowS: number;
  /** 0 picks a free port; a fixed port lets a restarted node come back where clients expect it. */
  readonly port?: number;
  readonly host?: string;
  /** More `gatehouse start` flags (e.g. `--connect-rate 1000`). */
  readonly extraArgs?: readonly string[];
  /** Deadline for the process to listen. Default 60 s (the Kafka adapter takes a while; CI machines are shared). */
  readonly startTimeoutMs?: number;
}

/** A running (or ended) gateway process. */
export class GatewayNode {
  /** The last lines of its output (JSON logs), for diagnostics. */
  readonly logs: string[] = [];
  /** When the process exited (ms since the Unix epoch), if it did. */
  exitedAt: number | undefined;
  /** Times the node logged "backbone down". */
  backboneDownReports = 0;
  #port: number | undefined;
  readonly #exited: Promise<void>;

  private constructor(
    readonly spec: NodeSpec,
    readonly child: ChildProcess,
  ) {
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.keep(line);
        if (this.#port === undefined && line.includes('"gateway listening"')) this.#port = (JSON.parse(line) as { port: number }).port;
      }
    });
    child.stderr?.on('data', (d: Buffer) => this.keep(d.toString().trimEnd()));
    this.#exited = new Promise<void>((resolve) =>
      child.once('exit', () => {
        this.exitedAt = Date.now();
        resolve();
      }),
    );
  }

  /** Starts `gatehouse start` and resolves once it listens; kills it if it does not in time. */
  static async start(spec: NodeSpec): Promise<GatewayNode> {
    const args = [
      GATEHOUSE_BIN,
      'start',
      '--port',
      String(spec.port ?? 0),
      '--host',
      spec.host ?? '127.0.0.1',
      '--node-id',
      spec.nodeId,
      '--api-key',
      spec.apiKey,
      '--heartbeat',
      String(spec.heartbeatS),
      '--drain-window',
      String(spec.drainWindowS),
      '--log-level',
      process.env['GATEHOUSE_FLEET_LOG_LEVEL'] ?? 'info',
      ...spec.backbone.flatMap((b) => ['--backbone', b]),
      ...(spec.configFile ? ['--config', spec.configFile] : []),
      ...(spec.extraArgs ?? []),
    ];
    const node = new GatewayNode(spec, spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    try {
      await waitFor(
        `gateway ${spec.nodeId} to listen`,
        () => {
          if (node.exitedAt !== undefined)
            throw new Error(`gateway ${spec.nodeId} exited (${node.child.exitCode ?? node.child.signalCode}):\n${node.logs.join('\n')}`);
          return node.#port;
        },
        spec.startTimeoutMs ?? 60_000,
        20,
      );
    } catch (err) {
      node.child.kill('SIGKILL');
      throw err;
    }
    return node;
  }

  private keep(line: string): void {
    if (line.includes('"msg":"backbone down"')) this.backboneDownReports++;
    if (LOG_DIR) appendFileSync(join(LOG_DIR, `${this.spec.nodeId}.log`), `${line}\n`);
    this.logs.push(line);
    if (this.logs.length > LOG_LINES) this.logs.splice(0, this.logs.length - LOG_LINES);
  }

  /** The port it listens on. */
  get port(): number {
    return this.#port as number;
  }

  get nodeId(): string {
    return this.spec.nodeId;
  }

  /** `http://host:port`. */
  get base(): string {
    return `http://${this.spec.host ?? '127.0.0.1'}:${this.port}`;
  }

  /** True until the process exited. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves when the process has exited. */
  exited(): Promise<void> {
    return this.#exited;
  }

  /** SIGKILL: the node dies without a word to its clients. Resolves when it is gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await withDeadline(`gateway ${this.nodeId} to die`, this.#exited, 10_000);
  }

  /**
   * SIGTERM: the node drains (closes its clients over the drain window) and exits. Resolves when
   * it exited; after `timeoutMs` it is killed and the promise rejects.
   */
  async terminate(timeoutMs: number): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    try {
      await withDeadline(`gateway ${this.nodeId} to drain and exit`, this.#exited, timeoutMs);
    } catch (err) {
      this.child.kill('SIGKILL');
      throw err;
    }
  }

  /** GET /readyz: the HTTP status, or undefined when the node does not answer within `timeoutMs`. */
  async readyStatus(timeoutMs = 1000): Promise<number | undefined> {
    if (!this.running) return undefined;
    try {
      const res = await fetch(`${this.base}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
      await res.arrayBuffer();
      return res.status;
    } catch {
      return undefined;
    }
  }

  /** GET /metrics, parsed: every sample by name, summed over label sets; and by `name{labels}`. */
  async metrics(timeoutMs = 5000): Promise<Map<string, number>> {
    const res = await fetch(`${this.base}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    if (res.status !== 200) throw new Error(`${this.base}/metrics answered HTTP ${res.status}`);
    return parseMetrics(await res.text());
  }
}

/**
 * Parses the Prometheus text format into a map holding, for each sample, `name{labels}` and the
 * sum over label sets under the bare `name`.
 */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const name = m[1] as string;
    if (m[2]) out.set(name + m[2], value);
    out.set(name, (out.get(name) ?? 0) + value);
  }
  return out;
}
