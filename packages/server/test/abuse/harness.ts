/**
 * Parent side of the abuse suite: starts child-gateway.js as a real process, reads its logs and
 * admin replies, and gives each test the three checks every abuse case ends with: the process is
 * alive, a bystander still receives publications, and memory came back.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { waitFor, withDeadline } from '@gatehouse/testkit';
import { API_KEY, SECRET, api } from '../helpers.js';
import { RawWs } from './raw-ws.js';
import type { RawOpenOptions } from './raw-ws.js';

const CHILD = new URL('./child-gateway.js', import.meta.url).pathname;

/** Options every child starts with: the test secret and API key, the memory backbone. */
export const CHILD_DEFAULTS = { tokenSecret: SECRET, apiKeys: [{ key: API_KEY }] };

/** Memory as the child reports it right after a forced GC. */
export interface Memory {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

const MiB = 1024 * 1024;

/** A gateway running in a child process. */
export class ChildGateway {
  /** Every log line the gateway wrote (pino JSON). */
  readonly logs: string[] = [];
  stderr = '';
  private readonly replies = new Map<number, (v: Record<string, any>) => void>();
  private nextId = 1;
  private exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly port: number,
  ) {
    child.on('exit', (code, signal) => {
      this.exited = { code, signal };
    });
  }

  /** Starts a gateway with `options` (merged over CHILD_DEFAULTS) and resolves once it listens. */
  static async start(options: Record<string, unknown> = {}): Promise<ChildGateway> {
    const child = spawn(process.execPath, ['--expose-gc', CHILD], {
      env: { ...process.env, GATEHOUSE_ABUSE_OPTIONS: JSON.stringify({ ...CHILD_DEFAULTS, ...options }) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // Set once the child listens; the stream handlers below run before and after that.
    const ref: { gw?: ChildGateway } = {};
    const early: string[] = [];
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (ref.gw) ref.gw.stderr = stderr;
    });
    const port = await withDeadline(
      'the child gateway to listen',
      new Promise<number>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`child gateway exited with ${code}: ${stderr}`)));
        createInterface({ input: child.stdout }).on('line', (line) => {
          let msg: Record<string, any> | undefined;
          try {
            msg = JSON.parse(line) as Record<string, any>;
          } catch {
            msg = undefined;
          }
          if (msg && 'harness' in msg) {
            if (msg['harness'] === 'ready') resolve(msg['port'] as number);
            else ref.gw?.replies.get(msg['harness'] as number)?.(msg);
            return;
          }
          (ref.gw ? ref.gw.logs : early).push(line);
        });
      }),
      15_000,
    );
    const gw = (ref.gw = new ChildGateway(child, port));
    gw.logs.push(...early);
    gw.stderr = stderr;
    return gw;
  }

  /** Sends an admin command and waits for the reply (the first one, for commands that send two). */
  command(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<Record<string, any>> {
    const id = this.nextId++;
    const p = new Promise<Record<string, any>>((resolve) => this.replies.set(id, resolve));
    this.child.stdin.write(JSON.stringify({ ...args, cmd, id }) + '\n');
    return withDeadline(`admin command ${cmd}`, p, timeoutMs);
  }

  /** Heap and buffer memory after a forced GC in the child. */
  async memory(): Promise<Memory> {
    const m = await this.command('mem');
    assert.equal(m['gc'], 1, 'the child runs with --expose-gc');
    return m as unknown as Memory;
  }

  /**
   * Asserts memory returned to within `budgetMiB` of `before` (heap plus Buffers, after GC).
   * RSS is not compared: the allocator keeps freed pages, so it only says how high memory once was.
   */
  async assertMemoryBack(before: Memory, budgetMiB = 4, what = 'memory'): Promise<void> {
    // Closed sockets release their buffers over a few ticks; allow the heap to settle first.
    let after = await this.memory();
    const grown = (m: Memory) => m.heapUsed + m.arrayBuffers - (before.heapUsed + before.arrayBuffers);
    for (let i = 0; i < 20 && grown(after) > budgetMiB * MiB; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await this.memory();
    }
    assert.ok(
      grown(after) <= budgetMiB * MiB,
      `${what}: heap+buffers grew by ${(grown(after) / MiB).toFixed(2)} MiB (budget ${budgetMiB} MiB)`,
    );
  }

  /** True while the process runs. */
  get running(): boolean {
    return this.exited === undefined && this.child.exitCode === null;
  }

  /** How the process ended, once it has. */
  get exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    return this.exited;
  }

  /** Asserts the process runs and answers /healthz. */
  async assertAlive(): Promise<void> {
    assert.ok(this.running, `gateway process exited: ${JSON.stringify(this.exited)} ${this.stderr}`);
    const res = await fetch(`http://127.0.0.1:${this.port}/healthz`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  }

  /** The /metrics text. */
  async metricsText(): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.port}/metrics`);
    return res.text();
  }

  /** Sum of the samples of `name` whose labels include every pair in `labels`. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return metricValue(await this.metricsText(), name, labels);
  }

  /** Connection count as the node reports it. */
  async connections(): Promise<number> {
    return (await this.command('backbone'))['connections'] as number;
  }

  /** Waits until the process exits by itself. */
  async waitExit(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return waitFor('the gateway process to exit', () => this.exited, timeoutMs);
  }

  /** Stops the process: closing stdin makes it exit; SIGKILL if it does not. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.stdin.end();
    try {
      await this.waitExit(5000);
    } catch {
      this.child.kill('SIGKILL');
      await this.waitExit(5000);
    }
  }

  /** Asserts no log line contains any of `secrets`. */
  assertNoSecretsLogged(secrets: Iterable<string>): void {
    assert.ok(this.logs.length > 0, 'the gateway logged something (else this check proves nothing)');
    for (const secret of secrets) {
      // The signature alone is enough to be a leak; check the whole token and each part.
      const parts = [secret, ...secret.split('.').filter((p) => p.length >= 16)];
      for (const part of parts) {
        const line = this.logs.find((l) => l.includes(part));
        assert.equal(line, undefined, `a log line contains a secret: ${line?.slice(0, 200)}`);
      }
    }
  }
}

/** Sums the samples of a metric in Prometheus text whose labels include `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const lbl = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => lbl.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/**
 * A well-behaved client subscribed to a channel. `check()` publishes through the HTTP API and
 * waits for that publication to arrive: proof that the abuse next door did not reach it.
 */
