/**
 * The NATS core backbone: the lowest-latency fan-out, and nothing more. NATS core keeps no
 * history and orders messages only per publisher, so publications carry epoch "" and offset 0
 * (capabilities.sequenced false): clients cannot recover, and every reconnect of the gateway to
 * NATS (`down` then `up`) is the core's signal to tell its clients their streams may have gaps.
 *
 * Control messages travel on the fleet's control subject (see control.ts). Fleet records are not
 * kept (capabilities.durableRecords false): NATS core has nowhere to keep them, and the gateway
 * core learns the live ones from its peers over control messages instead.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  checkChannel,
  checkPublishData,
  checkRecord,
  checkRecordKind,
  decodeEnvelope,
  encodeEnvelope,
  nowMs,
  type Backbone,
  type BackboneCapabilities,
  type BackboneHandler,
  type BackboneState,
  type ControlMessage,
  type ControlRecord,
  type HistoryResult,
  type Publication,
  type PublishOptions,
} from '@gatehouse/backbone-kit';
import { NatsLink, within, type NatsBackboneStats } from './connection.js';
import { NatsControl } from './control.js';
import { resolveNatsOptions, type NatsBackboneOptions, type ResolvedNatsOptions } from './options.js';
import { channelToSubject } from './subject.js';

const CAPABILITIES: BackboneCapabilities = {
  sequenced: false,
  history: false,
  contiguousOffsets: false,
  durable: false,
  shared: true,
  durableRecords: false,
};

/** A Backbone on NATS core subjects (see the module comment for what it cannot promise). */
export class NatsBackbone implements Backbone {
  readonly kind = 'nats';
  readonly capabilities = CAPABILITIES;
  /** The options in effect, defaults filled in. */
  readonly options: ResolvedNatsOptions;
  private readonly link: NatsLink;
  private readonly control: NatsControl;
  private handler: BackboneHandler | undefined;
  private readonly subs = new Map<string, Subscription>();
  /** Subscribes in flight, so a concurrent second subscribe waits for the same flush. */
  private readonly pending = new Map<string, Promise<void>>();

  constructor(options: NatsBackboneOptions) {
    this.options = resolveNatsOptions(options, 'NatsBackbone');
    // The client resubscribes by itself on reconnect (the control subject too); one flush proves
    // the server has them all.
    this.link = new NatsLink(this.options, 'nats', async () => {
      const nc = this.link.nc as NatsConnection;
      await within(nc.flush(), this.options.timeoutMs, 'nats flush after reconnect');
    });
    this.control = new NatsControl(this.link, this.options.subjectPrefix, this.options.timeoutMs, this.options.onMalformed);
  }

  get state(): BackboneState {
    return this.link.state;
  }

  /** Counters since construction (a copy). */
  stats(): NatsBackboneStats {
    return { ...this.link.stats };
  }

  /** The subject `channel` maps to. */
  subjectOf(channel: string): string {
    return channelToSubject(this.options.subjectPrefix, channel);
  }

  async start(handler: BackboneHandler): Promise<void> {
    this.handler = handler;
    const nc = await this.link.open(handler);
    try {
      await this.control.listen(nc);
    } catch (err) {
      await this.link.close();
      throw err;
    }
    this.link.ready();
  }

  async publish(channel: string, data: string, _options: PublishOptions): Promise<Publication> {
    try {
      const nc = this.link.assertUp();
      checkChannel(channel);
      checkPublishData(data);
      const ts = nowMs();
      // Accepted = written to the connection: NATS core has no acknowledgement (at most once).
      nc.publish(this.subjectOf(channel), encodeEnvelope({ channel, epoch: '', offset: 0, ts, data }));
      return { channel, epoch: '', offset: 0, ts, data };
    } catch (err) {
      this.link.stats.publishErrors++;
      throw err;
    }
  }

  async subscribe(channel: string): Promise<void> {
    const nc = this.link.assertUp();
    checkChannel(channel);
    if (this.subs.has(channel)) {
      await this.pending.get(channel);
      return;
    }
    const subject = this.subjectOf(channel);
    const sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err || this.subs.get(channel) !== sub) return;
        const env = decodeEnvelope(msg.data, channel);
        if (typeof env === 'string') {
          this.link.stats.malformed++;
          this.options.onMalformed?.(env, msg.subject);
          return;
        }
        // Traffic after an outage can overtake the client's 'reconnect' status. Report 'up' first,
        // so the core's gap for the outage reaches clients before anything published after it.
        if (this.link.state === 'down') this.link.ready();
        this.link.deliver(this.handler, { channel, epoch: '', offset: 0, ts: env.ts, data: env.data });
      },
    });
    this.subs.set(channel, sub);
    // The SUB is only known to the server once a flush round-trip returns.
    const p = within(nc.flush(), this.options.timeoutMs, `nats subscribe ${subject}`);
    this.pending.set(channel, p);
    try {
      await p;
    } catch (err) {
      if (this.subs.get(channel) === sub) {
        this.subs.delete(channel);
        sub.unsubscribe();
      }
      throw err;
    } finally {
      if (this.pending.get(channel) === p) this.pending.delete(channel);
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    const sub = this.subs.get(channel);
    if (!sub) return;
    this.subs.delete(channel);
    // Late messages already in flight are dropped by the callback's identity check.
    if (!sub.isClosed()) sub.unsubscribe();
  }

  async history(channel: string, after: { epoch: string; offset: number } | undefined, _limit: number): Promise<HistoryResult> {
    checkChannel(channel);
    // No history: a position is always ("", 0), and any recovery is a gap.
    return { epoch: '', offset: 0, publications: [], complete: after === undefined };
  }

  async sendControl(msg: ControlMessage): Promise<void> {
    await this.control.send(msg);
  }

  /** Checks the record and keeps nothing (see the module comment). Rejects unless up. */
  async putRecord(kind: string, record: ControlRecord): Promise<void> {
    checkRecord(kind, record);
    this.link.assertUp();
  }

  /** Always empty (nothing is kept). Rejects unless up, like every other call. */
  async records(kind: string): Promise<ControlRecord[]> {
    checkRecordKind(kind);
    this.link.assertUp();
    return [];
  }

  async close(): Promise<void> {
    this.subs.clear();
    await this.link.close();
  }
}

/** Creates a NatsBackbone on `nats://host:port` (not started). */
export function createNatsBackbone(url: string | readonly string[], options: Omit<NatsBackboneOptions, 'servers'> = {}): NatsBackbone {
  return new NatsBackbone({ ...options, servers: typeof url === 'string' ? [url] : url });
}
