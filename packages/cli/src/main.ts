/**
 * The `gatehouse` command. The only place that wires concrete pieces together: it reads the
 * configuration, picks the backbone, starts the gateway and handles signals.
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import type { ParseArgsConfig } from 'node:util';
import { SignJWT } from 'jose';
import type { Logger } from 'pino';
import { DEFAULTS, Gateway, IpcBackbone, IpcBackboneHost, MemoryBus, OptionsError } from '@gatehouse/server';
import type { Backbone } from '@gatehouse/server';
import { backboneKindOf, createBackbone } from '@gatehouse/backbones';
import { environmentWarnings, loadStartConfig } from './config.js';
import { SETTINGS, startHelp } from './settings.js';
import type { StartConfig } from './config.js';
import { UsageError, parse, suggestion } from './args.js';
import { createLogger, startupSummary } from './logging.js';
import { readData } from './publish-data.js';
import { aggregateWorkerMetrics, shareWorkerMetrics } from './worker-metrics.js';
import { API_COMMANDS, apiCommand, apiUsage, isApiCommand } from './api-commands.js';

const USAGE = `gatehouse <command> [options]

Commands:
  start      start a gateway node (gatehouse start --help lists every option)
  token      print a development JWT:  gatehouse token --sub <id> --channels <pattern...> --secret <s> [--publish <pattern...>] [--ttl <seconds>]
  publish    publish through the HTTP API:  gatehouse publish <channel> <json | - | @file> [--url <http://host:port>] [--api-key <key>] [--idempotency-key <k>]
  presence   who is in a presence channel:  gatehouse presence <channel> [--stats] [--url <http://host:port>] [--api-key <key>]
${apiUsage()}
  bench      load-test a gateway: gatehouse bench <idle|fanout|channels|storm> [options] (--help lists them);
             gatehouse bench presence [--members <n>]: memory and query time of a large presence channel
  capacity   memory math for sizing: gatehouse capacity --connections-per-node <n> ... (--help lists them)

Run "gatehouse <command> --help" for a command's options, "gatehouse --version" for the version.`;

const COMMANDS = ['start', 'token', 'publish', 'presence', ...API_COMMANDS, 'bench', 'capacity', 'help', 'version'];

/** This package's version, from its package.json (dist/src/main.js is two levels below it). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function start(argv: string[]): Promise<void> {
  const options: NonNullable<ParseArgsConfig['options']> = { config: { type: 'string' } };
  for (const s of SETTINGS) {
    options[s.flag] = s.kind === 'bool' ? { type: 'boolean' } : s.kind === 'list' ? { type: 'string', multiple: true } : { type: 'string' };
  }
  const { values } = parse(argv, options);
  if (values['help']) {
    console.log(startHelp());
    return;
  }
  // Before the checks, so a start that fails still shows a misspelt variable. Workers inherit
  // the environment: the primary has already said it.
  if (!cluster.isWorker) for (const warning of environmentWarnings(process.env)) console.error(`gatehouse start: warning: ${warning}`);
  const config = loadStartConfig(values, process.env);
  const logger = createLogger(config.logLevel, config.logFormat);
  const backboneOptions = { ...config.backboneSettings, namespace: config.backboneNamespace };
  if (config.workers > 1 && cluster.isPrimary) {
    // Only workers use the backbone. Creating one here (which opens nothing) runs the adapter's
    // own checks, so a bad setting stops the start once instead of failing every worker forever.
    await createBackbone(config.backbone, backboneOptions);
    runPrimary(config, logger);
    return;
  }
  const isMemory = backboneKindOf(config.backbone) === 'memory';
  let backbone: Backbone;
  if (cluster.isWorker && isMemory) backbone = new IpcBackbone(process as unknown as ConstructorParameters<typeof IpcBackbone>[0]);
  else backbone = await createBackbone(config.backbone, backboneOptions);
  const gatewayOptions = { ...config.gateway };
  if (cluster.isWorker) {
    const base = gatewayOptions.nodeId ?? `gh-${Math.random().toString(36).slice(2, 8)}`;
    gatewayOptions.nodeId = `${process.env['GATEHOUSE_NODE_BASE'] ?? base}-w${process.env['GATEHOUSE_WORKER_INDEX'] ?? cluster.worker?.id}`;
  }
  const gateway = new Gateway(gatewayOptions, { backbone, logger });
  // Only under our own primary (runPrimary sets the index): another cluster primary (pm2's, say)
  // would never answer the scrape requests.
  if (cluster.isWorker && process.env['GATEHOUSE_WORKER_INDEX'] !== undefined) shareWorkerMetrics(gateway);
  await gateway.start();
  if (!cluster.isWorker) logger.info(startupSummary(config, gateway.options.host, gateway.port), 'gatehouse ready');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: closing now');
      void gateway.close().then(() => process.exit(0));
      return;
    }
    stopping = true;
    logger.info({ signal, windowMs: gateway.options.drainWindowMs }, 'draining');
    void gateway
      .drain()
      .then(() => gateway.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/**
 * `--workers n`: n gateway processes share the port (the cluster module hands out connections);
 * each is a node of its own. On the memory backbone this process keeps the shared bus, so a
 * publication on any worker reaches subscribers on every worker. A scrape of `/metrics` answers
 * for every worker (worker-metrics.ts). A worker that dies is replaced.
 */
