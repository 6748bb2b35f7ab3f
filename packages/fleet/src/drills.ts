/**
 * Fault drills (issue 6, item 8) as one command that prints one JSON line of figures per run:
 *
 *   drill rolling-restart   SIGTERM each of the gateways in turn under load, wait for its drain and
 *                           its return (durable backbones: nothing lost)
 *   drill kill              SIGKILL of one gateway under load
 *   drill backbone-restart  SIGKILL and restart of a private backbone server under the gateways
 *   drill storm             N clients lose their connections at once and come back
 *
 * Each line carries `ok` and the `violations` that made it false; the exit code is 1 when any
 * run broke a guarantee, 2 for a usage mistake.
 */
import { parseArgs } from 'node:util';
import type { Figures } from './accountant.js';
import { backboneKind, isSequenced } from './direct.js';
import { Fleet } from './fleet.js';
import { backboneRestart, killOne, rollingRestart, type LoadOptions, type ScenarioReport } from './scenarios.js';
import { startPrivateServer } from './servers.js';
import { runStorm, type StormReport } from './storm.js';

/** The drills, by name. */
export const DRILLS = ['rolling-restart', 'kill', 'backbone-restart', 'storm'] as const;
export type DrillName = (typeof DRILLS)[number];

export const DRILL_USAGE = `drill <${DRILLS.join('|')}> [options]

Fleet drills (rolling-restart, kill, backbone-restart):
  --backbone <url>       redis://h:p, nats://h:p, jetstream://h:p or kafka://h:p (default redis://127.0.0.1:6379);
                         backbone-restart starts a private server of that kind (host and port ignored)
  --nodes <n>            gateway processes (default 3)
  --clients <n>          SDK clients behind the balancer (default 30)
  --streams <n>          of those, clients on HTTP streaming instead of WebSocket (default a third)
  --channels <n>         channels, every client subscribes to all (default 3)
  --rate <n>             publications per second (default 50)
  --duration <s>         publishing time besides the fault (default 3)
  --drain-window <s>     gateway drain window (default 2)
  --no-rebalance         turn the gateways' rebalancing off (on a backbone other gateways share)

Storm:
  --clients <n>          SDK clients (default 15000)
  --workers <n>          client worker processes (default 6)
  --nodes <n>            gateways, clients connect to them directly (default 1)
  --admission <on|off|both>  gateway defaults, or effectively off (--connect-rate 100000
                         --admission-lag-ms 600000); both runs on, then off (default both)
  --cause <drop|kill>    cut every client socket, or SIGKILL and restart the gateways (default drop)
  --backbone <url>       memory (default; one node only) or a shared backbone
  --addresses <n>        127.0.0.x source addresses (default one per 50 clients)
  --ramp <n>             connects per second for the first connection (default 800)
  --timeout <s>          deadline for everyone to be back (default 180)
  --gateway-arg <flag>   extra gatehouse start argument, repeatable (e.g. --gateway-arg=--connect-rate=2000)`;

/** A usage mistake: printed with the usage, exit code 2. */
export class DrillUsageError extends Error {}

function int(v: unknown, name: string, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new DrillUsageError(`--${name} must be an integer >= ${min}, got ${String(v)}`);
  return n;
}

/** Guarantees a fleet drill must keep; returns what it broke. */
export function fleetViolations(r: Figures & { settled: boolean }, durable: boolean): string[] {
  const out: string[] = [];
  if (r.duplicated > 0) out.push(`${r.duplicated} duplicated`);
  if (r.outOfOrder > 0) out.push(`${r.outOfOrder} out of order`);
  if (r.unknown > 0) out.push(`${r.unknown} unknown`);
  if (r.lostSilent > 0) out.push(`${r.lostSilent} lost without a gap`);
  if (durable && r.lost > 0) out.push(`${r.lost} lost on a durable backbone`);
  if (r.notBack > 0) out.push(`${r.notBack} clients not back`);
  if (!r.settled) out.push('not settled before the deadline');
  return out;
}

/** Guarantees a storm must keep. */
export function stormViolations(r: StormReport): string[] {
  const out: string[] = [];
  if (r.notBack > 0) out.push(`${r.notBack} clients not back`);
  if (r.probed < r.clients - r.notBack) out.push(`${r.clients - r.notBack - r.probed} clients back but not receiving`);
  return out;
}

