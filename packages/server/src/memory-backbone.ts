/**
 * The embedded backbone: publications loop back inside one process, history is a ring per
 * channel. Several `MemoryBackbone`s sharing one `MemoryBus` form an in-process cluster, which is
 * what the multi-node unit tests use.
 */
import { randomBytes } from 'node:crypto';
import type {
  Backbone,
  BackboneCapabilities,
  BackboneHandler,
  BackboneState,
  ControlMessage,
  ControlRecord,
  HistoryResult,
  Publication,
  PublishOptions,
} from './backbone.js';
import { BackboneUnavailableError, checkControlMessage, checkRecord, checkRecordKind, nowMs } from './backbone.js';

interface ChannelStream {
  epoch: string;
  offset: number;
  /** Ring of the newest publications; `ring[(start + i) % ring.length]` for i < count. */
  ring: Publication[];
  start: number;
  count: number;
  ttlMs: number;
  lastPublishAt: number;
}

/** Shared state of an in-process cluster of memory backbones. */
export class MemoryBus {
  readonly streams = new Map<string, ChannelStream>();
  readonly subscribers = new Map<string, Set<MemoryBackbone>>();
  /** Started backbones: every one hears every control message. */
  readonly members = new Set<MemoryBackbone>();
  /** Fleet records by kind, then key. */
  readonly records = new Map<string, Map<string, ControlRecord>>();
  private sweeper: NodeJS.Timeout | undefined;

  /** Streams idle for longer than this with no history left are forgotten (epoch resets). */
  constructor(readonly idleStreamMs = 60_000) {}

  /** @internal */
  retain(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => this.sweep(Date.now()), Math.min(10_000, this.idleStreamMs));
    this.sweeper.unref();
  }

  /** Drops expired history and forgets streams nobody needs, so channel churn cannot grow memory. */
  sweep(now: number): void {
    for (const [kind, byKey] of this.records) {
      for (const [key, r] of byKey) if (r.expiresAt <= now) byKey.delete(key);
      if (byKey.size === 0) this.records.delete(kind);
    }
    for (const [channel, s] of this.streams) {
      trimExpired(s, now);
      if (s.count === 0 && now - s.lastPublishAt > this.idleStreamMs && !this.subscribers.has(channel)) {
        this.streams.delete(channel);
      }
    }
  }

  /** @internal */
  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}

function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

function trimExpired(s: ChannelStream, now: number): void {
  if (s.ttlMs <= 0) return;
  while (s.count > 0) {
    const oldest = s.ring[s.start] as Publication;
    if (now - oldest.ts <= s.ttlMs) break;
    s.ring[s.start] = undefined as unknown as Publication;
    s.start = (s.start + 1) % s.ring.length;
    s.count--;
  }
}

/** Records one kind may hold on a bus; a put past it is refused (nothing grows without bound). */
export const MEMORY_MAX_RECORDS_PER_KIND = 100_000;

/** What a memory backbone is built from. */
export interface MemoryBackboneOptions {
  /** The bus shared with the other backbones of an in-process cluster; default a fresh one. */
  bus?: MemoryBus;
  /**
   * Keep fleet records on the bus (default true). False behaves like NATS core, which keeps none:
   * tests use it to exercise how nodes learn records from their peers.
   */
  keepRecords?: boolean;
}

/** In-process backbone. The default: one command starts a working single node. */
export class MemoryBackbone implements Backbone {
  readonly kind = 'memory';
  readonly capabilities: BackboneCapabilities;
  private handler: BackboneHandler | undefined;
  private current: BackboneState = 'connecting';
  readonly bus: MemoryBus;

  constructor(options: MemoryBackboneOptions = {}) {
    this.bus = options.bus ?? new MemoryBus();
    this.capabilities = {
      sequenced: true,
      history: true,
      contiguousOffsets: true,
      durable: false,
      shared: false,
      durableRecords: options.keepRecords ?? true,
    };
  }

  get state(): BackboneState {
    return this.current;
  }

  async start(handler: BackboneHandler): Promise<void> {
    this.handler = handler;
    this.bus.retain();
    this.bus.members.add(this);
    this.current = 'up';
    handler.onStateChange('up');
  }

  async publish(channel: string, data: string, options: PublishOptions): Promise<Publication> {
    if (this.current !== 'up') throw new BackboneUnavailableError(`memory backbone is ${this.current}`);
    const now = nowMs();
    let s = this.bus.streams.get(channel);
    if (!s) {
      s = { epoch: newEpoch(), offset: 0, ring: [], start: 0, count: 0, ttlMs: 0, lastPublishAt: now };
      this.bus.streams.set(channel, s);
    }
    const pub: Publication = { channel, epoch: s.epoch, offset: s.offset + 1, ts: now, data };
    s.offset = pub.offset;
    s.lastPublishAt = now;
    s.ttlMs = options.historyTtlSeconds * 1000;
    appendHistory(s, pub, options.historySize);
    trimExpired(s, now);
    const subs = this.bus.subscribers.get(channel);
    if (subs) for (const b of subs) b.handler?.onPublication(pub);
    return pub;
  }

