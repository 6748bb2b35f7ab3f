/**
 * Private backbone servers for restart drills: a redis-server, a nats-server with JetStream, or a
 * single-node Kafka broker, each on free loopback ports in its own temporary directory, so a
 * drill can kill and restart one without touching the shared servers.
 *
 * Each keeps what it acknowledged across a SIGKILL, the way a production server is configured:
 * Redis with an append-only file fsynced on every write, JetStream on file storage, Kafka's log.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NATS_RECIPE, PrivateServer as TestkitServer, freePort, tcpReachable, waitFor, type ServerRecipe } from '@gatehouse/testkit';
import { backboneKind } from './direct.js';

/** The repository root, from dist/src/servers.js. */
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const KAFKA_LIB = join(ROOT, '.services', 'kafka', 'lib');
const KAFKA_TEMPLATE = join(ROOT, 'scripts', 'kafka', 'server.properties.template');
const KAFKA_LOG4J = join(ROOT, 'scripts', 'kafka', 'log4j2.properties');

function installed(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

/** A backbone server this process started and may kill and restart. */
export interface PrivateServer {
  readonly kind: 'redis' | 'nats' | 'jetstream' | 'kafka';
  /** The `--backbone` URL of this server. */
  readonly url: string;
  /** SIGKILL; resolves when the process is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data; resolves when it answers. */
  restart(): Promise<void>;
  /** Kills it and removes its directory. */
  stop(): Promise<void>;
}

/** Why a private server of this kind cannot start here, or undefined when it can. */
export function privateServerUnavailable(kind: PrivateServer['kind']): string | undefined {
  switch (kind) {
    case 'redis':
      return installed('redis-server', ['--version']) ? undefined : 'redis-server is not installed';
    case 'nats':
    case 'jetstream':
      return installed('nats-server', ['--version']) ? undefined : 'nats-server is not installed';
    case 'kafka':
      if (!existsSync(join(KAFKA_LIB, '.pom.sha256'))) return `the Kafka classpath is missing (${KAFKA_LIB}); run scripts/services.sh start`;
      return installed('java', ['-version']) ? undefined : 'java is not installed';
  }
}

/** Redis with an append-only file fsynced on every write: what it acknowledged survives SIGKILL. */
const DURABLE_REDIS: ServerRecipe = {
  name: 'redis',
  command: 'redis-server',
  args: (port, dir) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir, '--loglevel', 'warning'],
  url: (port) => `redis://127.0.0.1:${port}`,
};

/** A testkit server under a backbone URL of our own scheme (jetstream:// for a NATS server). */
class Recipe implements PrivateServer {
  constructor(
    readonly kind: PrivateServer['kind'],
    private readonly server: TestkitServer,
  ) {}
  get url(): string {
    return this.kind === 'jetstream' ? this.server.url.replace(/^nats:/, 'jetstream:') : this.server.url;
  }
  kill(): Promise<void> {
    return this.server.kill();
  }
  restart(): Promise<void> {
    return this.server.restart();
  }
  stop(): Promise<void> {
    return this.server.stop();
  }
}

/** A single-node KRaft broker on the classpath scripts/services.sh fetched, with its config template. */
class PrivateKafka implements PrivateServer {
  readonly kind = 'kafka' as const;
  private proc: ChildProcess | undefined;
  constructor(
    readonly dir: string,
    readonly port: number,
    private readonly config: string,
  ) {}
  get url(): string {
    return `kafka://127.0.0.1:${this.port}`;
  }

  async restart(): Promise<void> {
    if (this.proc) throw new Error('the private Kafka broker is already running');
    const proc = this.spawnProcess();
    this.proc = proc;
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    await waitFor(`the private Kafka broker on port ${this.port} to serve metadata (log: ${join(this.dir, 'kafka.log')})`, async () => {
      if (exited) throw new Error(`the private Kafka broker exited while starting; see ${join(this.dir, 'kafka.log')}`);
      return this.answers();
    }, 120_000, 250);
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGKILL');
    await gone;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private spawnProcess(): ChildProcess {
    const log = openSync(join(this.dir, 'kafka.log'), 'a');
    try {
      return spawn('java', ['-Xms64m', '-Xmx256m', `-Dlog4j2.configurationFile=${KAFKA_LOG4J}`, '-cp', `${KAFKA_LIB}/*`, 'kafka.Kafka', this.config], {
        stdio: ['ignore', log, log],
      });
    } finally {
      closeSync(log);
    }
  }
  private async answers(): Promise<boolean> {
    if (!(await tcpReachable('127.0.0.1', this.port, 200))) return false;
    // The broker accepts TCP before it serves metadata: starting an adapter proves it serves.
    const { createKafkaBackbone } = await import('@gatehouse/backbone-kafka');
    const probe = createKafkaBackbone([`127.0.0.1:${this.port}`], { startTimeoutMs: 3000, requestTimeoutMs: 2000, clientId: 'fleet-probe' });
    try {
      await probe.start({ onPublication: () => {}, onStateChange: () => {} });
      return true;
    } catch {
      return false;
    } finally {
      await probe.close().catch(() => {});
    }
  }
}

/** Starts a private server of the kind `url` names (its host and port are ignored). */
export async function startPrivateServer(url: string): Promise<PrivateServer> {
  const kind = backboneKind(url);
  const why = privateServerUnavailable(kind);
  if (why) throw new Error(`cannot start a private ${kind} server: ${why}`);
  if (kind === 'redis') return new Recipe(kind, await TestkitServer.start(DURABLE_REDIS));
  if (kind === 'nats' || kind === 'jetstream') return new Recipe(kind, await TestkitServer.start(NATS_RECIPE));
  return startPrivateKafka();
}

/** Formats a new KRaft data directory and starts a broker on it. */
async function startPrivateKafka(): Promise<PrivateServer> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-fleet-kafka-'));
  const port = await freePort();
  const controller = await freePort();
  const config = join(dir, 'server.properties');
  writeFileSync(
    config,
    readFileSync(KAFKA_TEMPLATE, 'utf8')
      .replaceAll('127.0.0.1:9092', `127.0.0.1:${port}`)
      .replaceAll('127.0.0.1:9093', `127.0.0.1:${controller}`)
      .replaceAll('@DATA_DIR@', join(dir, 'data')),
  );
  // A cluster id is 16 random bytes in URL-safe base64 (what StorageTool random-uuid prints). It
  // may start with '-', so it goes in the --cluster-id=<id> form the argument parser cannot take
  // for an option.
  const format = spawnSync(
    'java',
    [`-Dlog4j2.configurationFile=${KAFKA_LOG4J}`, '-cp', `${KAFKA_LIB}/*`, 'kafka.tools.StorageTool', 'format', `--cluster-id=${randomBytes(16).toString('base64url')}`, '-c', config],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (format.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`kafka storage format failed: ${format.stderr || format.stdout}`);
  }
  const server = new PrivateKafka(dir, port, config);
  try {
    await server.restart();
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}
