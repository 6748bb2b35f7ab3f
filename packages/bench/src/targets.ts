/**
 * What the load points at: gateways the bench starts itself (one process per loopback address),
 * raw `ws` baselines it starts, or gateways given by --url. A target set answers the same
 * questions either way: endpoints, figures from /metrics, and (for processes the bench owns) a
 * full GC before measuring memory, a kill and a restart on the same address, and a clean stop.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { combine, scrape } from './prometheus.js';
import type { ServerFigures } from './prometheus.js';
import type { BaselineMode, FromServerChild, ServerChildConfig, ToServerChild } from './child-protocol.js';
import type { Endpoint } from './load.js';

/** Which server a target set runs. */
export type TargetKind = 'gateway' | 'raw-ws';

/** One server process (or one --url). */
export interface Target {
  host: string;
  port: number;
  /** `http://host:port`, for the publish API and /metrics. */
  httpBase: string;
  child: ChildProcess | undefined;
  config: ServerChildConfig | undefined;
}

/** How bench-started processes run. */
export interface SpawnOptions {
  /** Loopback addresses, one per process. */
  hosts: string[];
  apiKey: string;
  heartbeatMs: number;
  connectRate: number;
  connectRatePerAddress: number;
  /** Gateway admission by event-loop lag, ms; undefined keeps the gateway's default. */
  admissionLagMs: number | undefined;
  /** Gateway flush window, ms; undefined keeps the gateway's default. */
  coalesceMs: number | undefined;
  /** Gateway bound on adaptive batching's added delay, ms; undefined keeps the gateway's default. */
  maxBatchDelayMs: number | undefined;
  /** Gateway batched send: auto, on or off; undefined keeps the gateway's default. */
  nativeWrites?: 'auto' | 'on' | 'off' | undefined;
  /** Node/V8 flags for gateway processes (not baselines). */
  gatewayNodeFlags?: string[];
  /** Pass the processes' stdout and stderr through (their logs); default: stderr only. */
  verbose: boolean;
  /** Raw baseline only. */
  mode?: BaselineMode;
  /** Gateway only: a Pusher app to configure (the `--protocol pusher` phase). */
  pusherApp?: { id: string; key: string; secret: string };
}

const READY_TIMEOUT_MS = 30_000;

/** A set of servers measured together as one. */
export class TargetSet {
  private seq = 0;

  private constructor(
    readonly kind: TargetKind,
    public label: string,
    readonly targets: Target[],
    private readonly script: URL | undefined,
    private readonly spawn: SpawnOptions | undefined,
    readonly apiKey: string | undefined,
  ) {}

  /** Starts one gateway process per host (memory backbone each). */
  static async startGateways(options: SpawnOptions): Promise<TargetSet> {
    const set = new TargetSet('gateway', 'gateway', [], new URL('./gateway-child.js', import.meta.url), options, options.apiKey);
    await set.startAll();
    return set;
  }

  /** Starts one raw baseline process per host (`ws`, or uWebSockets.js for mode `uws`). */
  static async startRaw(options: SpawnOptions & { mode: BaselineMode }): Promise<TargetSet> {
    const uws = options.mode === 'uws';
    const set = new TargetSet(
      'raw-ws',
      uws ? 'raw-uws' : `raw-ws (${options.mode})`,
      [],
      new URL(uws ? './raw-uws-server.js' : './raw-ws-server.js', import.meta.url),
      options,
      options.apiKey,
    );
    await set.startAll();
    return set;
  }

  /** Gateways already running at the given base URLs. */
  static external(urls: URL[], apiKey: string | undefined): TargetSet {
    const targets = urls.map((u) => {
      const host = u.hostname.replace(/^\[|\]$/g, '');
      const port = Number(u.port || 80);
      return { host, port, httpBase: `http://${u.hostname}:${port}`, child: undefined, config: undefined };
    });
    return new TargetSet('gateway', 'gateway', targets, undefined, undefined, apiKey);
  }

