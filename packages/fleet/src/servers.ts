/**
 * Private backbone servers for restart drills: a redis-server, a nats-server with JetStream, or a
 * single-node Kafka broker, each on free loopback ports in its own temporary directory, so a
 * drill can kill and restart one without touching the shared servers.
 *
 * Each keeps what it acknowledged across a SIGKILL, the way a production server is configured:
 * Redis with an append-only file fsynced on every write, JetStream on file storage, Kafka's log.
 */
import { spawnSync } from 'node:child_process';
import { NATS_RECIPE, PrivateKafka, PrivateServer as TestkitServer, privateKafkaUnavailable, type ServerRecipe } from '@gatehouse/testkit';
import { createBackbone } from '@gatehouse/backbones';
import { backboneKind } from './direct.js';

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
      return privateKafkaUnavailable();
  }
}

/** Redis with an append-only file fsynced on every write: what it acknowledged survives SIGKILL. */
const DURABLE_REDIS: ServerRecipe = {
  name: 'redis',
  command: 'redis-server',
  args: (port, dir) => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    'always',
    '--dir',
    dir,
    '--loglevel',
    'warning',
  ],
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

/** testkit's private Kafka broker, probed by starting an adapter on it. */
class Kafka implements PrivateServer {
  readonly kind = 'kafka' as const;
  constructor(private readonly broker: PrivateKafka) {}
  get url(): string {
    return `kafka://${this.broker.address}`;
  }
  kill(): Promise<void> {
    return this.broker.kill();
  }
  restart(): Promise<void> {
    return this.broker.start();
  }
  stop(): Promise<void> {
    return this.broker.destroy();
  }

  /** True once the broker serves metadata: starting an adapter on it proves that. */
  static async answers(address: string): Promise<boolean> {
    const probe = await createBackbone([`kafka://${address}`], {
      kafka: { startTimeoutMs: 3000, requestTimeoutMs: 2000, clientId: 'fleet-probe' },
    });
    try {
      await probe.start({ onPublication: () => {}, onStateChange: () => {}, onControl: () => {} });
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
  return new Kafka(await PrivateKafka.create({ answers: Kafka.answers }));
}
