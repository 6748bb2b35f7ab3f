/**
 * Test support for the Redis suites: private redis-server processes on free ports (for tests
 * that kill or restart a server; the shared one is never touched) and key cleanup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { tcpReachable, waitFor } from '@gatehouse/testkit';

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

/** True when the redis-server binary is installed (private servers need it). */
export async function redisServerInstalled(): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn('redis-server', ['--version'], { stdio: 'ignore' });
    p.once('error', () => resolve(false));
    p.once('exit', (code) => resolve(code === 0));
  });
}

/** A redis-server this test started: nothing on disk, bound to loopback. */
export class PrivateRedis {
  private proc: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'gatehouse-redis-'));

  private constructor(readonly port: number) {}

  /** Starts a server on a free port and waits until it answers. */
  static async start(): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort());
    await r.restart();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** (Re)starts the process on the same port and waits until it accepts connections. */
  async restart(): Promise<void> {
    if (this.proc) throw new Error('private redis is already running');
    const proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--loglevel', 'warning'],
      { stdio: 'ignore' },
    );
    this.proc = proc;
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    await waitFor(`private redis-server on port ${this.port}`, async () => {
      if (exited) throw new Error(`redis-server on port ${this.port} exited during start`);
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

  /** A plain client for inspecting the server's keys. */
  client(): Redis {
    return new Redis(this.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  }
}

/** Deletes every key under `prefix` (SCAN, never KEYS, on a shared server). */
export async function deleteKeys(redisUrl: string, prefix: string): Promise<void> {
  const r = new Redis(redisUrl, { lazyConnect: true });
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}