  /** True when the bench started (and may GC, kill and restart) these processes. */
  get owned(): boolean {
    return this.script !== undefined;
  }

  /** Where load connections go. */
  endpoints(): Endpoint[] {
    const key = this.spawn?.pusherApp?.key ?? '';
    const path =
      this.transport === 'sse'
        ? '/sse'
        : this.transport === 'http-stream'
          ? '/stream'
          : this.transport === 'pusher'
            ? `/app/${key}?protocol=7&client=gatehouse-bench&version=1`
            : '/ws';
    return this.targets.map((t) => ({ host: t.host, port: t.port, path }));
  }

  /** The transport the load uses on this set (gateways only; set before measuring). */
  transport: 'websocket' | 'sse' | 'http-stream' | 'pusher' = 'websocket';

  /**
   * The channel a publication for load channel `channel` goes to: itself, or for Pusher clients
   * the same name in the app's namespace (`public:bench` => `pusher-bench:bench`).
   */
  publishChannel(channel: string): string {
    const app = this.spawn?.pusherApp;
    return this.transport === 'pusher' && app ? `pusher-${app.id}:${channel.slice(channel.indexOf(':') + 1)}` : channel;
  }

  private async startAll(): Promise<void> {
    const o = this.spawn as SpawnOptions;
    const started = await Promise.allSettled(
      o.hosts.map((host, i) =>
        this.startOne({
          host,
          port: 0,
          apiKey: o.apiKey,
          heartbeatMs: o.heartbeatMs,
          connectRate: o.connectRate,
          connectRatePerAddress: o.connectRatePerAddress,
          maxConnections: 1_000_000,
          ...(o.admissionLagMs !== undefined ? { admissionLagMs: o.admissionLagMs } : {}),
          ...(o.coalesceMs !== undefined ? { coalesceMs: o.coalesceMs } : {}),
          ...(o.maxBatchDelayMs !== undefined ? { maxBatchDelayMs: o.maxBatchDelayMs } : {}),
          ...(o.nativeWrites !== undefined ? { nativeWrites: o.nativeWrites } : {}),
          nodeId: `bench-${this.kind === 'gateway' ? 'gw' : 'raw'}-${i + 1}`,
          ...(o.mode ? { mode: o.mode } : {}),
          ...(o.pusherApp ? { pusherApp: o.pusherApp } : {}),
        }),
      ),
    );
    for (const s of started) if (s.status === 'fulfilled') this.targets.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) {
      await this.stop();
      throw (failed as PromiseRejectedResult).reason;
    }
  }

  private startOne(config: ServerChildConfig): Promise<Target> {
    const o = this.spawn as SpawnOptions;
    const execArgv = ['--expose-gc', ...(this.kind === 'gateway' ? (o.gatewayNodeFlags ?? []) : [])];
    const child = fork(this.script as URL, [JSON.stringify(config)], {
      execArgv,
      env: { ...process.env, GATEHOUSE_LOG_LEVEL: process.env['GATEHOUSE_LOG_LEVEL'] ?? (o.verbose ? 'info' : 'warn') },
      stdio: ['ignore', o.verbose ? 'inherit' : 'ignore', 'inherit', 'ipc'],
    });
    return new Promise<Target>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${this.label} on ${config.host} did not become ready within ${READY_TIMEOUT_MS} ms`));
      }, READY_TIMEOUT_MS);
      const onExit = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        reject(new Error(`${this.label} on ${config.host} exited before it was ready (code ${code}, signal ${signal})`));
      };
      child.once('exit', onExit);
      child.on('message', (msg: FromServerChild) => {
        if (msg.type !== 'ready') return;
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve({
          host: msg.host,
          port: msg.port,
          httpBase: `http://${msg.host}:${msg.port}`,
          child,
          config: { ...config, port: msg.port },
        });
      });
    });
  }

  /** Sends `msg` to every owned process and waits (at most 30 s) for the answer `match` picks. */
  private ask(
    msg: (seq: number, i: number) => ToServerChild,
    match: (m: FromServerChild, seq: number) => boolean,
  ): Promise<FromServerChild[]> {
    return Promise.all(
      this.targets.map((t, i) => {
        const child = t.child;
        if (!child || !child.connected) return undefined;
        const seq = ++this.seq;
        return new Promise<FromServerChild | undefined>((resolve) => {
          const timer = setTimeout(() => done(undefined), 30_000);
          function done(m: FromServerChild | undefined) {
            clearTimeout(timer);
            child?.off('message', onMessage);
            resolve(m);
          }
          const onMessage = (m: FromServerChild) => {
            if (match(m, seq)) done(m);
          };
          child.on('message', onMessage);
          child.send(msg(seq, i));
        });
      }),
    ).then((all) => all.filter((m): m is FromServerChild => m !== undefined));
  }

  /** Runs a full GC in every owned process (no-op for --url targets). */
  async gc(): Promise<void> {
    await this.ask(
      (seq) => ({ type: 'gc', seq }),
      (m, seq) => m.type === 'gc-done' && m.seq === seq,
    );
  }

  /** Starts a CPU profile in every owned process. */
  async startProfile(): Promise<void> {
    await this.ask(
      (seq) => ({ type: 'profile-start', seq }),
      (m, seq) => m.type === 'profile-started' && m.seq === seq,
    );
  }

  /** Stops the CPU profiles and writes them as `<prefix>-<n>.cpuprofile`; resolves with the files written. */
  async stopProfile(prefix: string): Promise<string[]> {
    const answers = await this.ask(
      (seq, i) => ({ type: 'profile-stop', seq, file: `${prefix}-${i + 1}.cpuprofile` }),
      (m, seq) => m.type === 'profile-written' && m.seq === seq,
    );
    return answers.flatMap((m) => (m.type === 'profile-written' && !m.error ? [m.file] : []));
  }

  /** Scrapes every process's /metrics and combines the figures. */
  async figures(): Promise<ServerFigures> {
    const scrapes = await Promise.all(this.targets.map((t) => scrape(t.httpBase)));
    return combine(scrapes, performance.now(), this.writeCalls());
  }

  /** write(2)-family calls of every owned process so far (Linux /proc/<pid>/io), or null. */
  private writeCalls(): number | null {
    let total = 0;
    for (const t of this.targets) {
      const pid = t.child?.pid;
      if (pid === undefined) return null;
      try {
        const m = /^syscw:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
        if (!m) return null;
        total += Number(m[1]);
      } catch {
        return null;
      }
    }
    return total;
  }

  /** Scrapes, tolerating processes that are down (storm): figures of those that answered. */
  async figuresIfUp(): Promise<ServerFigures | undefined> {
    const scrapes = await Promise.allSettled(this.targets.map((t) => scrape(t.httpBase, 2000)));
    const ok = scrapes
      .filter((s) => s.status === 'fulfilled')
      .map((s) => (s as PromiseFulfilledResult<Awaited<ReturnType<typeof scrape>>>).value);
    return ok.length > 0 ? combine(ok, performance.now()) : undefined;
  }

  /** SIGKILLs every owned process (a node crash, as clients see it). */
  async kill(): Promise<void> {
    await Promise.all(
      this.targets.map(async (t) => {
        const child = t.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGKILL');
        await exited;
      }),
    );
  }

  /** Starts every owned process again on the address and port it had. */
  async restart(): Promise<void> {
    const fresh = await Promise.all(this.targets.map((t) => this.startOne(t.config as ServerChildConfig)));
    this.targets.splice(0, this.targets.length, ...fresh);
  }

  /** Stops every owned process: a clean close (which writes any CPU profile), then SIGKILL after 10 s. */
  async stop(): Promise<void> {
    await Promise.all(
      this.targets.map(async (t) => {
        const child = t.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        if (child.connected) child.send({ type: 'stop' });
        else child.kill('SIGTERM');
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
