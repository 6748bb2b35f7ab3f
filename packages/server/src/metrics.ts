/**
 * Prometheus metrics. Each gateway owns a registry (several gateways can live in one test
 * process). Per-delivery work is a counter increment; distributions over connections (queue
 * depth) are computed when Prometheus scrapes, not on the hot path.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The labels every connection metric carries: how the client connected and which protocol it speaks. */
export interface ConnectionLabels {
  transport: string;
  protocol: string;
}

/** What the metrics read at scrape time. */
export interface MetricsSource {
  connectionCount(): number;
  /** Open connections per transport kind (`websocket`, `sse`, `http-stream`) and client protocol (`gatehouse`, `pusher`). */
  connectionsByTransport?(): Map<string, ConnectionLabels & { n: number }>;
  /** Bytes waiting to be written per open connection. */
  queueDepths(): Iterable<number>;
  backboneUp(): boolean;
  channelCount(): number;
  tokenCacheEntries(): number;
  draining(): boolean;
  /** The backbone adapter's own counters, if it keeps any. */
  backboneStats(): object | undefined;
}

/**
 * A registry whose text exposition (what `GET /metrics` answers) can come from elsewhere: with
 * `--workers`, each worker's scrape answers for every worker of the machine (the CLI's
 * worker-metrics.ts), while the aggregation still reads each worker's own metrics through
 * `getMetricsAsJSON`, which this leaves alone.
 */
class NodeRegistry extends Registry {
  scrape: (() => Promise<string>) | undefined;

  override metrics(): Promise<string> {
    return this.scrape ? this.scrape() : super.metrics();
  }
}

/** The gateway's metrics, registered in their own registry. */
export class GatewayMetrics {
  private readonly nodeRegistry = new NodeRegistry();
  readonly registry: Registry = this.nodeRegistry;
  readonly connectsTotal: Counter<'transport' | 'protocol'>;
  readonly reconnectsTotal: Counter;
  readonly disconnectsTotal: Counter<'code' | 'transport' | 'protocol'>;
  readonly publishDelivery: Histogram;
  readonly slowConsumerDisconnects: Counter;
  readonly admissionRejects: Counter<'reason'>;
  readonly authCacheHits: Counter;
  readonly authCacheMisses: Counter;
  readonly authFailures: Counter<'reason'>;
  readonly deliveries: Counter;
  readonly publications: Counter<'source'>;
  readonly protocolErrors: Counter<'code'>;
  readonly backboneStateChanges: Counter<'state'>;
  readonly backbonePublishErrors: Counter;
  readonly recoveries: Counter<'outcome'>;
  readonly backboneTransit: Histogram;
  readonly batchDelay: Histogram;
  readonly batchedSends: Counter<'outcome'>;
  readonly drainClosed: Counter;
  readonly rebalanceClosed: Counter;

  /**
   * Makes `GET /metrics` answer with `scrape` instead of this node's own metrics (which
   * `registry.getMetricsAsJSON()` still gives): the hook for aggregating cluster workers.
   */
  answerScrapesWith(scrape: () => Promise<string>): void {
    this.nodeRegistry.scrape = scrape;
  }

