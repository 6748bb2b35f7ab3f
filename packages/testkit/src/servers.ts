/**
 * Private server processes for tests that kill or restart a server (the shared services are
 * never touched): a free port, a temp directory, SIGKILL on demand, and waits with deadlines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tcpReachable, waitFor } from './index.js';

/** A free TCP port on 127.0.0.1 (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** True when `command --version` runs (the binary is installed). */
export function binaryInstalled(command: string): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn(command, ['--version'], { stdio: 'ignore' });
    p.once('error', () => resolve(false));
    p.once('exit', (code) => resolve(code === 0));
  });
}

/** How to run one kind of server on a given port with a given data directory. */
export interface ServerRecipe {
  /** Name for messages and the temp directory. */
  name: string;
  command: string;
  args(port: number, dir: string): string[];
  /** URL clients use to reach it. */
  url(port: number): string;
}

/** A server process this test started, on its own port and directory. */
export class PrivateServer {
  private proc: ChildProcess | undefined;
  readonly dir: string;

  private constructor(
    readonly recipe: ServerRecipe,
    readonly port: number,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), `gatehouse-${recipe.name}-`));
  }

  /** Starts a server on a free port and waits until it accepts connections. */
  static async start(recipe: ServerRecipe): Promise<PrivateServer> {
    const s = new PrivateServer(recipe, await freePort());
    await s.restart();
    return s;
  }

  get url(): string {
    return this.recipe.url(this.port);
  }

  /** (Re)starts the process on the same port and directory. */
  async restart(): Promise<void> {
    if (this.proc) throw new Error(`private ${this.recipe.name} is already running`);
    const proc = spawn(this.recipe.command, this.recipe.args(this.port, this.dir), { stdio: 'ignore' });
    this.proc = proc;
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    await waitFor(`private ${this.recipe.name} on port ${this.port}`, async () => {
      if (exited) throw new Error(`${this.recipe.name} on port ${this.port} exited during start`);
      return tcpReachable('127.0.0.1', this.port, 200);
    });
  }

  /** Kills the process (SIGKILL: no goodbye to clients) and waits for it to exit. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.proc = undefined;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGKILL');
    });
  }

  /** Kills the process and removes its directory. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** redis-server with nothing on disk, bound to loopback. */
export const REDIS_RECIPE: ServerRecipe = {
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
    'no',
    '--dir',
    dir,
    '--loglevel',
    'warning',
  ],
  url: (port) => `redis://127.0.0.1:${port}`,
};

/** nats-server with JetStream storing in its own directory. */
export const NATS_RECIPE: ServerRecipe = {
  name: 'nats',
  command: 'nats-server',
  args: (port, dir) => ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir],
  url: (port) => `nats://127.0.0.1:${port}`,
};
