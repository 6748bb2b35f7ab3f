/**
 * Test support for the NATS suites: private nats-server processes on free ports (for tests that
 * restart a server; the shared one is never touched) and stream cleanup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
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

/** True when the nats-server binary is installed (private servers need it). */
export function natsServerInstalled(): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn('nats-server', ['--version'], { stdio: 'ignore' });
    p.once('error', () => resolve(false));
    p.once('exit', (code) => resolve(code === 0));
  });
}

/** A nats-server with JetStream this test started, storing in its own temp directory. */
export class PrivateNats {
  private proc: ChildProcess | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), 'gatehouse-nats-'));

  private constructor(readonly port: number) {}

  /** Starts a server on a free port and waits until it accepts connections. */
  static async start(): Promise<PrivateNats> {
    const n = new PrivateNats(await freePort());
    await n.restart();
    return n;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** (Re)starts the process on the same port and storage directory. */
  async restart(): Promise<void> {
    if (this.proc) throw new Error('private nats-server is already running');
    const proc = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.dir], { stdio: 'ignore' });
    this.proc = proc;
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    await waitFor(`private nats-server on port ${this.port}`, async () => {
      if (exited) throw new Error(`nats-server on port ${this.port} exited during start`);
      return tcpReachable('127.0.0.1', this.port, 200);
    });
  }

  /** Kills the process (SIGKILL) and waits for it to exit. */
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

  /** Kills the process and removes its storage. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Deletes a stream if it exists (test cleanup on a shared server). */
export async function deleteStream(url: string, stream: string): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}