function runPrimary(config: StartConfig, logger: Logger): void {
  const isMemory = backboneKindOf(config.backbone) === 'memory';
  const bus = new MemoryBus();
  const hosts = new Map<Worker, IpcBackboneHost>();
  const base = config.gateway.nodeId ?? `gh-${Math.random().toString(36).slice(2, 8)}`;
  let stopping = false;
  let alive = 0;
  const fork = (index: number) => {
    alive++;
    const worker = cluster.fork({ GATEHOUSE_WORKER_INDEX: String(index), GATEHOUSE_NODE_BASE: base });
    if (isMemory) {
      const host = new IpcBackboneHost(worker, bus);
      hosts.set(worker, host);
      void host.start();
    }
    // Between a worker's disconnect and its exit, a publication or another worker's fleet message
    // can still be sent to it; that send fails with ERR_IPC_CHANNEL_CLOSED, emitted as an 'error'
    // that would otherwise end this process (and every worker with it).
    const channelError = (err: unknown) => {
      if (!stopping) logger.warn({ worker: index, err }, 'worker channel error');
    };
    worker.on('error', channelError);
    worker.process.on('error', channelError);
    worker.on('disconnect', () => void hosts.get(worker)?.close());
    worker.on('exit', (code, signal) => {
      void hosts.get(worker)?.close();
      hosts.delete(worker);
      alive--;
      if (stopping) {
        if (alive === 0) process.exit(0);
        return;
      }
      logger.error({ worker: index, code, signal }, 'worker exited; starting a new one');
      setTimeout(() => fork(index), 1000).unref();
    });
  };
  aggregateWorkerMetrics();
  for (let i = 1; i <= config.workers; i++) fork(i);
  logger.info(
    startupSummary(config, config.gateway.host ?? DEFAULTS.host, config.gateway.port ?? DEFAULTS.port),
    'gatehouse starting workers',
  );
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping workers (each drains)');
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    if (alive === 0) process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function token(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    sub: { type: 'string' },
    channels: { type: 'string', multiple: true },
    publish: { type: 'string', multiple: true },
    secret: { type: 'string' },
    ttl: { type: 'string' },
  });
  if (values['help']) {
    console.log(
      'gatehouse token --sub <user> --channels <pattern...> --secret <secret> [--publish <pattern...>] [--ttl <seconds, default 3600>]\n\nPrints an HS256 development token as the last line. Patterns: an exact channel or a prefix ending in * (chat:*).\nThe secret may also come from GATEHOUSE_TOKEN_SECRET.',
    );
    return;
  }
  const sub = values['sub'] as string | undefined;
  const secret = (values['secret'] as string | undefined) ?? process.env['GATEHOUSE_TOKEN_SECRET'];
  if (!sub) throw new UsageError('--sub <user id> is required');
  if (!secret) throw new UsageError('--secret <secret> (or GATEHOUSE_TOKEN_SECRET) is required');
  const ttl = Number((values['ttl'] as string | undefined) ?? 3600);
  if (!Number.isInteger(ttl) || ttl <= 0) throw new UsageError('--ttl must be a positive number of seconds');
  const split = (v: unknown) =>
    ((v as string[] | undefined) ?? [])
      .flatMap((x) => x.split(','))
      .map((x) => x.trim())
      .filter(Boolean);
  const jwt = await new SignJWT({ channels: split(values['channels']), publish: split(values['publish']) })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
    .sign(new TextEncoder().encode(secret));
  console.log(jwt);
}

