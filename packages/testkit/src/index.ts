/**
 * Test support. Every wait has a deadline and names what it waited for, so a failing test says
 * what never happened instead of hanging or depending on lucky timing.
 */
import { appendFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { EventEmitter } from 'node:events';

/** Polls `check` until it returns a truthy value, or rejects after `timeoutMs` naming `what`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolves with the arguments of the next `event`, or rejects after `timeoutMs`. */
export function nextEvent<T extends unknown[] = unknown[]>(emitter: EventEmitter, event: string, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${event}"`));
    }, timeoutMs);
    const on = (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args as T);
    };
    emitter.once(event, on);
  });
}

/** Rejects if `p` does not settle within `timeoutMs`. */
export async function withDeadline<T>(what: string, p: Promise<T>, timeoutMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** True when a TCP server accepts connections at host:port within `timeoutMs`. */
export function tcpReachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** The real services some suites need, where the test scripts expect them. */
export const SERVICES = {
  redis: { host: '127.0.0.1', port: Number(process.env['GATEHOUSE_TEST_REDIS_PORT'] ?? 6379) },
  nats: { host: '127.0.0.1', port: Number(process.env['GATEHOUSE_TEST_NATS_PORT'] ?? 4222) },
  kafka: { host: '127.0.0.1', port: Number(process.env['GATEHOUSE_TEST_KAFKA_PORT'] ?? 9092) },
} as const;

/** The one command that starts every service locally, without Docker. */
export const START_SERVICES = 'scripts/services.sh start';

/**
 * Decides whether a suite that needs `service` runs. Returns a skip reason, or undefined when the
 * service is there. When `GATEHOUSE_REQUIRE_SERVICES=1` (set by .ci/run) a missing service throws,
 * so CI fails loudly instead of skipping. Skips are appended to `GATEHOUSE_SKIP_LOG` so the runner
 * can list them at the end.
 */
export async function serviceSkipReason(
  service: keyof typeof SERVICES | 'nginx' | 'haproxy' | 'chromium' | 'prometheus',
  suite: string,
  probe?: () => Promise<boolean>,
): Promise<string | undefined> {
  const ok = probe
    ? await probe()
    : await tcpReachable(SERVICES[service as keyof typeof SERVICES].host, SERVICES[service as keyof typeof SERVICES].port);
  if (ok) return undefined;
  const reason = `${suite}: ${service} is not available (start it with: ${START_SERVICES})`;
  if (process.env['GATEHOUSE_REQUIRE_SERVICES'] === '1') {
    throw new Error(`${reason}; GATEHOUSE_REQUIRE_SERVICES=1 forbids skipping`);
  }
  const log = process.env['GATEHOUSE_SKIP_LOG'];
  if (log) appendFileSync(log, reason + '\n');
  return reason;
}
export * from './servers.js';
export * from './relay.js';
export * from './kafka.js';
