/**
 * Real gateway processes, started the way an operator starts them: `gatehouse start` from the CLI
 * package, each on its own port, stopped with a signal.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '@gatehouse/testkit';
import { REPO_ROOT, Service, freePort } from './processes.js';

/** The API key every test gateway accepts. */
export const API_KEY = 'deploy-tests-api-key-0123';

/** The `gatehouse` command as the Dockerfile runs it. */
export const CLI_BIN = join(REPO_ROOT, 'packages', 'cli', 'bin', 'gatehouse.js');

/** Throws unless the CLI is built (the root `npm test` / `tsc -b` builds it; this package does not). */
export function requireCli(): void {
  if (!existsSync(join(REPO_ROOT, 'packages', 'cli', 'dist', 'src', 'main.js'))) {
    throw new Error('the gatehouse CLI is not built: run `npx tsc -b packages/cli` (or `npm run build`) first');
  }
}

/** A gateway child process. */
export interface GatewayProcess {
  nodeId: string;
  port: number;
  service: Service;
}

/** What a test gateway is started with. */
export interface GatewaySpec {
  nodeId: string;
  /** --heartbeat in seconds (default 1: tests measure proxy timeouts in seconds). */
  heartbeatSeconds?: number;
  /** --drain-window in seconds (default 1). */
  drainWindowSeconds?: number;
  /** --backbone (default memory). */
  backbone?: string;
  /** Further flags. */
  flags?: string[];
}

/** Starts `gatehouse start` on a free port with test settings and waits until /readyz says ready. */
export async function startGateway(spec: GatewaySpec): Promise<GatewayProcess> {
  return launchGateway(spec.nodeId, await freePort(), gatewayFlags(spec));
}

/** The `gatehouse start` flags `startGateway` uses for `spec` (to restart one on its port). */
export function gatewayFlags(spec: GatewaySpec): string[] {
  return [
    '--node-id',
    spec.nodeId,
    '--api-key',
    API_KEY,
    '--heartbeat',
    String(spec.heartbeatSeconds ?? 1),
    '--drain-window',
    String(spec.drainWindowSeconds ?? 1),
    '--trust-proxy',
    '--log-level',
    'info',
    ...(spec.backbone ? ['--backbone', spec.backbone] : []),
    ...(spec.flags ?? []),
  ];
}

/**
 * Runs `gatehouse start --port <port> --host 127.0.0.1 <flags>` and waits until /readyz says
 * ready; fails with the gateway's own output if it exits first.
 */
export async function launchGateway(name: string, port: number, flags: string[]): Promise<GatewayProcess> {
  requireCli();
  const args = [CLI_BIN, 'start', '--port', String(port), '--host', '127.0.0.1', ...flags];
  const service = new Service(`gateway ${name}`, process.execPath, args);
  try {
    await waitFor(
      `gateway ${name} ready on port ${port}`,
      async () => {
        if (!service.running) throw new Error(`gateway ${name} exited with ${JSON.stringify(service.exit)}`);
        return (await readyz(port)) === 200;
      },
      20_000,
      50,
    );
  } catch (err) {
    await service.stop().catch(() => undefined);
    throw new Error(`${(err as Error).message}\n${service.describe()}`, { cause: err });
  }
  return { nodeId: name, port, service };
}

/** The status of GET /readyz, or 0 when nothing answers. */
export async function readyz(port: number): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** Open connections on a gateway, as its /readyz reports them. */
export async function connectionsOn(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
  return ((await res.json()) as { connections: number }).connections;
}

/** Publishes through the HTTP API at `port` (a gateway or a proxy in front of gateways). */
export async function publish(
  port: number,
  channel: string,
  data: unknown,
  path = '/api/publish',
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `apikey ${API_KEY}` },
    body: JSON.stringify({ channel, data }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: res.status, body };
}

/** Stops every gateway still running (for `after` hooks). */
export async function stopAll(gateways: Iterable<GatewayProcess | undefined>): Promise<void> {
  await Promise.all([...gateways].map((g) => g?.service.stop().catch(() => undefined)));
}
