/** Shared by the CLI suites: run the real `gatehouse` binary as a child process. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor, withDeadline } from '@gatehouse/testkit';

/** The CLI entry point. */
export const BIN = fileURLToPath(new URL('../../bin/gatehouse.js', import.meta.url));
/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** Starts `gatehouse start` as a real child process on a free port; resolves once it listens. */
export async function startChild(
  args: string[],
  env: Record<string, string> = {},
  listeners = 1,
): Promise<{ child: ChildProcess; port: number; logs: string[] }> {
  const child = spawn(process.execPath, [BIN, 'start', '--port', '0', '--host', '127.0.0.1', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      logs.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  child.stderr?.on('data', (d: Buffer) => logs.push(d.toString()));
  // With --workers, wait until every worker listens, or connections all land on the first.
  const port = await waitFor(
    `${listeners} gateway(s) to listen`,
    () => {
      const listening = logs.filter((line) => line.includes('"gateway listening"'));
      if (listening.length >= listeners) return JSON.parse(listening[0] as string).port as number;
      if (child.exitCode !== null) throw new Error(`gateway exited ${child.exitCode}: ${logs.join('\n')}`);
      return undefined;
    },
    15_000,
  );
  return { child, port, logs };
}

/** Sends SIGTERM and waits (bounded) for the child to exit; kills it if it does not. */
export async function stopChild(child: ChildProcess, timeoutMs = 15_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  try {
    return await withDeadline('the gateway to exit', exited, timeoutMs);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}
