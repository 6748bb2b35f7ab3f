/**
 * `gatehouse bench` flags: one table, one place for defaults, and validation that names the flag
 * in every message. Contradictions (--burst with --rate, --cause kill with --url, a storm without
 * the SDK) are refused before anything starts.
 */
import { parseArgs } from 'node:util';
import { BASELINE_MODES } from './child-protocol.js';
import type { BaselineMode } from './child-protocol.js';
import { UsageError, decimal, wholeNumber } from './flags.js';

export { UsageError };

/** The scenarios. */
export const SCENARIOS = ['idle', 'fanout', 'channels', 'storm'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Connections one process may hold: the open-file limit is 20,000 per process here. */
export const MAX_SOCKETS_PER_PROCESS = 19_000;
/** Connections the bench spreads over one 127.x source address (ephemeral ports: ~28,000). */
export const CONNECTIONS_PER_SOURCE_ADDRESS = 10_000;

/** Transports the gateway can be measured over. */
export const BENCH_TRANSPORTS = ['websocket', 'sse', 'http-stream'] as const;
export type BenchTransport = (typeof BENCH_TRANSPORTS)[number];

/** Client protocols the gateway can be measured with: Gatehouse's own (v1) and Pusher Channels v7. */
export const BENCH_PROTOCOLS = ['native', 'pusher'] as const;
export type BenchProtocol = (typeof BENCH_PROTOCOLS)[number];

/** Everything a bench run is told, after defaults and validation. */
export interface BenchParams {
  scenario: Scenario;
  connections: number;
  /** Gateways to load instead of starting them (base URLs). */
  urls: string[];
  apiKey: string | undefined;
  against: 'raw-ws' | undefined;
  baselineModes: BaselineMode[];
  client: 'lean' | 'sdk';
  /** Transports the gateway is measured over, in this order, in the same run (default websocket). */
  transports: BenchTransport[];
  /** Protocols measured in the same run: the native one always, `pusher` as an extra phase (--protocol). */
  protocols: BenchProtocol[];
  workers: number;
  gateways: number;
  rampPerSecond: number;
  settleSeconds: number;
  durationSeconds: number;
  rate: number | undefined;
  burst: number | undefined;
  batch: number;
  payloadBytes: number;
  channels: number;
  zipf: number;
  concurrency: number;
  heartbeatSeconds: number;
  cause: 'drop' | 'kill';
  gatewayConnectRate: number;
  /** Flush window of started gateways, ms; undefined keeps the gateway's default. */
  coalesceMs: number | undefined;
  /** Bound on adaptive batching's added delay in started gateways, ms; undefined keeps the gateway's default. */
  maxBatchDelayMs: number | undefined;
  /** Started gateways' batched send (auto, on, off); undefined keeps the gateway's default. */
  nativeWrites: 'auto' | 'on' | 'off' | undefined;
  /** Node/V8 flags for started gateways (not baselines). */
  gatewayNodeFlags: string[];
  rounds: number;
  timeoutSeconds: number;
  probes: number;
  seed: number;
  publishTo: 'all' | 'one';
  profileDir: string | undefined;
  allowRemote: boolean;
  jsonFile: string | undefined;
  htmlFile: string | undefined;
  quiet: boolean;
  verbose: boolean;
}

const OPTIONS = {
  connections: { type: 'string' },
  url: { type: 'string', multiple: true },
  'api-key': { type: 'string' },
  json: { type: 'string' },
  html: { type: 'string' },
  against: { type: 'string' },
  'baseline-mode': { type: 'string', multiple: true },
  client: { type: 'string' },
  transport: { type: 'string', multiple: true },
  protocol: { type: 'string', multiple: true },
  workers: { type: 'string' },
  gateways: { type: 'string' },
  ramp: { type: 'string' },
  settle: { type: 'string' },
  duration: { type: 'string' },
  rate: { type: 'string' },
  burst: { type: 'string' },
  batch: { type: 'string' },
  payload: { type: 'string' },
  channels: { type: 'string' },
  zipf: { type: 'string' },
  concurrency: { type: 'string' },
  heartbeat: { type: 'string' },
  cause: { type: 'string' },
  'gateway-connect-rate': { type: 'string' },
  'coalesce-ms': { type: 'string' },
  'max-batch-delay-ms': { type: 'string' },
  'native-writes': { type: 'string' },
  'gateway-node-flags': { type: 'string' },
  rounds: { type: 'string' },
  timeout: { type: 'string' },
  probes: { type: 'string' },
  seed: { type: 'string' },
  'publish-to': { type: 'string' },
  profile: { type: 'string' },
  'allow-remote': { type: 'boolean' },
  quiet: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The `--help` text. */
export const BENCH_HELP = `gatehouse bench <scenario> [options]

Scenarios:
  idle       N connections, each subscribed to a channel: the gateway's memory per connection
             (resident memory after they settle, minus before, divided by N) and its idle CPU with
             heartbeats on; then a few probe publications check every connection still delivers
  fanout     N subscribers on one channel; publications at --rate for --duration, or --burst as fast
             as accepted: deliveries per gateway CPU-second, latency p50/p99/p99.9/max
  channels   N connections over --channels M channels (Zipf popularity, --zipf s); publications
             spread over the channels with the same skew (a few hot channels, a long quiet tail)
  storm      N SDK clients dropped at once (--cause drop) or their gateway killed and restarted
             (--cause kill), reconnecting with the SDK's backoff: time until all are back and
             resubscribed, refusals, peak event-loop lag

Targets (default: the bench starts its own gateway processes on 127.0.1.x, memory backbone):
  --url <url>                 a running gateway (http://host:port); repeat for several
  --api-key <key>             API key of the --url gateways (publishing)
  --gateways <n>              gateway processes to start (default: one per 15,000 connections)
  --against raw-ws            also run the scenario against a minimal raw ws broadcast server
                              (started on 127.0.2.x) in the same run, and print the ratios
  --baseline-mode <mode>      send (ws.send per socket), frame (frame built once, bytes written),
                              coalesce (frame once, one write per socket per tick), uws (bare
                              uWebSockets.js broadcast; skipped with a note where no build loads on
                              this Node, see GATEHOUSE_BENCH_UWS in docs/benchmarks.md); repeat or
                              comma-separate to measure several (default: send; ratios use the first)
  --publish-to all|one        every gateway gets each publication (memory backbone, default), or
                              one of them in turn (a shared backbone such as Redis)

Load:
  --connections <n>           connections (default 1000)
  --client lean|sdk           lean: raw TCP + hand-written WebSocket frames (default);
                              sdk: @gatehouse/client over ws (storm always uses sdk)
  --transport <t>             websocket, sse, http-stream: the gateway over each, in the same run
                              (repeat or comma-separate; default websocket); streams use lean
                              clients (raw TCP, chunked response decoded by hand)
  --protocol native|pusher    pusher: also measure the gateway with lean Pusher Channels v7
                              clients on /app/{key} (a Pusher app "bench" configured, publications
                              into its namespace), beside the native protocol, in the same run
  --workers <n>               load worker processes (default: one per 15,000 connections)
  --ramp <per second>         connection opening rate over all workers (default 1000)
  --settle <seconds>          wait after the last subscription before measuring (default 2)
  --duration <seconds>        idle: how long to hold (default 30); fanout/channels: how long to
                              publish (default 10); storm: deadline for everyone to be back (60)
  --rate <per second>         publications per second (default 10)
  --burst <count>             instead of --rate/--duration: this many, as fast as accepted
  --batch <k>                 publications sent together per tick (default 1; 10 = "ten per tick")
  --payload <bytes>           size of each publication's data as JSON (default 64, at least 2)
  --channels <m>              channels (channels scenario: default 100; idle: default 1)
  --zipf <s>                  channels scenario skew: 0 uniform, 1 classic Zipf (default 1)
  --concurrency <n>           publish requests in flight (default 32)
  --probes <n>                probe publications after idle and storm (default 3)
  --cause drop|kill           storm: cut every socket, or SIGKILL and restart the gateways (default drop)
  --seed <n>                  seed for channel choices, identical for gateway and baseline (default 1)

Bench-started servers:
  --heartbeat <seconds>       heartbeat interval of started gateways and baselines (default 25)
  --gateway-connect-rate <n>  admission rate of started gateways (default 1000000; storm: 1000,
                              the gateway's own default, so refusals show); admission by
                              event-loop lag is off except in storm
  --coalesce-ms <ms>          flush window of started gateways: publications arriving within it
                              share one write per socket (default: the gateway's, 0)
  --max-batch-delay-ms <ms>   bound on the delay adaptive batching may add to a flush in started
                              gateways; 0 turns batching off (default: the gateway's, 20)
  --native-writes <m>         started gateways' batched send: auto, on or off (default: the
                              gateway's, auto); off writes through net.Socket, for a before/after
  --gateway-node-flags=<f>    Node/V8 flags for started gateways only, space-separated (e.g.
                              --gateway-node-flags=--max-semi-space-size=8); baselines run with
                              Node's defaults
  --profile <dir>             CPU-profile the started servers over the measured window (not the
                              ramp) into <dir>; print the gateway's hot spots

Run:
  --rounds <n>                alternate gateway and baseline this many times; medians and spread
  --timeout <seconds>         hard bound on the whole run (default: computed from the parameters)
  --json <file>               write the JSON document
  --html <file>               write a self-contained HTML report (inline SVG charts)
  --allow-remote              allow --url hosts outside 127.0.0.0/8 and ::1
  --quiet                     no progress output
  --verbose                   pass the started servers' logs through
  -h, --help                  this text

Load only goes where it is pointed: the bench refuses non-loopback --url hosts unless --allow-remote.
Each process holds at most ${MAX_SOCKETS_PER_PROCESS.toLocaleString('en-US')} connections (open-file limit 20,000).`;

function int(values: Record<string, unknown>, flag: string, fallback: number, min: number, max: number): number {
  return wholeNumber(flag, values[flag], min, max) ?? fallback;
}

function num(values: Record<string, unknown>, flag: string, fallback: number, min: number, max: number): number {
  return decimal(flag, values[flag], min, max) ?? fallback;
}

function choice<T extends string>(values: Record<string, unknown>, flag: string, allowed: readonly T[], fallback: T): T {
  const raw = values[flag];
  if (raw === undefined) return fallback;
  if (!allowed.includes(raw as T)) throw new UsageError(`--${flag} must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`);
  return raw as T;
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function parseUrl(raw: string, allowRemote: boolean): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`--url must be a URL like http://127.0.0.1:8080, got ${JSON.stringify(raw)}`);
  }
  if (u.protocol === 'ws:') u.protocol = 'http:';
  if (u.protocol !== 'http:') {
    throw new UsageError(
      `--url must be http:// or ws:// (the lean client speaks plain TCP; terminate TLS elsewhere), got ${JSON.stringify(raw)}`,
    );
  }
  if (!allowRemote && !isLoopback(u.hostname)) {
    throw new UsageError(`--url ${raw} is not a loopback address; pass --allow-remote to load a remote gateway`);
  }
  // "localhost" may resolve to ::1 while source addresses are 127.x: use the IPv4 loopback.
  const host = u.hostname === 'localhost' ? '127.0.0.1' : u.hostname;
  return `http://${host}:${u.port || '80'}`;
}

