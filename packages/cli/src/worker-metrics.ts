/**
 * `--workers n`: one scrape of the shared port answers for every worker. The cluster module hands
 * each HTTP connection to one worker, so without this a scrape would see that worker alone and a
 * dashboard a random fraction of the machine.
 *
 * A worker answering `GET /metrics` asks the primary, which collects every live worker's own
 * metrics with prom-client's AggregatorRegistry and answers with the aggregate. Each worker keeps
 * its `node` label (its own node id), so the series of different workers stay apart and sum
 * across `node` as usual; process metrics come per worker as well.
 */
import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Gateway } from '@gatehouse/server';

/** A worker asks the primary for the aggregate. */
const SCRAPE_REQUEST = 'gatehouse:metrics-scrape';
/** The primary's answer: the exposition text, or why there is none. */
const SCRAPE_ANSWER = 'gatehouse:metrics-aggregate';
/**
 * How long a worker waits for the aggregate, ms: longer than prom-client's own 5 s deadline for
 * the workers' answers, so its error (a worker that did not answer) is the one reported.
 */
const SCRAPE_DEADLINE_MS = 6_000;

interface ScrapeRequest {
  readonly type: typeof SCRAPE_REQUEST;
  readonly id: number;
}

interface ScrapeAnswer {
  readonly type: typeof SCRAPE_ANSWER;
  readonly id: number;
  readonly text?: string;
  readonly error?: string;
}

function isMessage<T extends { type: string; id: number }>(msg: unknown, type: T['type']): msg is T {
  return (
    typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === type && typeof (msg as { id?: unknown }).id === 'number'
  );
}

/**
 * Primary side: answers every worker's scrape request with all workers' metrics aggregated. Call
 * once, before forking.
 */
export function aggregateWorkerMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, msg: unknown) => {
    if (!isMessage<ScrapeRequest>(msg, SCRAPE_REQUEST)) return;
    const reply = (answer: Omit<ScrapeAnswer, 'type' | 'id'>) => {
      // The asking worker may have exited meanwhile: its scrape failed with it.
      if (worker.isConnected()) worker.send({ type: SCRAPE_ANSWER, id: msg.id, ...answer } satisfies ScrapeAnswer);
    };
    aggregator.clusterMetrics().then(
      (text) => reply({ text }),
      (err: unknown) => reply({ error: err instanceof Error ? err.message : String(err) }),
    );
  });
}

/**
 * Worker side: hands this worker's metrics to the primary's aggregation and makes `GET /metrics`
 * answer with the aggregate. A scrape the primary does not answer in time fails (HTTP 500)
 * rather than showing one worker as if it were the machine.
 */
export function shareWorkerMetrics(gateway: Gateway): void {
  AggregatorRegistry.setRegistries([gateway.metrics.registry]);
  // Constructing one installs prom-client's listener that answers the primary's requests.
  new AggregatorRegistry();
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  let nextId = 0;
  process.on('message', (msg: unknown) => {
    if (!isMessage<ScrapeAnswer>(msg, SCRAPE_ANSWER)) return;
    const w = waiting.get(msg.id);
    if (!w) return; // answered after its deadline
    waiting.delete(msg.id);
    if (typeof msg.text === 'string') w.resolve(msg.text);
    else w.reject(new Error(`metrics aggregation failed: ${msg.error ?? 'no answer'}`));
  });
  gateway.metrics.answerScrapesWith(
    () =>
      new Promise<string>((resolve, reject) => {
        const id = nextId++;
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`metrics aggregation: no answer from the primary within ${SCRAPE_DEADLINE_MS} ms`));
        }, SCRAPE_DEADLINE_MS);
        const settle =
          <T>(fn: (v: T) => void) =>
          (v: T) => {
            clearTimeout(timer);
            fn(v);
          };
        waiting.set(id, { resolve: settle(resolve), reject: settle(reject) });
        // A primary that is gone (the channel closed) fails the scrape at once.
        process.send?.({ type: SCRAPE_REQUEST, id } satisfies ScrapeRequest, undefined, undefined, (err: Error | null) => {
          if (!err) return;
          waiting.delete(id);
          settle(reject)(new Error(`metrics aggregation: cannot reach the primary: ${err.message}`));
        });
      }),
  );
}
