/**
 * Runs one service for a test and makes sure it stops by itself. Usage:
 *   node supervise.js <lifetime seconds> <command> [args...]
 * The service is stopped (SIGTERM, then SIGKILL 10 s later) when its lifetime is up or when the
 * test process goes away (our stdin, a pipe from the test, closes), so a crashed or killed test
 * leaves nothing behind. SIGTERM and SIGINT sent to this process are passed on exactly once each,
 * so a test can drain a gateway with a single SIGTERM. SIGUSR2 kills the service at once (SIGKILL:
 * a crash, for the kill -9 drills; a SIGKILL sent to this process would kill only the supervisor).
 */
import { spawn } from 'node:child_process';

const [lifetimeText, command, ...args] = process.argv.slice(2);
const lifetimeSeconds = Number(lifetimeText);
if (!command || !Number.isFinite(lifetimeSeconds) || lifetimeSeconds <= 0) {
  console.error('usage: supervise <lifetime seconds> <command> [args...]');
  process.exit(2);
}

const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
let killTimer: NodeJS.Timeout | undefined;

function stop(signal: NodeJS.Signals, why: string): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (why) console.error(`supervise: ${why}; sending ${signal} to ${command} (pid ${child.pid})`);
  child.kill(signal);
  killTimer ??= setTimeout(() => child.kill('SIGKILL'), 10_000);
}

process.on('SIGTERM', () => stop('SIGTERM', ''));
process.on('SIGINT', () => stop('SIGINT', ''));
process.on('SIGUSR2', () => child.kill('SIGKILL'));
const lifetime = setTimeout(() => stop('SIGTERM', `lifetime of ${lifetimeSeconds} s is up`), lifetimeSeconds * 1000);
process.stdin.on('end', () => stop('SIGTERM', 'the test process went away'));
process.stdin.on('error', () => stop('SIGTERM', 'the test process went away'));
process.stdin.resume();

child.on('error', (err) => {
  console.error(`supervise: cannot start ${command}: ${err.message}`);
  process.exit(127);
});
child.on('exit', (code, signal) => {
  clearTimeout(lifetime);
  if (killTimer) clearTimeout(killTimer);
  process.exit(code ?? (signal === 'SIGKILL' ? 137 : 143));
});
