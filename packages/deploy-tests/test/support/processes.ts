/**
 * Services started by the deploy tests: every one runs under supervise.js (it stops by itself when
 * its lifetime is up or the test process goes away), keeps the tail of its output for failure
 * messages, and is stopped by its own pid.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withDeadline } from '@gatehouse/testkit';

/** The repository root (this file is packages/deploy-tests/dist/test/support/processes.js). */
export const REPO_ROOT = fileURLToPath(new URL('../../../../../', import.meta.url));

const SUPERVISOR = fileURLToPath(new URL('./supervise.js', import.meta.url));

/** How long any service started by a test may live, at most. */
export const SERVICE_LIFETIME_SECONDS = 300;

/** How a service ended. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running service. */
export class Service {
  private tail = '';
  private readonly child: ChildProcess;
  /** Resolves when the service has exited. */
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: { cwd?: string; env?: NodeJS.ProcessEnv; lifetimeSeconds?: number } = {},
  ) {
    const lifetime = String(options.lifetimeSeconds ?? SERVICE_LIFETIME_SECONDS);
    this.child = spawn(process.execPath, [SUPERVISOR, lifetime, command, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const keep = (chunk: Buffer) => {
      this.tail = (this.tail + chunk.toString('utf8')).slice(-64 * 1024);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    // The pipe stays open for the service's whole life: its closing tells supervise.js we are gone.
    this.child.stdin?.on('error', () => {});
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  /** Everything the service printed (the last 64 KiB). */
  get output(): string {
    return this.tail;
  }

  /** True until the service exits. */
  get running(): boolean {
    return this.exit === undefined;
  }

  /** Sends `signal` to the service (through its supervisor, exactly once). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Stops the service: SIGTERM, and SIGKILL from the supervisor if it does not exit in time. */
  async stop(): Promise<Exit> {
    this.signal('SIGTERM');
    return withDeadline(`${this.name} to exit`, this.exited, 20_000);
  }

  /** A failure message that carries the service's own words. */
  describe(): string {
    return `${this.name} output (tail):\n${this.tail.slice(-4000)}`;
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The full path of `name` on PATH (plus /usr/sbin and /sbin, where nginx and haproxy live), if any. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A temporary directory, removed by `cleanup`. */
export function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), `gatehouse-${prefix}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Runs a command to completion (bounded), for tools like promtool and `haproxy -c`. */
export function run(
  command: string,
  args: string[],
  input?: string,
  timeoutMs = 30_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}
