/**
 * A throwaway single-node Kafka broker for tests that kill and restart one, so the shared broker
 * on 9092 is never touched. It runs the classpath scripts/services.sh fetched (.services/kafka/lib)
 * with the same config template, on two free loopback ports and a temporary data directory.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Admin } from '@platformatic/kafka';
import { waitFor } from '@gatehouse/testkit';

// dist/test/private-broker.js -> the repository root.
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const LIB = join(ROOT, '.services', 'kafka', 'lib');
const TEMPLATE = join(ROOT, 'scripts', 'kafka', 'server.properties.template');
const LOG4J = join(ROOT, 'scripts', 'kafka', 'log4j2.properties');

/** True when a private broker can be started here (Java and the fetched classpath exist). */
export function privateBrokerAvailable(): boolean {
  return existsSync(join(LIB, '.pom.sha256')) && existsSync(TEMPLATE) && spawnSync('java', ['-version']).status === 0;
}

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** One broker process over one data directory; `kill` and `start` again keep the data. */
export class PrivateBroker {
  private child: ChildProcess | undefined;
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly config: string,
  ) {}

  /** `host:port` for clients. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /**
   * Formats storage in a new temporary directory and starts the broker. `advertisedPort`: the port
   * the broker tells clients to use (a proxy in front of it); its own port by default.
   */
  static async create(options: { advertisedPort?: number } = {}): Promise<PrivateBroker> {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-kafka-'));
    const [port, controller] = [await freePort(), await freePort()];
    const config = join(dir, 'server.properties');
    writeFileSync(
      config,
      readFileSync(TEMPLATE, 'utf8')
        .replaceAll('advertised.listeners=PLAINTEXT://127.0.0.1:9092', `advertised.listeners=PLAINTEXT://127.0.0.1:${options.advertisedPort ?? port}`)
        .replaceAll('127.0.0.1:9092', `127.0.0.1:${port}`)
        .replaceAll('127.0.0.1:9093', `127.0.0.1:${controller}`)
        .replaceAll('@DATA_DIR@', join(dir, 'data')),
    );
    // A cluster id is 16 random bytes in URL-safe base64, which is what `random-uuid` prints. One in
    // 64 starts with "-", so it goes in the --cluster-id=<id> form the parser cannot mistake.
    const format = spawnSync(
      'java',
      [`-Dlog4j2.configurationFile=${LOG4J}`, '-cp', `${LIB}/*`, 'kafka.tools.StorageTool', 'format', `--cluster-id=${randomBytes(16).toString('base64url')}`, '-c', config],
      { encoding: 'utf8', timeout: 120_000 },
    );
    if (format.status !== 0) throw new Error(`kafka storage format failed: ${format.stderr || format.stdout}`);
    const broker = new PrivateBroker(dir, port, config);
    await broker.start();
    return broker;
  }

  /** Starts the process (again) and waits until it answers a metadata request. */
  async start(): Promise<void> {
    const log = openSync(join(this.dir, 'kafka.log'), 'a');
    this.child = spawn(
      'java',
      ['-Xms64m', '-Xmx256m', `-Dlog4j2.configurationFile=${LOG4J}`, '-cp', `${LIB}/*`, 'kafka.Kafka', this.config],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
    const child = this.child;
    let exited = false;
    child.once('exit', () => (exited = true));
    await waitFor(
      `the private broker on ${this.address} to answer (log: ${join(this.dir, 'kafka.log')})`,
      async () => {
        if (exited) throw new Error(`the private broker exited while starting; log:\n${this.tail()}`);
        const admin = new Admin({ clientId: 'gatehouse-test-ready', bootstrapBrokers: [this.address], retries: 0, timeout: 2000, connectTimeout: 1000 });
        try {
          return (await admin.metadata({ topics: [] })).brokers.size > 0;
        } catch {
          return false;
        } finally {
          await admin.close().catch(() => {});
        }
      },
      90_000,
      250,
    );
  }

  /** Stops the process with `signal` and waits for it to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    await gone;
  }

  /** Kills the process and removes the data directory. */
  async destroy(): Promise<void> {
    await this.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  private tail(): string {
    try {
      return readFileSync(join(this.dir, 'kafka.log'), 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '(no log)';
    }
  }
}
