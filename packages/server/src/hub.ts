/**
 * The hub: which local sessions subscribe to which channels, and the one delivery path from the
 * backbone to their sockets.
 *
 * - Backbone subscriptions are reference-counted here: the first local subscriber subscribes the
 *   channel once, a failure rolls back, the last one leaves after a short linger.
 * - A publication is encoded once and framed once per transport framing; the same Buffer is queued
 *   for every subscriber of that framing. Queues are flushed once per tick, so what a connection
 *   gets in one tick is one write.
 * - Each channel tracks the last position delivered on this node. On backbones with contiguous
 *   offsets a jump (lost pub/sub message, reconnect) is filled from history before anything newer
 *   is delivered; a hole history cannot fill, or a changed epoch, is reported to clients as a gap.
 */
import { encodePub, encodeServerFrame, type GapReason, type StreamPosition } from '@gatehouse/protocol';
import type { Backbone, BackboneHandler, BackboneState, Publication } from './backbone.js';
import { mergeRecovery } from './recovery.js';
import { Outbound, type OutboundOptions } from './outbound.js';
import { ReplayCache, replayBytes } from './replay-cache.js';
import { Session, SessionState } from './session.js';
import type { Logger } from 'pino';

interface Channel {
  readonly name: string;
  readonly subs: Set<Session>;
  /** Settles when the backbone subscription is in place. */
  ready: Promise<void>;
  lingerTimer: NodeJS.Timeout | undefined;
  /** Last position delivered on this node ('' epoch: not known yet). */
  epoch: string;
  offset: number;
  /** While filling a hole from history, newer publications wait here. */
  resync: Publication[] | undefined;
  /** A fill failed because the backbone was away: retry it when the backbone is up again. */
  fillOnUp: boolean;
}

/** What the hub needs from the gateway (besides what its outbound queues need). */
export interface HubOptions extends OutboundOptions {
  backbone: Backbone;
  log: Logger;
  channelLingerMs: number;
  /** Bytes of encoded replay frames shared between recovering clients. */
  replayCacheBytes: number;
  /** History limit for one recovery or resync read of `channel`. */
  historyLimit(channel: string): number;
  /** Told when a session becomes a subscriber (after its `subscribed` reply) and when it stops. */
  presence?: { joined(s: Session, channel: string): void; left(s: Session, channel: string): void };
}

/** Outcome of a subscription request. */
export interface SubscribeResult {
  epoch: string;
  offset: number;
  recovered?: boolean;
}

const MAX_RESYNC_BUFFER = 10_000;
/** In a fan-out's per-framing cache: this framing sends nothing for the event. */
const NO_FRAME = Buffer.alloc(0);

/** Channel registry and fan-out. */
export class Hub implements Pick<BackboneHandler, 'onPublication' | 'onStateChange'> {
  private readonly channels = new Map<string, Channel>();
  private readonly out: Outbound;
  private wasDown = false;
  /** One fan-out's frames by framing id: built on first use, cleared after the fan-out. */
  private readonly frames: (Buffer | undefined)[] = [];
  /** Replayed publications' frames, shared by every client recovering the same channel. */
  private readonly replays: ReplayCache;

  constructor(private readonly o: HubOptions) {
    this.replays = new ReplayCache(o.replayCacheBytes);
    this.out = new Outbound(o);
  }

  /** Bytes of replayed frames the node holds for recovering clients (shared, bounded). */
  get replayBytes(): number {
    return this.replays.size;
  }

  /** Number of channels with local subscribers. */
  get channelCount(): number {
    return this.channels.size;
  }

  /** Each channel of this node with its local subscriber count (the server API's channel list). */
  *channelSubscribers(): IterableIterator<[string, number]> {
    for (const ch of this.channels.values()) if (ch.subs.size > 0) yield [ch.name, ch.subs.size];
  }

  // ---- backbone handler ----