async function publish(argv: string[]): Promise<void> {
  const { values, positionals } = parse(
    argv,
    { url: { type: 'string' }, 'api-key': { type: 'string' }, 'idempotency-key': { type: 'string' } },
    true,
  );
  if (values['help']) {
    console.log(
      [
        'gatehouse publish <channel> <json | - | @file> [--url <http://127.0.0.1:8080>] [--api-key <key>] [--idempotency-key <key>]',
        '',
        'The data is JSON: given inline, read from standard input with "-", or from a file with "@path".',
        'The key may also come from GATEHOUSE_API_KEY, the URL from GATEHOUSE_URL. Prints {"channel","epoch","offset"}.',
        'With --idempotency-key, a retry with the same key on the channel inside the window publishes nothing.',
      ].join('\n'),
    );
    return;
  }
  const [channel, source] = positionals;
  if (!channel || source === undefined || positionals.length !== 2)
    throw new UsageError('usage: gatehouse publish <channel> <json | - | @file>');
  const data = await readData(source, process.stdin);
  const url = ((values['url'] as string | undefined) ?? process.env['GATEHOUSE_URL'] ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
  const apiKey = (values['api-key'] as string | undefined) ?? process.env['GATEHOUSE_API_KEY'];
  if (!apiKey) throw new UsageError('--api-key <key> (or GATEHOUSE_API_KEY) is required');
  const { HttpPublisher } = await import('@gatehouse/publisher');
  const publisher = new HttpPublisher({ url, apiKey });
  const key = values['idempotency-key'] as string | undefined;
  const result = await publisher.publish(channel, data, key === undefined ? {} : { idempotencyKey: key });
  console.log(JSON.stringify({ channel, ...result }));
}

/** Runs the command line; resolves with the exit code (start keeps running until a signal). */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'start':
        await start(rest);
        return 0;
      case 'token':
        await token(rest);
        return 0;
      case 'publish':
        await publish(rest);
        return 0;
      case 'presence':
        await (await import('./presence-command.js')).presenceCommand(rest);
        return 0;
      case 'bench': {
        const { benchMain, presenceBenchMain } = await import('@gatehouse/bench');
        if (rest[0] === 'presence') return await presenceBenchMain(rest.slice(1));
        return await benchMain(rest);
      }
      case 'capacity': {
        const { capacityMain } = await import('@gatehouse/bench');
        return await capacityMain(rest);
      }
      case 'version':
      case '--version':
        console.log(version());
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        if (isApiCommand(command)) {
          await apiCommand(command, rest);
          return 0;
        }
        console.error(`unknown command "${command}"${suggestion(command, COMMANDS)}\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof OptionsError) {
      console.error(`gatehouse ${command}: ${err.message}`);
      return 2;
    }
    const e = err as Error & { code?: unknown; status?: unknown };
    const code = typeof e.code === 'string' ? `${e.code}${typeof e.status === 'number' ? ` (HTTP ${e.status})` : ''}: ` : '';
    console.error(`gatehouse ${command}: ${code}${e.message ?? String(err)}`);
    return 1;
  }
}
