/**
 * Publications through the HTTP publish API (`POST /api/publish`, `Authorization: apikey <key>`),
 * over keep-alive connections with a bound on requests in flight, paced at a rate or fired as a
 * burst. With several gateway processes on the memory backbone each process is its own node, so a
 * publication is sent to every target (`--publish-to all`); with a shared backbone one target is
 * enough (`--publish-to one`, round robin).
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

/** What publishing did, per channel and in total. */
export interface PublishOutcome {
  /** Publications attempted (each counts once however many targets it went to). */
  sent: number;
  /** Publications every addressed target accepted. */
  ok: number;
  /** Publications at least one target refused or failed. */
  failed: number;
  /** Accepted publications per channel. */
  okByChannel: Map<string, number>;
  /** HTTP statuses and errors seen, with counts. */
  errors: Record<string, number>;
  /** Ticks at which the previous tick's requests were still all in flight (the server lagged). */
  lateTicks: number;
  /** Wall time from the first publication to the last answer, seconds. */
  seconds: number;
}

/** How to publish. */
export interface PublishPlan {
  /** Publications per second, or undefined for a burst. */
  rate: number | undefined;
  /** Total publications (rate x duration, or the burst size). */
  count: number;
  /** Publications sent together at each tick. */
  batch: number;
  /** Which channel the i-th publication goes to. */
  channelOf: (i: number) => string;
  /** The `data` JSON text. */
  dataJson: string;
  /** Deadline for the whole plan, ms (publishing stops there; what was sent is counted). */
  deadlineMs: number;
  /** Called after each answered publication (for progress). */
  onAnswer?: () => void;
}

/** Sends publications to one or several targets. */
export class Publisher {
  private readonly agent: Agent;
  private inflight = 0;
  private next = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(
    private readonly bases: string[],
    private readonly apiKey: string | undefined,
    private readonly concurrency: number,
    private readonly toAll: boolean,
    /** The channel a publication for a load channel is sent to (a Pusher app's namespace). */
    private readonly rename: (channel: string) => string = (c) => c,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  }

  /** POSTs one publication to one base URL; resolves with 'ok' or a short error label, never rejects. */
  private post(base: string, body: string): Promise<string> {
    return new Promise((resolve) => {
      const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
      if (this.apiKey) headers['authorization'] = `apikey ${this.apiKey}`;
      // A saturated server may answer late but still publish; a short timeout would count such a
      // publication as failed while its deliveries arrive (delivered above expected).
      const req = request(`${base}/api/publish`, { method: 'POST', agent: this.agent, headers, timeout: 120_000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200 ? 'ok' : `HTTP ${res.statusCode}`));
        res.on('error', (e) => resolve(e.message));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      req.end(body);
    });
  }

  /** One publication to every target (or the next one); resolves with whether all accepted. */
  async publishOne(channel: string, dataJson: string, errors: Record<string, number>): Promise<boolean> {
    const body = `{"channel":${JSON.stringify(this.rename(channel))},"data":${dataJson}}`;
    const bases = this.toAll ? this.bases : [this.bases[this.next++ % this.bases.length] as string];
    this.inflight++;
    try {
      const results = await Promise.all(bases.map((b) => this.post(b, body)));
      let ok = true;
      for (const r of results) {
        if (r !== 'ok') {
          ok = false;
          errors[r] = (errors[r] ?? 0) + 1;
        }
      }
      return ok;
    } finally {
      this.inflight--;
      this.waiters.shift()?.();
    }
  }

  private slot(): Promise<void> {
    if (this.inflight < this.concurrency) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Runs a plan to its end (or its deadline) and waits for every answer. */
  async run(plan: PublishPlan): Promise<PublishOutcome> {
    const out: PublishOutcome = { sent: 0, ok: 0, failed: 0, okByChannel: new Map(), errors: {}, lateTicks: 0, seconds: 0 };
    const pending: Promise<void>[] = [];
    const t0 = performance.now();
    const fire = (i: number) => {
      const channel = plan.channelOf(i);
      out.sent++;
      pending.push(
        this.publishOne(channel, plan.dataJson, out.errors).then((ok) => {
          if (ok) {
            out.ok++;
            out.okByChannel.set(channel, (out.okByChannel.get(channel) ?? 0) + 1);
          } else {
            out.failed++;
          }
          plan.onAnswer?.();
        }),
      );
    };
    if (plan.rate === undefined) {
      for (let i = 0; i < plan.count && performance.now() - t0 < plan.deadlineMs; i++) {
        await this.slot();
        fire(i);
      }
    } else {
      const tickMs = (1000 * plan.batch) / plan.rate;
      let i = 0;
      for (let tick = 0; i < plan.count; tick++) {
        const due = t0 + tick * tickMs;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (performance.now() - t0 > plan.deadlineMs) break;
        if (this.inflight >= this.concurrency) out.lateTicks++;
        for (let b = 0; b < plan.batch && i < plan.count; b++) fire(i++);
      }
    }
    await Promise.all(pending);
    out.seconds = (performance.now() - t0) / 1000;
    return out;
  }

  /** Closes the keep-alive connections. */
  close(): void {
    this.agent.destroy();
  }
}

/** `data` JSON of exactly `bytes` bytes: a string of x's in quotes. */
export function payloadJson(bytes: number): string {
  return `"${'x'.repeat(Math.max(0, bytes - 2))}"`;
}