  async subscribe(channel: string): Promise<void> {
    if (this.current !== 'up') throw new BackboneUnavailableError(`memory backbone is ${this.current}`);
    let set = this.bus.subscribers.get(channel);
    if (!set) this.bus.subscribers.set(channel, (set = new Set()));
    set.add(this);
  }

  async unsubscribe(channel: string): Promise<void> {
    const set = this.bus.subscribers.get(channel);
    if (!set) return;
    set.delete(this);
    if (set.size === 0) this.bus.subscribers.delete(channel);
  }

  async history(channel: string, after: { epoch: string; offset: number } | undefined, limit: number): Promise<HistoryResult> {
    let s = this.bus.streams.get(channel);
    if (!s) {
      // A channel nobody published to yet still has a stable position, so a client that
      // subscribes now can recover later from (epoch, 0).
      s = { epoch: newEpoch(), offset: 0, ring: [], start: 0, count: 0, ttlMs: 0, lastPublishAt: Date.now() };
      this.bus.streams.set(channel, s);
    }
    trimExpired(s, Date.now());
    if (!after) return { epoch: s.epoch, offset: s.offset, publications: [], complete: true };
    if (after.epoch !== s.epoch || after.offset > s.offset) {
      return { epoch: s.epoch, offset: s.offset, publications: [], complete: false };
    }
    const missed = s.offset - after.offset;
    const oldest = s.count > 0 ? (s.ring[s.start] as Publication).offset : s.offset + 1;
    const complete = missed === 0 || (after.offset + 1 >= oldest && missed <= limit);
    if (!complete) return { epoch: s.epoch, offset: s.offset, publications: [], complete: false };
    const publications: Publication[] = [];
    for (let i = s.count - missed; i < s.count; i++) {
      publications.push(s.ring[(s.start + i) % s.ring.length] as Publication);
    }
    return { epoch: s.epoch, offset: s.offset, publications, complete: true };
  }

  async sendControl(msg: ControlMessage): Promise<void> {
    if (this.current !== 'up') throw new BackboneUnavailableError(`memory backbone is ${this.current}`);
    checkControlMessage(msg);
    // A copy per send, so no receiver can change what the others see.
    const copy: ControlMessage =
      msg.to === undefined
        ? { type: msg.type, from: msg.from, data: msg.data }
        : { type: msg.type, from: msg.from, to: msg.to, data: msg.data };
    for (const b of this.bus.members) b.handler?.onControl(copy);
  }

  async putRecord(kind: string, record: ControlRecord): Promise<void> {
    if (this.current !== 'up') throw new BackboneUnavailableError(`memory backbone is ${this.current}`);
    checkRecord(kind, record);
    if (!this.capabilities.durableRecords) return;
    let byKey = this.bus.records.get(kind);
    if (!byKey) this.bus.records.set(kind, (byKey = new Map()));
    if (!byKey.has(record.key) && byKey.size >= MEMORY_MAX_RECORDS_PER_KIND) {
      throw new BackboneUnavailableError(`at most ${MEMORY_MAX_RECORDS_PER_KIND} records of kind "${kind}"`);
    }
    byKey.set(record.key, { key: record.key, value: record.value, expiresAt: record.expiresAt });
  }

  async records(kind: string): Promise<ControlRecord[]> {
    checkRecordKind(kind);
    if (this.current !== 'up') throw new BackboneUnavailableError(`memory backbone is ${this.current}`);
    const now = Date.now();
    const out: ControlRecord[] = [];
    for (const r of this.bus.records.get(kind)?.values() ?? []) if (r.expiresAt > now) out.push(r);
    return out;
  }

  async close(): Promise<void> {
    if (this.current === 'closed') return;
    this.bus.members.delete(this);
    for (const [channel, set] of this.bus.subscribers) {
      set.delete(this);
      if (set.size === 0) this.bus.subscribers.delete(channel);
    }
    this.current = 'closed';
    this.handler?.onStateChange('closed');
    this.handler = undefined;
    if (this.bus.subscribers.size === 0) this.bus.stop();
  }
}

function appendHistory(s: ChannelStream, pub: Publication, size: number): void {
  if (size <= 0) {
    s.ring = [];
    s.start = 0;
    s.count = 0;
    return;
  }
  if (s.ring.length !== size) resizeRing(s, size);
  s.ring[(s.start + s.count) % size] = pub;
  if (s.count < size) s.count++;
  else s.start = (s.start + 1) % size;
}

/** Retention changed (or first publish): keep the newest entries that still fit. */
function resizeRing(s: ChannelStream, size: number): void {
  const kept = new Array<Publication>(size);
  const n = Math.min(s.count, size);
  for (let i = 0; i < n; i++) kept[i] = s.ring[(s.start + s.count - n + i) % s.ring.length] as Publication;
  s.ring = kept;
  s.start = 0;
  s.count = n;
}