export class Bystander {
  private n = 0;
  private constructor(
    readonly ws: RawWs,
    private readonly port: number,
    readonly channel: string,
  ) {}

  static async join(port: number, options: RawOpenOptions & { channel?: string; token?: string } = {}): Promise<Bystander> {
    const channel = options.channel ?? 'public:bystander';
    const ws = await RawWs.connect(port, options.token, { autoPong: true, ...options });
    const reply = await ws.request({ op: 'subscribe', channel });
    assert.equal(reply['op'], 'subscribed', `bystander subscribe: ${JSON.stringify(reply)}`);
    return new Bystander(ws, port, channel);
  }

  /** Publishes one marked publication and waits until this client received it. */
  async check(what = 'a publication'): Promise<void> {
    const mark = `${++this.n}-${Date.now()}`;
    const res = await api(this.port, '/api/publish', { channel: this.channel, data: { mark } });
    assert.equal(res.status, 200, `publish for the bystander: ${JSON.stringify(res.body)}`);
    await waitFor(`the bystander to receive ${what} (${mark})`, () =>
      this.ws.json().some((f) => f['op'] === 'pub' && f['data']?.mark === mark),
    );
    assert.equal(this.ws.closeFrame, undefined, `the bystander was closed: ${JSON.stringify(this.ws.closeFrame)}`);
  }

  close(): void {
    this.ws.destroy();
  }
}