  onPublication(pub: Publication): void {
    const ch = this.channels.get(pub.channel);
    if (!ch) return;
    if (ch.resync) {
      if (ch.resync.length < MAX_RESYNC_BUFFER) {
        ch.resync.push(pub);
        return;
      }
      // Too much waited for the fill: report the gap, deliver what waited, then this one below.
      this.abandonResync(ch, 'history');
    }
    if (pub.offset === 0 || ch.epoch === '') {
      // Unsequenced backbone, or the first publication this node sees on the channel.
      if (pub.offset !== 0) this.advance(ch, pub);
      this.fanout(ch, pub);
      return;
    }
    if (pub.epoch !== ch.epoch) {
      // The history behind the channel was lost or reset: continuity is broken for everyone.
      this.gap(ch, 'epoch');
      this.advance(ch, pub);
      this.fanout(ch, pub);
      return;
    }
    if (pub.offset <= ch.offset) return; // redelivery: already delivered on this node
    if (this.o.backbone.capabilities.contiguousOffsets && pub.offset > ch.offset + 1) {
      ch.resync = [pub];
      void this.fillFromHistory(ch);
      return;
    }
    this.advance(ch, pub);
    this.fanout(ch, pub);
  }

  onStateChange(state: BackboneState): void {
    if (state === 'down') {
      this.wasDown = true;
      return;
    }
    if (state !== 'up' || !this.wasDown) return;
    this.wasDown = false;
    // Publications may have been missed while the backbone was away. Where history exists, fill
    // the hole; otherwise say so: never a silent gap.
    for (const ch of this.channels.values()) {
      if (!this.o.backbone.capabilities.history || ch.epoch === '') {
        this.gap(ch, 'backbone');
      } else if (!ch.resync) {
        ch.resync = [];
        void this.fillFromHistory(ch);
      } else if (ch.fillOnUp) {
        // A fill that failed during the outage: history is reachable again, so try it now.
        ch.fillOnUp = false;
        void this.fillFromHistory(ch);
      }
    }
  }

  // ---- subscriptions ----

  /**
   * Subscribes `s` to `channel`, recovering from `since` when given. Resolves after the
   * `subscribed` reply and any replayed publications were queued (in that order).
   */
  async subscribe(s: Session, channel: string, requestId: number, since: StreamPosition | undefined): Promise<void> {
    let ch = this.channels.get(channel);
    if (!ch) {
      ch = {
        name: channel,
        subs: new Set(),
        ready: Promise.resolve(),
        lingerTimer: undefined,
        epoch: '',
        offset: 0,
        resync: undefined,
        fillOnUp: false,
      };
      this.channels.set(channel, ch);
      const created = ch;
      ch.ready = this.o.backbone.subscribe(channel).catch((err: unknown) => {
        // Roll back so the next subscriber tries again instead of joining a dead channel.
        if (this.channels.get(channel) === created) this.channels.delete(channel);
        throw err;
      });
    } else if (ch.lingerTimer) {
      clearTimeout(ch.lingerTimer);
      ch.lingerTimer = undefined;
    }
    ch.subs.add(s);
    // A new array of the exact size: pushing onto an empty one would reserve 16 slots, on every
    // connection, for what is mostly one subscription.
    s.channels = s.channels.concat(channel);
    (s.recovering ??= new Map()).set(channel, []);
    try {
      await ch.ready;
      const sequenced = this.o.backbone.capabilities.sequenced;
      const hist = sequenced
        ? await this.o.backbone.history(channel, since, this.o.historyLimit(channel))
        : { epoch: '', offset: 0, publications: [], complete: false };
      if (s.state === SessionState.Closing || !s.channels.includes(channel)) return;
      if (ch.epoch === '' && hist.epoch !== '') {
        ch.epoch = hist.epoch;
        ch.offset = hist.offset;
      }
      const result: SubscribeResult = { epoch: hist.epoch, offset: hist.offset };
      let replay = false;
      if (since) {
        // A replay that cannot fit the outbound queue would cut the client as a slow consumer
        // before it is subscribed, and it would come back and be cut again: refuse it instead.
        const outcome = !hist.complete ? 'gap' : this.replayFits(hist.publications) ? 'recovered' : 'too_large';
        replay = outcome === 'recovered';
        result.recovered = replay;
        this.o.metrics.recoveries.inc({ outcome });
      }
      const framing = s.transport.framing;
      // Request id 0: the server API subscribed the session (session-commands.ts), not the client.
      const v1 = requestId > 0 ? { op: 'subscribed' as const, id: requestId, channel } : { op: 'server_subscribed' as const, channel };
      const reply = framing.subscribed ? framing.subscribed(channel, result) : encodeServerFrame({ ...v1, ...result });
      if (reply !== undefined) this.send(s, reply);
      this.o.presence?.joined(s, channel);
      if (hist.epoch !== '' && (ch.resync !== undefined || hist.epoch !== ch.epoch || hist.offset > ch.offset)) {
        // The reply's position is ahead of what this node delivered: what the hub still delivers
        // up to it (a fill, a lagging channel) was covered by the reply or the replay.
        (s.floors ??= new Map()).set(channel, { epoch: hist.epoch, offset: hist.offset });
      }
      const waiting = s.recovering?.get(channel) ?? [];
      s.recovering?.delete(channel);
      if (s.recovering?.size === 0) s.recovering = undefined;
      const replayed = replay ? hist.publications.length : 0;
      const deliver = mergeRecovery(
        { epoch: hist.epoch, offset: hist.offset, publications: replayed > 0 ? hist.publications : [] },
        waiting,
      );
      for (let i = 0; i < deliver.length; i++) {
        const p = deliver[i] as Publication;
        // A replay is bounded by the namespace's history size, so only the byte cap applies to it:
        // the message cap would cut every client whose outage outlasted that many publications.
        if (framing.excludes?.(p, s)) continue;
        if (i < replayed) this.out.enqueue(s, this.replays.frame(p, framing), false);
        else if (framing.publication) this.out.enqueue(s, framing.publication(p));
        else this.out.enqueue(s, framing.message(encodePub(p.channel, p.epoch, p.offset, p.ts, p.data)));
      }
    } catch (err) {
      this.removeFromChannel(s, channel);
      throw err;
    }
  }