/** Runs the drill named in `argv`; resolves with the exit code. Output: one JSON line per run. */
export async function runDrill(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(DRILL_USAGE);
    return name === undefined ? 2 : 0;
  }
  try {
    if (!(DRILLS as readonly string[]).includes(name)) throw new DrillUsageError(`unknown drill "${name}"`);
    let values: Record<string, unknown>;
    try {
      values = parseArgs({
        args: rest,
        strict: true,
        options: {
          backbone: { type: 'string' },
          nodes: { type: 'string' },
          clients: { type: 'string' },
          streams: { type: 'string' },
          channels: { type: 'string' },
          rate: { type: 'string' },
          duration: { type: 'string' },
          'drain-window': { type: 'string' },
          'no-rebalance': { type: 'boolean' },
          workers: { type: 'string' },
          admission: { type: 'string' },
          cause: { type: 'string' },
          addresses: { type: 'string' },
          ramp: { type: 'string' },
          timeout: { type: 'string' },
          'gateway-arg': { type: 'string', multiple: true },
        },
      }).values;
    } catch (err) {
      throw new DrillUsageError((err as Error).message);
    }
    if (name === 'storm') return await storm(values);
    return await fleetDrill(name as Exclude<DrillName, 'storm'>, values);
  } catch (err) {
    if (err instanceof DrillUsageError) {
      console.error(`drill: ${err.message}\n\n${DRILL_USAGE}`);
      return 2;
    }
    console.error(`drill ${name}: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
}

async function fleetDrill(name: Exclude<DrillName, 'storm'>, v: Record<string, unknown>): Promise<number> {
  const url = (v['backbone'] as string | undefined) ?? 'redis://127.0.0.1:6379';
  try {
    backboneKind(url);
  } catch (err) {
    throw new DrillUsageError((err as Error).message);
  }
  for (const k of ['workers', 'admission', 'cause', 'addresses', 'ramp', 'timeout', 'gateway-arg']) {
    if (v[k] !== undefined) throw new DrillUsageError(`--${k} applies to storm, not ${name}`);
  }
  const clients = int(v['clients'], 'clients', 30);
  const load: LoadOptions = {
    clients,
    streamClients: Math.min(clients, int(v['streams'], 'streams', Math.floor(clients / 3), 0)),
    channels: int(v['channels'], 'channels', 3),
    ratePerSecond: int(v['rate'], 'rate', 50),
    durationMs: int(v['duration'], 'duration', 3) * 1000,
    print: false,
  };
  const nodes = int(v['nodes'], 'nodes', 3, name === 'kill' ? 2 : 1);
  const options = {
    nodes,
    drainWindowS: int(v['drain-window'], 'drain-window', 2, 0),
    ...(v['no-rebalance'] ? { rebalance: false } : {}),
  };
  const server = name === 'backbone-restart' ? await startPrivateServer(url) : undefined;
  let fleet: Fleet | undefined;
  try {
    fleet = await Fleet.start({ ...options, backbone: [server?.url ?? url] });
    let report: ScenarioReport;
    if (name === 'rolling-restart') report = (await rollingRestart(fleet, load)).report;
    else if (name === 'kill') report = (await killOne(fleet, load)).report;
    else report = (await backboneRestart(fleet, server!, load)).report;
    const violations = fleetViolations(report, isSequenced(url));
    console.log(JSON.stringify({ drill: name, ...report, ok: violations.length === 0, violations }));
    return violations.length === 0 ? 0 : 1;
  } finally {
    await fleet?.close();
    await server?.stop();
  }
}

async function storm(v: Record<string, unknown>): Promise<number> {
  for (const k of ['channels', 'rate', 'duration', 'drain-window', 'no-rebalance', 'streams']) {
    if (v[k] !== undefined) throw new DrillUsageError(`--${k} does not apply to storm`);
  }
  const admission = (v['admission'] as string | undefined) ?? 'both';
  if (!['on', 'off', 'both'].includes(admission)) throw new DrillUsageError(`--admission must be on, off or both, got ${admission}`);
  const cause = (v['cause'] as string | undefined) ?? 'drop';
  if (cause !== 'drop' && cause !== 'kill') throw new DrillUsageError(`--cause must be drop or kill, got ${cause}`);
  const backbone = (v['backbone'] as string | undefined) ?? 'memory';
  const nodes = int(v['nodes'], 'nodes', 1);
  if (backbone === 'memory' && nodes > 1)
    throw new DrillUsageError('--nodes > 1 needs a shared --backbone (the memory backbone lives in one process)');
  let code = 0;
  for (const mode of admission === 'both' ? (['on', 'off'] as const) : [admission as 'on' | 'off']) {
    const report = await runStorm({
      clients: int(v['clients'], 'clients', 15_000),
      workers: int(v['workers'], 'workers', 6),
      nodes,
      admission: mode,
      cause,
      backbone,
      ...(v['addresses'] !== undefined ? { addresses: int(v['addresses'], 'addresses', 1) } : {}),
      rampPerSecond: int(v['ramp'], 'ramp', 800),
      timeoutS: int(v['timeout'], 'timeout', 180),
      gatewayArgs: ((v['gateway-arg'] as string[] | undefined) ?? []).flatMap((a) => a.split('=')),
      print: false,
    });
    const violations = stormViolations(report);
    console.log(JSON.stringify({ ...report, ok: violations.length === 0, violations }));
    if (violations.length > 0) code = 1;
  }
  return code;
}