function parse(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Parses and validates `gatehouse bench` arguments. Returns 'help' for --help. */
export function parseBenchArgs(argv: string[]): BenchParams | 'help' {
  const parsed = parse(argv);
  const v = parsed.values as Record<string, unknown>;
  if (v['help']) return 'help';
  const [scenarioRaw, ...extra] = parsed.positionals;
  if (!scenarioRaw) throw new UsageError(`a scenario is required: ${SCENARIOS.join(', ')}`);
  if (!SCENARIOS.includes(scenarioRaw as Scenario)) {
    throw new UsageError(`unknown scenario ${JSON.stringify(scenarioRaw)}: expected one of ${SCENARIOS.join(', ')}`);
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const scenario = scenarioRaw as Scenario;

  const allowRemote = v['allow-remote'] === true;
  const urls = ((v['url'] as string[] | undefined) ?? []).map((u) => parseUrl(u, allowRemote));
  const connections = int(v, 'connections', 1000, 1, 1_000_000);
  const perProcess = Math.ceil(connections / 15_000);
  const workers = int(v, 'workers', perProcess, 1, 64);
  if (Math.ceil(connections / workers) > MAX_SOCKETS_PER_PROCESS) {
    throw new UsageError(
      `--workers ${workers} would put ${Math.ceil(connections / workers)} connections in one process; the limit is ${MAX_SOCKETS_PER_PROCESS} (open files): use at least ${Math.ceil(connections / MAX_SOCKETS_PER_PROCESS)}`,
    );
  }
  if (v['gateways'] !== undefined && urls.length > 0)
    throw new UsageError('--gateways starts gateways; --url uses running ones: give one or the other');
  const gateways = urls.length > 0 ? urls.length : int(v, 'gateways', perProcess, 1, 64);
  if (urls.length === 0 && Math.ceil(connections / gateways) > MAX_SOCKETS_PER_PROCESS) {
    throw new UsageError(
      `--gateways ${gateways} would put ${Math.ceil(connections / gateways)} connections in one gateway process; the limit is ${MAX_SOCKETS_PER_PROCESS} (open files): use at least ${Math.ceil(connections / MAX_SOCKETS_PER_PROCESS)}`,
    );
  }
  const against = v['against'] === undefined ? undefined : choice(v, 'against', ['raw-ws'] as const, 'raw-ws');
  const modesRaw = ((v['baseline-mode'] as string[] | undefined) ?? ['send']).flatMap((m) => m.split(',')).map((m) => m.trim());
  for (const m of modesRaw) {
    if (!BASELINE_MODES.includes(m as BaselineMode))
      throw new UsageError(`--baseline-mode must be one of ${BASELINE_MODES.join(', ')}, got ${JSON.stringify(m)}`);
  }
  if (v['baseline-mode'] !== undefined && !against) throw new UsageError('--baseline-mode needs --against raw-ws');
  const baselineModes = [...new Set(modesRaw)] as BaselineMode[];

  const client = choice(v, 'client', ['lean', 'sdk'] as const, scenario === 'storm' ? 'sdk' : 'lean');
  if (scenario === 'storm' && client !== 'sdk')
    throw new UsageError("--client lean cannot run storm: the storm measures the SDK's reconnect backoff (use --client sdk)");

  const transportsRaw = ((v['transport'] as string[] | undefined) ?? ['websocket']).flatMap((t) => t.split(',')).map((t) => t.trim());
  for (const t of transportsRaw) {
    if (!BENCH_TRANSPORTS.includes(t as BenchTransport))
      throw new UsageError(`--transport must be one of ${BENCH_TRANSPORTS.join(', ')}, got ${JSON.stringify(t)}`);
  }
  const transports = [...new Set(transportsRaw)] as BenchTransport[];
  if (transports.some((t) => t !== 'websocket') && (client !== 'lean' || scenario === 'storm')) {
    throw new UsageError('--transport sse and http-stream run lean clients: not with --client sdk or the storm scenario');
  }

  const protocolsRaw = ((v['protocol'] as string[] | undefined) ?? ['native']).flatMap((t) => t.split(',')).map((t) => t.trim());
  for (const t of protocolsRaw) {
    if (!BENCH_PROTOCOLS.includes(t as BenchProtocol))
      throw new UsageError(`--protocol must be one of ${BENCH_PROTOCOLS.join(', ')}, got ${JSON.stringify(t)}`);
  }
  // The native protocol is always measured: it is the column the Pusher phase is compared with.
  const protocols: BenchProtocol[] = protocolsRaw.includes('pusher') ? ['native', 'pusher'] : ['native'];
  if (protocols.includes('pusher') && (client !== 'lean' || scenario === 'storm' || urls.length > 0)) {
    throw new UsageError('--protocol pusher runs lean clients against gateways the bench starts: not with --client sdk, storm or --url');
  }

  const publishing = scenario === 'fanout' || scenario === 'channels';
  if (!publishing) {
    for (const f of ['rate', 'burst', 'batch'] as const) {
      if (v[f] !== undefined) throw new UsageError(`--${f} applies to fanout and channels, not ${scenario}`);
    }
  }
  if (v['burst'] !== undefined && (v['rate'] !== undefined || v['duration'] !== undefined)) {
    throw new UsageError('--burst publishes as fast as accepted: it contradicts --rate and --duration');
  }
  const burst = v['burst'] === undefined ? undefined : int(v, 'burst', 0, 1, 100_000_000);
  const rate = burst !== undefined ? undefined : num(v, 'rate', 10, 0.1, 1_000_000);
  const defaultDuration = scenario === 'idle' ? 30 : scenario === 'storm' ? 60 : 10;
  const durationSeconds = num(v, 'duration', defaultDuration, 0.1, 86_400);
  const batch = int(v, 'batch', 1, 1, 10_000);
  if (rate !== undefined && batch > rate * durationSeconds) {
    throw new UsageError(`--batch ${batch} is more than the ${Math.floor(rate * durationSeconds)} publications --rate and --duration make`);
  }
  if (v['channels'] !== undefined && scenario !== 'channels' && scenario !== 'idle') {
    throw new UsageError(`--channels applies to channels and idle, not ${scenario}`);
  }
  const channels = int(v, 'channels', scenario === 'channels' ? 100 : 1, 1, 1_000_000);
  if (channels > connections)
    throw new UsageError(`--channels ${channels} is more than --connections ${connections}: every channel needs a subscriber`);
  if (v['cause'] !== undefined && scenario !== 'storm') throw new UsageError(`--cause applies to storm, not ${scenario}`);
  const cause = choice(v, 'cause', ['drop', 'kill'] as const, 'drop');
  if (cause === 'kill' && urls.length > 0)
    throw new UsageError('--cause kill needs gateways the bench started (it kills and restarts them): drop --url');
  const apiKey = v['api-key'] as string | undefined;
  if (urls.length > 0 && !apiKey) throw new UsageError('--api-key is required with --url: the bench publishes through the HTTP API');
  if (v['coalesce-ms'] !== undefined && urls.length > 0)
    throw new UsageError('--coalesce-ms configures gateways the bench starts: set it on your --url gateways instead');
  const gatewayNodeFlags = ((v['gateway-node-flags'] as string | undefined) ?? '').split(' ').filter((f) => f !== '');
  const badFlag = gatewayNodeFlags.find((f) => !f.startsWith('--'));
  if (badFlag !== undefined)
    throw new UsageError(`--gateway-node-flags takes Node flags such as --max-semi-space-size=8, got "${badFlag}"`);
  if (gatewayNodeFlags.length > 0 && urls.length > 0)
    throw new UsageError('--gateway-node-flags configures gateways the bench starts: start your --url gateways with them instead');
  if (v['max-batch-delay-ms'] !== undefined && urls.length > 0)
    throw new UsageError('--max-batch-delay-ms configures gateways the bench starts: set it on your --url gateways instead');
  if (v['native-writes'] !== undefined && urls.length > 0)
    throw new UsageError('--native-writes configures gateways the bench starts: set it on your --url gateways instead');
  const profileDir = v['profile'] as string | undefined;
  if (profileDir !== undefined && urls.length > 0)
    throw new UsageError('--profile profiles gateways the bench starts: drop --url (profile your own with node --cpu-prof)');

  const rampPerSecond = int(v, 'ramp', 1000, 1, 1_000_000);
  const settleSeconds = num(v, 'settle', 2, 0, 3600);
  const heartbeatSeconds = num(v, 'heartbeat', 25, 0.1, 3600);
  const rounds = int(v, 'rounds', 1, 1, 20);
  const probes = int(v, 'probes', 3, 0, 1000);
  const payloadBytes = int(v, 'payload', 64, 2, 60_000);
  const connectMs = (connections / rampPerSecond) * 1000;
  const publishMs = burst !== undefined ? 120_000 : durationSeconds * 1000;
  const phases = rounds * (transports.length + protocols.length - 1 + (against ? baselineModes.length : 0));
  // Generous: a loaded machine ramps slower than asked, and each phase also settles, probes,
  // waits for deliveries and stops its processes.
  const computedTimeout = Math.ceil((phases * (connectMs * 4 + publishMs + settleSeconds * 1000 + 240_000)) / 1000);
  return {
    scenario,
    connections,
    urls,
    apiKey,
    against,
    baselineModes,
    client,
    transports,
    protocols,
    workers,
    gateways,
    rampPerSecond,
    settleSeconds,
    durationSeconds,
    rate,
    burst,
    batch,
    payloadBytes,
    channels,
    zipf: num(v, 'zipf', 1, 0, 5),
    concurrency: int(v, 'concurrency', 32, 1, 10_000),
    heartbeatSeconds,
    cause,
    gatewayConnectRate: int(v, 'gateway-connect-rate', scenario === 'storm' ? 1000 : 1_000_000, 1, 100_000_000),
    coalesceMs: v['coalesce-ms'] === undefined ? undefined : int(v, 'coalesce-ms', 0, 0, 1000),
    maxBatchDelayMs: v['max-batch-delay-ms'] === undefined ? undefined : int(v, 'max-batch-delay-ms', 0, 0, 1000),
    nativeWrites: v['native-writes'] === undefined ? undefined : choice(v, 'native-writes', ['auto', 'on', 'off'] as const, 'auto'),
    gatewayNodeFlags,
    rounds,
    timeoutSeconds: int(v, 'timeout', computedTimeout, 1, 7 * 86_400),
    probes,
    seed: int(v, 'seed', 1, 0, 2 ** 31),
    publishTo: choice(v, 'publish-to', ['all', 'one'] as const, 'all'),
    profileDir,
    allowRemote,
    jsonFile: v['json'] as string | undefined,
    htmlFile: v['html'] as string | undefined,
    quiet: v['quiet'] === true,
    verbose: v['verbose'] === true,
  };
}
