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
  HistoryResult,
  Publication,
  PublishOptions,
} from './backbone.js';
import { BackboneUnavailableError, nowMs } from './backbone.js';

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

const CAPABILITIES: BackboneCapabilities = { sequenced: true, history: true, contiguousOffsets: true, durable: false, shared: false };

/** In-process backbone. The default: one command starts a working single node. */
export class MemoryBackbone implements Backbone {
  readonly kind = 'memory';
  readonly capabilities = CAPABILITIES;
  private handler: BackboneHandler | undefined;
  private current: BackboneState = 'connecting';
  readonly bus: MemoryBus;

  constructor(options: { bus?: MemoryBus } = {}) {
    this.bus = options.bus ?? new MemoryBus();
  }

  get state(): BackboneState {
    return this.current;
  }

  async start(handler: BackboneHandler): Promise<void> {
    this.handler = handler;
    this.bus.retain();
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

  async history(
    channel: string,
    after: { epoch: string; offset: number } | undefined,
    limit: number,
  ): Promise<HistoryResult> {
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

  async close(): Promise<void> {
    if (this.current === 'closed') return;
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