  /** True when a replay of `pubs` fits in half an outbound queue. */
  private replayFits(pubs: readonly Publication[]): boolean {
    let bytes = 0;
    const budget = this.o.maxQueueBytes / 2;
    for (const p of pubs) if ((bytes += replayBytes(p)) > budget) return false;
    return true;
  }

  /** Removes `s` from `channel`. Returns false when it was not subscribed. */
  unsubscribe(s: Session, channel: string): boolean {
    if (!s.channels.includes(channel)) return false;
    this.removeFromChannel(s, channel);
    return true;
  }

  /** Removes a closed session from every channel. */
  removeSession(s: Session): void {
    for (const channel of s.channels.slice()) this.removeFromChannel(s, channel);
    s.recovering = undefined;
    s.clearQueued();
  }

  private removeFromChannel(s: Session, channel: string): void {
    const i = s.channels.indexOf(channel);
    if (i >= 0) s.channels.splice(i, 1);
    this.o.presence?.left(s, channel);
    if (s.recovering?.delete(channel) && s.recovering.size === 0) s.recovering = undefined;
    if (s.floors?.delete(channel) && s.floors.size === 0) s.floors = undefined;
    const ch = this.channels.get(channel);
    if (!ch || !ch.subs.delete(s) || ch.subs.size > 0) return;
    // The last local subscriber left: keep the backbone subscription briefly to absorb churn.
    ch.lingerTimer = setTimeout(() => {
      ch.lingerTimer = undefined;
      if (ch.subs.size > 0 || this.channels.get(channel) !== ch) return;
      this.channels.delete(channel);
      this.o.backbone.unsubscribe(channel).catch((err: unknown) => {
        this.o.log.warn({ err, channel }, 'backbone unsubscribe failed');
      });
    }, this.o.channelLingerMs);
    ch.lingerTimer.unref();
  }

  /** Drops every channel (gateway shutdown). */
  clear(): void {
    for (const ch of this.channels.values()) if (ch.lingerTimer) clearTimeout(ch.lingerTimer);
    this.channels.clear();
  }

  // ---- delivery ----

  private advance(ch: Channel, pub: Publication): void {
    ch.epoch = pub.epoch;
    ch.offset = pub.offset;
  }