  constructor(nodeId: string, source: MetricsSource) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node: nodeId });
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });

    new Gauge({
      name: 'gatehouse_connections',
      help: 'Open connections on this node, by transport (websocket, sse, http-stream) and client protocol (gatehouse, pusher)',
      labelNames: ['transport', 'protocol'],
      registers,
      collect() {
        this.reset();
        const by = source.connectionsByTransport?.().values() ?? [
          { transport: 'websocket', protocol: 'gatehouse', n: source.connectionCount() },
        ];
        for (const { transport, protocol, n } of by) this.set({ transport, protocol }, n);
      },
    });
    this.connectsTotal = new Counter({
      name: 'gatehouse_connects_total',
      help: 'Connections that completed connect, by transport and client protocol',
      labelNames: ['transport', 'protocol'],
      registers,
    });
    this.reconnectsTotal = new Counter({
      name: 'gatehouse_reconnects_total',
      help: 'Connects that the SDK marked as reconnects after a lost connection',
      registers,
    });
    this.disconnectsTotal = new Counter({
      name: 'gatehouse_disconnects_total',
      help: 'Connections closed, by close code: the code the server decided when it started the close (a slow consumer cut is 4300 even though its socket is dropped), otherwise the code the client sent or 1006',
      labelNames: ['code', 'transport', 'protocol'],
      registers,
    });
    this.publishDelivery = new Histogram({
      name: 'gatehouse_publish_delivery_seconds',
      help: 'From publication accepted to its bytes written to the last local subscriber socket (one observation per publication per node)',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers,
    });
    const queueHist = new Histogram({
      name: 'gatehouse_outbound_queue_bytes',
      help: 'Bytes waiting to be written, one observation per open connection at scrape time',
      buckets: [0, 1024, 16384, 65536, 262144, 1048576, 4194304, 16777216],
      registers,
      collect() {
        this.reset();
        let max = 0;
        for (const d of source.queueDepths()) {
          this.observe(d);
          if (d > max) max = d;
        }
        queueMax.set(max);
      },
    });
    void queueHist;
    const queueMax = new Gauge({
      name: 'gatehouse_outbound_queue_max_bytes',
      help: 'Largest outbound queue of any connection at scrape time',
      registers,
    });
    this.slowConsumerDisconnects = new Counter({
      name: 'gatehouse_slow_consumer_disconnects_total',
      help: 'Connections closed because their outbound queue hit the cap',
      registers,
    });
    this.admissionRejects = new Counter({
      name: 'gatehouse_admission_rejects_total',
      help: 'Connections refused by admission control, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.authCacheHits = new Counter({
      name: 'gatehouse_auth_cache_hits_total',
      help: 'Tokens answered from the verified-token cache',
      registers,
    });
    this.authCacheMisses = new Counter({ name: 'gatehouse_auth_cache_misses_total', help: 'Tokens verified cryptographically', registers });
    this.authFailures = new Counter({
      name: 'gatehouse_auth_failures_total',
      help: 'Refused connect attempts, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.deliveries = new Counter({ name: 'gatehouse_deliveries_total', help: 'Publications queued to subscriber sockets', registers });
    this.publications = new Counter({
      name: 'gatehouse_publications_total',
      help: 'Publications accepted by this node, by source',
      labelNames: ['source'],
      registers,
    });
    this.protocolErrors = new Counter({
      name: 'gatehouse_protocol_errors_total',
      help: 'Malformed or refused client frames, by error code',
      labelNames: ['code'],
      registers,
    });
    new Gauge({
      name: 'gatehouse_backbone_up',
      help: '1 when the backbone is connected',
      registers,
      collect() {
        this.set(source.backboneUp() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'gatehouse_backbone_stat',
      help: "The backbone adapter's own counters (reconnects, publish errors, malformed messages, ...)",
      labelNames: ['stat'],
      registers,
      collect() {
        this.reset();
        const stats = source.backboneStats();
        if (!stats) return;
        for (const [stat, value] of Object.entries(stats)) if (typeof value === 'number') this.set({ stat }, value);
      },
    });
    this.backboneTransit = new Histogram({
      name: 'gatehouse_backbone_transit_seconds',
      help: 'From publication accepted to its arrival at this node from the backbone (backbone lag)',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers,
    });
    this.batchDelay = new Histogram({
      name: 'gatehouse_batch_delay_seconds',
      help: 'Delay adaptive write batching added to a flush on a saturated node (one observation per delayed flush; none on a node with time to spare)',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
      registers,
    });
    this.batchedSends = new Counter({
      name: 'gatehouse_batched_sends_total',
      help: 'Socket writes made by the batched send (one send(2) each), by outcome: all taken, or the rest left to the socket (full buffer, error)',
      labelNames: ['outcome'],
      registers,
    });
    this.backboneStateChanges = new Counter({
      name: 'gatehouse_backbone_state_changes_total',
      help: 'Backbone connection state changes, by new state',
      labelNames: ['state'],
      registers,
    });
    this.backbonePublishErrors = new Counter({
      name: 'gatehouse_backbone_publish_errors_total',
      help: 'Publications the backbone refused',
      registers,
    });
    this.recoveries = new Counter({
      name: 'gatehouse_recoveries_total',
      help: 'Subscriptions that asked to recover, by outcome: recovered, gap (history could not cover it), too_large (the replay would not fit the outbound queue)',
      labelNames: ['outcome'],
      registers,
    });
    new Gauge({
      name: 'gatehouse_channels',
      help: 'Channels with at least one local subscriber',
      registers,
      collect() {
        this.set(source.channelCount());
      },
    });
    new Gauge({
      name: 'gatehouse_auth_cache_entries',
      help: 'Verified tokens in the cache',
      registers,
      collect() {
        this.set(source.tokenCacheEntries());
      },
    });
    new Gauge({
      name: 'gatehouse_draining',
      help: '1 while the node drains',
      registers,
      collect() {
        this.set(source.draining() ? 1 : 0);
      },
    });
    this.rebalanceClosed = new Counter({
      name: 'gatehouse_rebalance_closed_total',
      help: 'Connections handed to other nodes because this node held more than its share',
      registers,
    });
    this.drainClosed = new Counter({
      name: 'gatehouse_drain_closed_total',
      help: 'Connections closed by a drain',
      registers,
    });
  }
}
