/**
 * A throwaway single-node Kafka broker (KRaft) for tests and drills that kill and restart one, so
 * the shared broker on 9092 is never touched. It runs the classpath scripts/services.sh fetched
 * (.services/kafka/lib) with the project's config template, on two free loopback ports and a
 * temporary data directory that survives kill and start.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from './index.js';

// dist/src/kafka.js -> the repository root.
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const LIB = join(ROOT, '.services', 'kafka', 'lib');
const TEMPLATE = join(ROOT, 'scripts', 'kafka', 'server.properties.template');
const LOG4J = join(ROOT, 'scripts', 'kafka', 'log4j2.properties');

/** Why a private broker cannot start here, or undefined when it can. */
export function privateKafkaUnavailable(): string | undefined {
  if (!existsSync(join(LIB, '.pom.sha256')) || !existsSync(TEMPLATE))
    return `the Kafka classpath is missing (${LIB}); run scripts/services.sh start`;
  return spawnSync('java', ['-version'], { stdio: 'ignore' }).status === 0 ? undefined : 'java is not installed';
}

export interface PrivateKafkaOptions {
  /**
   * True once the broker at `address` serves clients (it accepts TCP before it serves metadata).
   * Callers bring their own Kafka client; this package has none.
   */
  readonly answers: (address: string) => Promise<boolean>;
  /** The port the broker tells clients to use (a relay in front of it); its own port by default. */
  readonly advertisedPort?: number;
}

/** One broker process over one data directory; `kill` then `start` keeps the data. */
export class PrivateKafka {
  private proc: ChildProcess | undefined;
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly config: string,
    private readonly answers: (address: string) => Promise<boolean>,
  ) {}

  /** `host:port` for clients. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Formats storage in a new temporary directory and starts the broker. */
  static async create(options: PrivateKafkaOptions): Promise<PrivateKafka> {
    const why = privateKafkaUnavailable();
    if (why) throw new Error(`cannot start a private Kafka broker: ${why}`);
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-kafka-'));
    const [port, controller] = [await freePort(), await freePort()];
    const config = join(dir, 'server.properties');
    writeFileSync(
      config,
      readFileSync(TEMPLATE, 'utf8')
        .replaceAll(
          'advertised.listeners=PLAINTEXT://127.0.0.1:9092',
          `advertised.listeners=PLAINTEXT://127.0.0.1:${options.advertisedPort ?? port}`,
        )
        .replaceAll('127.0.0.1:9092', `127.0.0.1:${port}`)
        .replaceAll('127.0.0.1:9093', `127.0.0.1:${controller}`)
        .replaceAll('@DATA_DIR@', join(dir, 'data')),
    );
    // A cluster id is 16 random bytes in URL-safe base64 (what StorageTool random-uuid prints). One
    // in 64 starts with '-', so it goes in the --cluster-id=<id> form the parser cannot mistake.
    const format = spawnSync(
      'java',
      [
        `-Dlog4j2.configurationFile=${LOG4J}`,
        '-cp',
        `${LIB}/*`,
        'kafka.tools.StorageTool',
        'format',
        `--cluster-id=${randomBytes(16).toString('base64url')}`,
        '-c',
        config,
      ],
      { encoding: 'utf8', timeout: 120_000 },
    );
    if (format.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`kafka storage format failed: ${format.stderr || format.stdout}`);
    }
    const broker = new PrivateKafka(dir, port, config, options.answers);
    try {
      await broker.start();
    } catch (err) {
      await broker.destroy();
      throw err;
    }
    return broker;
  }

  /** Starts the process (again) and waits until it serves clients. */
  async start(): Promise<void> {
    if (this.proc) throw new Error('the private Kafka broker is already running');
    const log = openSync(join(this.dir, 'kafka.log'), 'a');
    let proc: ChildProcess;
    try {
      proc = spawn('java', ['-Xms64m', '-Xmx256m', `-Dlog4j2.configurationFile=${LOG4J}`, '-cp', `${LIB}/*`, 'kafka.Kafka', this.config], {
        stdio: ['ignore', log, log],
      });
    } finally {
      closeSync(log);
    }
    this.proc = proc;
    let exited = false;
    proc.once('exit', () => (exited = true));
    await waitFor(
      `the private Kafka broker on ${this.address} to serve (log: ${join(this.dir, 'kafka.log')})`,
      async () => {
        if (exited) throw new Error(`the private Kafka broker exited while starting; log:\n${this.tail()}`);
        return this.answers(this.address);
      },
      120_000,
      250,
    );
  }

  /** Stops the process with `signal` and waits for it to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
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