  private fanout(ch: Channel, pub: Publication): void {
    const json = encodePub(pub.channel, pub.epoch, pub.offset, pub.ts, pub.data);
    const frames = this.frames;
    let n = 0;
    for (const s of ch.subs) {
      const waiting = s.recovering?.get(ch.name);
      if (waiting) {
        if (s.state === SessionState.Closing) continue;
        waiting.push(pub);
        if (waiting.length > this.o.maxQueueMessages) this.o.onSlowConsumer(s);
        continue;
      }
      if (s.floors !== undefined && this.belowFloor(s, ch.name, pub)) continue;
      const framing = s.transport.framing;
      if (framing.excludes !== undefined && framing.excludes(pub, s)) continue;
      this.out.enqueue(s, (frames[framing.id] ??= framing.publication ? framing.publication(pub) : framing.message(json)));
      n++;
    }
    frames.length = 0;
    if (n > 0) {
      this.o.metrics.deliveries.inc(n);
      this.out.delivered(pub.ts);
    }
  }

  /** True when `pub` is at or below `s`'s floor on `channel`; a floor that `pub` passes goes. */
  private belowFloor(s: Session, channel: string, pub: Publication): boolean {
    const floors = s.floors as Map<string, { epoch: string; offset: number }>;
    const floor = floors.get(channel);
    if (floor === undefined) return false;
    if (pub.offset !== 0 && pub.epoch === floor.epoch && pub.offset <= floor.offset) return true;
    floors.delete(channel);
    if (floors.size === 0) s.floors = undefined;
    return false;
  }

  /** Sends one non-hot frame (replies, errors) to one session, in order with its publications. */
  send(s: Session, json: string): void {
    this.out.enqueue(s, s.transport.framing.message(json));
  }

  private gap(ch: Channel, reason: GapReason): void {
    const json = encodeServerFrame({ op: 'gap', channel: ch.name, reason });
    const frames = this.frames;
    for (const s of ch.subs) {
      const framing = s.transport.framing;
      // Built once per framing, like a publication; NO_FRAME marks a framing that reports no gap.
      let frame = frames[framing.id];
      if (frame === undefined) {
        const own = framing.gap ? framing.gap(ch.name, reason) : json;
        frame = frames[framing.id] = own === undefined ? NO_FRAME : framing.message(own);
      }
      if (frame !== NO_FRAME) this.out.enqueue(s, frame);
    }
    frames.length = 0;
  }

  private abandonResync(ch: Channel, reason: GapReason): void {
    const waiting = ch.resync ?? [];
    ch.resync = undefined;
    this.gap(ch, reason);
    for (const p of waiting) {
      if (p.epoch === ch.epoch && p.offset <= ch.offset) continue;
      this.advance(ch, p);
      this.fanout(ch, p);
    }
  }

  /** Delivers what this node missed on `ch` from history, then what waited in `ch.resync`. */
  private async fillFromHistory(ch: Channel): Promise<void> {
    const duringOutage = this.o.backbone.state !== 'up';
    try {
      const hist = await this.o.backbone.history(ch.name, { epoch: ch.epoch, offset: ch.offset }, this.o.historyLimit(ch.name));
      if (this.channels.get(ch.name) !== ch || !ch.resync) return;
      if (!hist.complete) {
        this.abandonResync(ch, hist.epoch !== ch.epoch ? 'epoch' : 'history');
        return;
      }
      const waiting = ch.resync;
      ch.resync = undefined;
      for (const p of hist.publications) {
        if (p.offset <= ch.offset) continue;
        this.advance(ch, p);
        this.fanout(ch, p);
      }
      const next = waiting[0];
      if (this.o.backbone.capabilities.contiguousOffsets && next && next.epoch === ch.epoch && next.offset > ch.offset + 1) {
        // History said complete but did not reach what waits: never fill again in a loop.
        ch.resync = waiting;
        this.abandonResync(ch, 'history');
        return;
      }
      for (const p of waiting) this.onPublication(p);
    } catch (err) {
      if (this.channels.get(ch.name) !== ch || !ch.resync) return;
      if (this.o.backbone.state !== 'up') {
        // The backbone is away: the hole may well be in history once it is back. Keep what
        // waits (bounded by MAX_RESYNC_BUFFER) and fill when the backbone reports 'up'.
        ch.fillOnUp = true;
        return;
      }
      if (duringOutage) {
        // The read was made while the backbone was away, and it is back now: read again.
        void this.fillFromHistory(ch);
        return;
      }
      this.o.log.warn({ err, channel: ch.name }, 'history read failed while filling a gap');
      this.abandonResync(ch, 'backbone');
    }
  }
}
