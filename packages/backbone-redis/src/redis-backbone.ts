/**
 * The Redis backbone: Pub/Sub (or sharded pub/sub) for fan-out, a Stream per channel for
 * history, and one Lua script that assigns the offset atomically with the append and the
 * PUBLISH. Several Redis servers form independent shards; a channel lives on the one rendezvous
 * hashing picks, so no coordination between shards is ever needed.
 *
 * Per shard: one command connection (publish, history; no offline queue, so nothing is buffered
 * while Redis is away and publish rejects at once) and, from the first subscribe on, one
 * subscriber connection. Reconnection is ioredis's; re-subscribing is ours, so the backbone only
 * reports `up` once every subscription is back.
 *
 * The control plane rides beside the data: one control pub/sub channel per fleet (key prefix),
 * subscribed on every shard from `start` on, so a control message published on any one shard
 * reaches every node exactly once; records of a kind live in one hash + sorted set on the shard
 * (or cluster slot) the kind's name picks. See scripts.ts for the names.
 *
 * Cluster mode (`redis+cluster://` seeds) is one shard whose two connections are ioredis Cluster
 * clients: commands are routed by the hash-tagged key, and sharded pub/sub goes to the master
 * that owns the slot. A cluster side counts as ready only after a check passes: every master
 * connected and saying `cluster_state:ok` (commands), every channel acknowledged again
 * (subscriber). Anything the Cluster client reports (a node lost or added, ready, closed) makes
 * that side not ready and runs its check again, with backoff, until it passes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import {
  BackboneStateMachine,
  BackboneUnavailableError,
  backoffDelay,
  checkChannel,
  checkControlMessage,
  checkPublishData,
  checkPublishOptions,
  checkRecord,
  checkRecordKind,
  decodeControl,
  decodeEnvelope,
  decodeRecord,
  encodeControl,
  encodeRecord,
  RendezvousHash,
  nowMs,
  type Backbone,
  type BackboneCapabilities,
  type BackboneHandler,
  type BackboneState,
  type ClaimStore,
  type ControlMessage,
  type ControlRecord,
  type HistoryResult,
  type Publication,
  type PublishOptions,
} from '@gatehouse/backbone-kit';
import { parseRedisUrl, resolveRedisOptions, type RedisBackboneOptions, type RedisServer, type ResolvedRedisOptions } from './options.js';
import {
  channelKeys,
  controlChannel,
  PUBLISH_SCRIPT,
  SCRIPT_ENVELOPE_START,
  PUT_RECORD_SCRIPT,
  READ_RECORDS_SCRIPT,
  READ_SCRIPT,
  recordKeys,
  SCRIPTS,
  type LoadedScript,
} from './scripts.js';

const CAPABILITIES: BackboneCapabilities = {
  sequenced: true,
  history: true,
  contiguousOffsets: true,
  durable: true,
  shared: true,
  durableRecords: true,
};

/** Counters for metrics and /readyz. */
export interface RedisBackboneStats {
  /** Connections re-established after a loss (all shards, both connection kinds). */
  reconnects: number;
  /** Publishes that rejected (unreachable, timed out, refused by Redis, or bad arguments). */
  publishErrors: number;
  /** Incoming publication envelopes that did not decode (dropped). */
  malformed: number;
  /** Incoming control messages that did not decode (dropped). */
  controlMalformed: number;
  /** Times the handler threw from a callback (a bug in the caller; the message is dropped). */
  handlerErrors: number;
  /** Stored records that did not decode (skipped by `records`). */
  recordsMalformed: number;
}

/**
 * Most unexpired records one kind may hold; a put of a new key past it rejects (expired records
 * do not count, and are removed on every put and read).
 */
export const REDIS_MAX_RECORDS_PER_KIND = 100_000;
/**
 * How long a kind's keys outlive its longest-lived record on the server, ms: room for the nodes'
 * clocks to differ from the writer's before Redis drops what a slower clock still counts.
 */
const RECORD_KEY_SLACK_MS = 60_000;
/** Outside services connect through `connectRedisPublisher`: no subscriber, no control listening. */
const publisherOnly = new WeakSet<RedisBackbone>();

/** Resubscribing in batches keeps one command's size reasonable with many channels. */
const RESUBSCRIBE_BATCH = 500;
/** Raw text handed to `onMalformed` is cut to this many characters. */
const MALFORMED_SAMPLE = 200;

/** Why a message that did not come through the publish script is dropped. */
const NOT_FROM_SCRIPT = `not written by the publish script (it must begin ${SCRIPT_ENVELOPE_START})`;

/** True when `text` parses as JSON. */
function isJsonText(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** A shard's connection: a Redis client, or a Cluster client in cluster mode. */
type Connection = Redis | Cluster;
type Kind = 'pub' | 'sub';

class Shard {
  pub: Connection | undefined;
  sub: Connection | undefined;
  pubReady = false;
  subReady = false;
  /** Subscribed channels (our names) on this shard; the source of truth for resubscribing. */
  readonly channels = new Set<string>();
  /** Subscribes in flight, so a concurrent second subscribe waits for the same acknowledgement. */
  readonly pending = new Map<string, Promise<void>>();
  subConnecting: Promise<void> | undefined;
  lastError: Error | undefined;
  /** Cluster mode: bumped by every event that makes a side not ready; a check passes only if it did not change meanwhile. */
  readonly generation = { pub: 0, sub: 0 };
  /** Cluster mode: the running check loop of each side, and how to cut its backoff short. */
  readonly checking: { pub?: Promise<void> | undefined; sub?: Promise<void> | undefined } = {};
  readonly wake: { pub?: (() => void) | undefined; sub?: (() => void) | undefined } = {};
  everReady = { pub: false, sub: false };

  /** `seeds` only in cluster mode: the Cluster client's startup nodes. */
  constructor(
    readonly url: string,
    readonly id: string,
    readonly seeds?: readonly RedisServer[],
  ) {}

  ready(kind: Kind): boolean {
    return kind === 'pub' ? this.pubReady : this.subReady;
  }
}

/** A Backbone on one or several Redis servers. */
export class RedisBackbone implements Backbone {
  readonly kind = 'redis';
  readonly capabilities = CAPABILITIES;
  /** The options in effect, defaults filled in. */
  readonly options: ResolvedRedisOptions;
  private readonly shards: Shard[];
  private readonly ring: RendezvousHash;
  private handler: BackboneHandler | undefined;
  private readonly machine = new BackboneStateMachine({ onListenerError: () => this.counters.handlerErrors++ });
  private started = false;
  /** Set once start() saw every shard ready; from then on state changes are reported. */
  private live = false;
  private readonly waiters = new Set<() => void>();
  private readonly nonce = randomBytes(3).toString('base64url');
  private readonly counters: RedisBackboneStats = {
    reconnects: 0,
    publishErrors: 0,
    malformed: 0,
    controlMalformed: 0,
    handlerErrors: 0,
    recordsMalformed: 0,
  };
  /** The control plane's pub/sub channel (per key prefix, so per fleet). */
  private readonly control: string;

  constructor(options: RedisBackboneOptions) {
    this.options = resolveRedisOptions(options);
    const servers = this.options.urls.map((u) => parseRedisUrl(u));
    this.shards = this.options.cluster
      ? [new Shard(this.options.urls.join(','), `cluster(${servers.map((s) => s.id).join(',')})`, servers)]
      : servers.map((s) => new Shard(s.url, s.id));
    this.ring = new RendezvousHash(this.shards.map((s) => s.id));
    this.control = controlChannel(this.options.keyPrefix);
  }

  get state(): BackboneState {
    return this.machine.state;
  }

  /** Counters since construction (a copy). */
  stats(): RedisBackboneStats {
    return { ...this.counters };
  }

  /** The shard id (`host:port/db`; in cluster mode `cluster(<seeds>)`, the one shard) that owns `channel`. */
  shardOf(channel: string): string {
    return this.ring.pick(channel);
  }

  async start(handler: BackboneHandler): Promise<void> {
    if (this.started) throw new Error('RedisBackbone.start was already called');
    this.started = true;
    this.handler = handler;
    this.machine.listen((state, error) => handler.onStateChange(state, error));
    for (const s of this.shards) s.pub = this.connection(s, 'pub');
    try {
      await Promise.all(this.shards.map((s) => this.waitReady(s, s.pub as Connection, 'pub')));
      // Control messages come from any shard (see sendControl): listen on every one from the start.
      if (!publisherOnly.has(this)) await Promise.all(this.shards.map((s) => this.ensureSubscriber(s)));
    } catch (err) {
      await this.close();
      throw err;
    }
    this.live = true;
    this.recompute();
  }

  async publish(channel: string, data: string, options: PublishOptions): Promise<Publication> {
    try {
      return await this.publishOnce(channel, data, options);
    } catch (err) {
      this.counters.publishErrors++;
      throw err;
    }
  }

  private async publishOnce(channel: string, data: string, options: PublishOptions): Promise<Publication> {
    const shard = this.usable(channel);
    checkPublishOptions(options);
    checkPublishData(data);
    const { historySize, historyTtlSeconds } = options;
    const keys = channelKeys(this.options.keyPrefix, channel);
    const ts = nowMs();
    try {
      const [epoch, offset] = (await this.evalScript(
        shard,
        PUBLISH_SCRIPT,
        [keys.pos, keys.log],
        [channel, data, ts, historySize, historyTtlSeconds, this.options.idleTtlSeconds, this.nonce, this.options.sharded ? '1' : '0'],
      )) as [string, number];
      return { channel, epoch, offset, ts, data };
    } catch (err) {
      throw this.translate(shard, err);
    }
  }

  async subscribe(channel: string): Promise<void> {
    const shard = this.usable(channel, true);
    const pending = shard.pending.get(channel);
    if (shard.channels.has(channel)) {
      if (pending) await pending;
      return;
    }
    shard.channels.add(channel);
    const p = this.subscribeOn(shard, channel);
    shard.pending.set(channel, p);
    try {
      await p;
    } finally {
      if (shard.pending.get(channel) === p) shard.pending.delete(channel);
    }
  }

  private async subscribeOn(shard: Shard, channel: string): Promise<void> {
    try {
      await this.ensureSubscriber(shard);
      // Unsubscribed while the connection was being made: nothing to send.
      if (!shard.channels.has(channel)) return;
      const sub = shard.sub as Connection;
      const name = channelKeys(this.options.keyPrefix, channel).pubsub;
      await (sub instanceof Cluster ? clusterSubscribe(sub, name) : this.options.sharded ? sub.ssubscribe(name) : sub.subscribe(name));
    } catch (err) {
      // The caller rolls back; forget the channel so a reconnect does not resurrect it.
      shard.channels.delete(channel);
      throw this.translate(shard, err);
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    if (typeof channel !== 'string') return;
    const shard = this.shards[this.ring.indexOf(channel)] as Shard;
    if (!shard.channels.delete(channel)) return;
    const sub = shard.sub;
    // Not connected: the channel is simply left out when the connection comes back.
    if (!sub || !shard.subReady || this.closed) return;
    const name = channelKeys(this.options.keyPrefix, channel).pubsub;
    try {
      await (this.options.sharded ? sub.sunsubscribe(name) : sub.unsubscribe(name));
    } catch {
      // The connection dropped meanwhile; messages for the channel are filtered out locally and
      // the resubscription after reconnect no longer includes it.
    }
  }

  async history(channel: string, after: { epoch: string; offset: number } | undefined, limit: number): Promise<HistoryResult> {
    const shard = this.usable(channel);
    if (!Number.isSafeInteger(limit) || limit < 0) throw new TypeError('limit must be an integer >= 0');
    if (after && (typeof after.epoch !== 'string' || !Number.isSafeInteger(after.offset) || after.offset < 0)) {
      throw new TypeError('after must be {epoch: string, offset: integer >= 0}');
    }
    const keys = channelKeys(this.options.keyPrefix, channel);
    let reply: [string, number, number, [string, string[]][] | null];
    try {
      reply = (await this.evalScript(
        shard,
        READ_SCRIPT,
        [keys.pos, keys.log],
        [after ? after.epoch : '', after ? after.offset : 0, limit, this.options.idleTtlSeconds, this.nonce],
      )) as typeof reply;
    } catch (err) {
      throw this.translate(shard, err);
    }
    const [epoch, offset, ttl, entries] = reply;
    if (offset > 0) await this.deliveredThrough(shard, channel);
    const position = { epoch, offset, publications: [] as Publication[] };
    if (!after) return { ...position, complete: true };
    if (after.epoch !== epoch || after.offset > offset) return { ...position, complete: false };
    if (after.offset === offset) return { ...position, complete: true };
    const missed = offset - after.offset;
    if (!entries || entries.length !== missed) return { ...position, complete: false };
    const publications: Publication[] = [];
    for (const [id, fields] of entries) {
      const pubOffset = Number(id.slice(0, id.indexOf('-')));
      let data: string | undefined;
      let ts = NaN;
      for (let i = 0; i + 1 < fields.length; i += 2) {
        if (fields[i] === 'd') data = fields[i + 1];
        else if (fields[i] === 't') ts = Number(fields[i + 1]);
      }
      if (data === undefined || !Number.isFinite(ts)) return { ...position, complete: false };
      // The script does not parse data (a service running it by hand may pass anything); live
      // delivery drops such an envelope as malformed, and recovery must not hand it to clients.
      if (!isJsonText(data)) {
        this.counters.malformed++;
        this.options.onMalformed?.(`history entry ${id} of ${channel}: data is not JSON`, data.slice(0, MALFORMED_SAMPLE));
        return { ...position, complete: false };
      }
      publications.push({ channel, epoch, offset: pubOffset, ts, data });
    }
    // Contiguous offsets: the entries are complete exactly when they start right after `after`.
    if ((publications[0] as Publication).offset !== after.offset + 1) return { ...position, complete: false };
    if (ttl > 0 && (publications[0] as Publication).ts < Date.now() - ttl * 1000) return { ...position, complete: false };
    return { epoch, offset, publications, complete: true };
  }

  /**
   * The history barrier (see `Backbone.history`): resolves once every publication of a subscribed
   * `channel` that Redis had already sent when a history read answered has been handed to the
   * handler. The read runs on the command connection, after the publish script wrote each
   * publication up to the read's position to the subscriber connection; Redis answers that
   * connection in order, so the reply to a command sent on it now comes behind them. The command
   * is an unsubscribe from a name nobody subscribes to, in the channel's hash tag: valid in
   * subscriber mode, a no-op, and routed like the channel's own subscription (to the connection
   * of the channel's slot in cluster mode). Without this the core could tell a client "you are
   * at N" and then deliver N again, live.
   */
  private async deliveredThrough(shard: Shard, channel: string): Promise<void> {
    const sub = shard.sub;
    if (!sub || !shard.channels.has(channel)) return;
    // Channel pub/sub names end with the hash tag's `}`, so this one is never a channel's.
    const name = `${channelKeys(this.options.keyPrefix, channel).pubsub}:barrier`;
    try {
      await (this.options.sharded || sub instanceof Cluster ? sub.sunsubscribe(name) : sub.unsubscribe(name));
    } catch (err) {
      // No answer from the subscriber connection: what it still holds could follow the position.
      throw this.translate(shard, err);
    }
  }

  /**
   * Publishes on the shard the control channel's name picks, or, while that one is away, on any
   * other that is up: every node listens on every shard, so one publication reaches each node
   * once wherever it went. Rejects only when no shard can carry it.
   */
  /**
   * Idempotency claims: one string key per (channel, key) on the channel's shard (its hash tag, so
   * the same cluster slot), taken with SET NX PX: atomic across every node of the fleet.
   */
  readonly claims: ClaimStore = {
    claim: async (scope, key, value, ttlMs) => {
      const shard = this.usable(scope);
      const k = this.claimKey(scope, key);
      const conn = shard.pub as Connection;
      try {
        for (let i = 0; i < 2; i++) {
          if ((await conn.set(k, value, 'PX', Math.max(1, Math.round(ttlMs)), 'NX')) === 'OK') return undefined;
          const held = await conn.get(k);
          // Expired between the two commands: try to take it again, once.
          if (held !== null) return held;
        }
        return undefined;
      } catch (err) {
        throw this.translate(shard, err);
      }
    },
    settle: async (scope, key, value, ttlMs) => {
      const shard = this.usable(scope);
      try {
        await (shard.pub as Connection).set(this.claimKey(scope, key), value, 'PX', Math.max(1, Math.round(ttlMs)));
      } catch (err) {
        throw this.translate(shard, err);
      }
    },
    release: async (scope, key) => {
      const shard = this.usable(scope);
      try {
        await (shard.pub as Connection).del(this.claimKey(scope, key));
      } catch (err) {
        throw this.translate(shard, err);
      }
    },
  };

  private claimKey(channel: string, key: string): string {
    return `${this.options.keyPrefix}:{${channel}}:idem:${createHash('sha256').update(key).digest('base64url')}`;
  }

  async sendControl(msg: ControlMessage): Promise<void> {
    this.checkOpen();
    checkControlMessage(msg);
    const preferred = this.shards[this.ring.indexOf(this.control)] as Shard;
    // The preferred server first, then any other that is up: a server can be gone a moment before
    // its connection says so, and every node listens for control on every server. Only a message
    // that was never sent is tried again (at most once: one that may have gone out is not).
    const candidates = [preferred, ...this.shards.filter((s) => s !== preferred)].filter((s) => s.pubReady);
    if (candidates.length === 0) throw new BackboneUnavailableError(`redis ${preferred.id} is unreachable`, { cause: preferred.lastError });
    const text = encodeControl(msg);
    let failure: Error | undefined;
    for (const shard of candidates) {
      const conn = shard.pub as Connection;
      try {
        await (this.options.sharded ? conn.spublish(this.control, text) : conn.publish(this.control, text));
        return;
      } catch (err) {
        failure = this.translate(shard, err);
        if (!(err instanceof Error && err.message.includes("isn't writeable"))) break;
      }
    }
    throw failure as Error;
  }

  async putRecord(kind: string, record: ControlRecord): Promise<void> {
    this.checkOpen();
    checkRecord(kind, record);
    const { shard, keys } = this.recordsHome(kind);
    let kept: number;
    try {
      kept = (await this.evalScript(
        shard,
        PUT_RECORD_SCRIPT,
        [keys.values, keys.expiry],
        [Date.now(), record.key, encodeRecord(record), record.expiresAt, REDIS_MAX_RECORDS_PER_KIND, RECORD_KEY_SLACK_MS],
      )) as number;
    } catch (err) {
      throw this.translate(shard, err);
    }
    // Refused, not lost: a later put succeeds once records of the kind expire.
    if (kept < 0) throw new BackboneUnavailableError(`redis: at most ${REDIS_MAX_RECORDS_PER_KIND} records of kind "${kind}"`);
  }

  async records(kind: string): Promise<ControlRecord[]> {
    this.checkOpen();
    checkRecordKind(kind);
    const { shard, keys } = this.recordsHome(kind);
    const now = Date.now();
    let stored: string[];
    try {
      stored = (await this.evalScript(shard, READ_RECORDS_SCRIPT, [keys.values, keys.expiry], [now])) as string[];
    } catch (err) {
      throw this.translate(shard, err);
    }
    const out: ControlRecord[] = [];
    for (const text of stored) {
      const r = decodeRecord(kind, text);
      // Written by hand or by a bug: skipped, so one bad entry cannot hide the others.
      if (typeof r === 'string') this.counters.recordsMalformed++;
      else if (r.expiresAt > now) out.push(r);
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Reported once, here; later connection events find the machine closed and stay silent.
    this.machine.set('closed');
    this.machine.listen(undefined);
    this.handler = undefined;
    for (const s of this.shards) {
      s.pub?.disconnect();
      s.sub?.disconnect();
      s.pubReady = false;
      s.subReady = false;
      s.channels.clear();
      s.wake.pub?.();
      s.wake.sub?.();
    }
  }

  // ---- internals ----

  private get closed(): boolean {
    return this.machine.state === 'closed';
  }

  /** Throws unless the backbone was started and is not closed (async callers turn throws into rejections). */
  private checkOpen(): void {
    if (this.closed) throw new BackboneUnavailableError('redis backbone is closed');
    if (!this.started) throw new BackboneUnavailableError('redis backbone is not started');
  }

  /** The shard for a channel, or a rejection (async callers turn throws into rejections). */
  private usable(channel: string, forSubscribe = false): Shard {
    this.checkOpen();
    checkChannel(channel);
    const shard = this.shards[this.ring.indexOf(channel)] as Shard;
    if (!shard.pubReady || (forSubscribe && shard.sub && !shard.subReady && !shard.subConnecting)) {
      throw new BackboneUnavailableError(`redis ${shard.id} is unreachable`, { cause: shard.lastError });
    }
    return shard;
  }

  /** Where the records of `kind` live: the shard the kind's key picks, if it is up. */
  private recordsHome(kind: string): { shard: Shard; keys: { values: string; expiry: string } } {
    const keys = recordKeys(this.options.keyPrefix, kind);
    const shard = this.shards[this.ring.indexOf(keys.values)] as Shard;
    if (!shard.pubReady) throw new BackboneUnavailableError(`redis ${shard.id} is unreachable`, { cause: shard.lastError });
    return { shard, keys };
  }

  private async evalScript(
    shard: Shard,
    script: LoadedScript,
    keys: readonly [string, string],
    args: (string | number)[],
  ): Promise<unknown> {
    // A Cluster client routes both by the first key's slot. A node that never saw the script (or
    // restarted) answers NOSCRIPT like a single server, and EVAL loads it there.
    const conn = shard.pub as Connection;
    try {
      return await conn.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      // After a Redis restart its script cache is empty: send the source once, EVALSHA after.
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return await conn.eval(script.lua, keys.length, ...keys, ...args);
    }
  }

  private translate(shard: Shard, err: unknown): Error {
    if (err instanceof BackboneUnavailableError || err instanceof TypeError) return err;
    const msg = err instanceof Error ? err.message : String(err);
    // Redis replied with an error (script or command): a real failure, not unavailability. A
    // cluster without a serving master for the slot is unavailability, though.
    if (err instanceof Error && err.name === 'ReplyError' && !/^(CLUSTERDOWN|TRYAGAIN|MASTERDOWN)\b/.test(msg)) return err;
    return new BackboneUnavailableError(`redis ${shard.id}: ${msg}`, { cause: err });
  }

  private connection(shard: Shard, kind: Kind): Connection {
    const o = this.options;
    const opts: RedisOptions = {
      lazyConnect: true,
      connectionName: kind === 'pub' ? 'gatehouse-publish' : 'gatehouse-subscribe',
      enableOfflineQueue: false,
      // In-flight commands reject when the connection drops instead of being sent again: a
      // publish whose reply was lost may have run, and sending it twice would duplicate it.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      connectTimeout: o.connectTimeoutMs,
      commandTimeout: o.commandTimeoutMs,
      retryStrategy: (attempt: number) => this.backoff(attempt),
    };
    if (shard.seeds) return this.clusterConnection(shard, kind, opts);
    const conn = new Redis(shard.url, opts);
    let everReady = false;
    conn.on('error', (err: Error) => {
      shard.lastError = err;
    });
    conn.on('close', () => {
      if (kind === 'pub') shard.pubReady = false;
      else shard.subReady = false;
      this.recompute();
    });
    conn.on('ready', () => {
      if (everReady) this.counters.reconnects++;
      everReady = true;
      if (kind === 'pub') {
        // Scripts first: concurrent publishes that all hit NOSCRIPT would be sent again as EVAL
        // behind later EVALSHAs, out of order. Failing here means the connection dropped again.
        loadScripts(conn).then(
          () => {
            shard.pubReady = conn.status === 'ready';
            this.recompute();
          },
          (err: unknown) => {
            shard.lastError = err instanceof Error ? err : new Error(String(err));
          },
        );
      } else {
        void this.resubscribe(shard, conn);
      }
    });
    if (kind === 'sub') {
      conn.on(o.sharded ? 'smessage' : 'message', (name: string, text: string) => this.onMessage(shard, name, text));
    }
    conn.connect().catch(() => {
      // Reported through 'error'/'close' and retried by ioredis; start() and subscribe() wait
      // for 'ready' with their own deadline.
    });
    return conn;
  }

  /** Reconnect delay for attempt `attempt` (1, 2, ...): the kit's curve between the configured floor and cap. */
  private backoff(attempt: number): number {
    return backoffDelay(attempt, this.options.reconnectMinDelayMs, this.options.reconnectMaxDelayMs);
  }

  /**
   * Cluster mode: a Cluster client (`sub`: with ioredis's sharded subscribers, one connection per
   * master). Node connections reconnect by themselves; readiness comes from `recheck`.
   */
  private clusterConnection(shard: Shard, kind: Kind, nodeOptions: RedisOptions): Cluster {
    const seeds = shard.seeds as readonly RedisServer[];
    const { username, password } = seeds[0] as RedisServer;
    const conn = new Cluster(
      seeds.map((s) => ({ host: s.host, port: s.port })),
      {
        lazyConnect: true,
        shardedSubscribers: kind === 'sub',
        enableOfflineQueue: false,
        // A command whose connection closed may have run: never sent again (see maxRetriesPerRequest).
        retryDelayOnFailover: 0,
        clusterRetryStrategy: (attempt: number) => this.backoff(attempt),
        clusterNodeRetryStrategy: (attempt: number) => this.backoff(attempt),
        redisOptions: { ...nodeOptions, lazyConnect: true, username, password },
      },
    );
    const recheck = () => this.recheck(shard, kind, conn);
    conn.on('error', (err: Error) => {
      shard.lastError = err;
    });
    conn.on('node error', (err: Error) => {
      shard.lastError = err;
    });
    for (const event of ['ready', 'close', '+node', '-node']) conn.on(event, recheck);
    if (kind === 'pub') {
      // The check opens every master connection, so losing any of them is noticed at once.
      conn.on('+node', (node: Redis) => {
        node.on('ready', recheck);
        node.on('close', recheck);
      });
    } else {
      // ioredis resubscribes a replaced subscriber by itself: try our check now, not after the backoff.
      conn.on('subscribersReady', () => shard.wake.sub?.());
      conn.on('smessage', (name: string, text: string) => this.onMessage(shard, name, text));
    }
    conn.connect().catch(() => {
      // Retried by ioredis (clusterRetryStrategy); start() and subscribe() wait with a deadline.
    });
    return conn;
  }

  /** Cluster mode: marks `kind` not ready and runs its check (again) until it passes. */
  private recheck(shard: Shard, kind: Kind, conn: Cluster): void {
    shard.generation[kind]++;
    this.setReady(shard, kind, false);
    if (shard.checking[kind]) {
      shard.wake[kind]?.();
      return;
    }
    shard.checking[kind] = this.checkLoop(shard, kind, conn).finally(() => {
      shard.checking[kind] = undefined;
    });
  }

  private async checkLoop(shard: Shard, kind: Kind, conn: Cluster): Promise<void> {
    for (let attempt = 1; shard[kind] === conn && !this.closed; attempt++) {
      const generation = shard.generation[kind];
      let ok = false;
      try {
        ok = conn.status === 'ready' && (kind === 'pub' ? await mastersServing(conn) : await this.resubscribeCluster(shard, conn));
      } catch (err) {
        shard.lastError = err instanceof Error ? err : new Error(String(err));
      }
      if (shard[kind] !== conn || this.closed) return;
      if (ok && generation === shard.generation[kind]) {
        this.setReady(shard, kind, true);
        return;
      }
      if (ok)
        attempt = 0; // something changed while checking: at once again
      else await this.pause(shard, kind, this.backoff(attempt));
    }
  }

  /** Waits `ms`, or less when `shard.wake[kind]` is called. */
  private async pause(shard: Shard, kind: Kind, ms: number): Promise<void> {
    const cut = new AbortController();
    shard.wake[kind] = () => cut.abort();
    await sleep(ms, undefined, { signal: cut.signal, ref: false }).catch(() => {});
    shard.wake[kind] = undefined;
  }

  private setReady(shard: Shard, kind: Kind, ready: boolean): void {
    if (ready && !shard.ready(kind) && shard.everReady[kind]) this.counters.reconnects++;
    if (ready) shard.everReady[kind] = true;
    if (kind === 'pub') shard.pubReady = ready;
    else shard.subReady = ready;
    this.recompute();
  }

  /** The pub/sub names a shard's subscriber must hold: the control channel and every subscribed channel's. */
  private subscriptions(shard: Shard): string[] {
    return [this.control, ...[...shard.channels].map((c) => channelKeys(this.options.keyPrefix, c).pubsub)];
  }

  /** Cluster mode: sends every subscription again; true once each was acknowledged. */
  private async resubscribeCluster(shard: Shard, conn: Cluster): Promise<boolean> {
    const names = this.subscriptions(shard);
    for (let i = 0; i < names.length; i += RESUBSCRIBE_BATCH) {
      await Promise.all(names.slice(i, i + RESUBSCRIBE_BATCH).map((n) => clusterSubscribe(conn, n)));
    }
    return true;
  }

  private async resubscribe(shard: Shard, conn: Redis): Promise<void> {
    const names = this.subscriptions(shard);
    try {
      if (this.options.sharded) {
        // SSUBSCRIBE takes channels of one slot only (in a cluster), so one call each, pipelined.
        await Promise.all(names.map((n) => conn.ssubscribe(n)));
      } else {
        for (let i = 0; i < names.length; i += RESUBSCRIBE_BATCH) await conn.subscribe(...names.slice(i, i + RESUBSCRIBE_BATCH));
      }
    } catch (err) {
      // The connection dropped again; the next 'ready' starts over.
      shard.lastError = err instanceof Error ? err : new Error(String(err));
      return;
    }
    if (shard.sub !== conn || conn.status !== 'ready') return;
    shard.subReady = true;
    this.recompute();
  }

  private async ensureSubscriber(shard: Shard): Promise<void> {
    if (shard.sub) {
      if (shard.subReady) return;
      if (shard.subConnecting) return shard.subConnecting;
      throw new BackboneUnavailableError(`redis ${shard.id} is unreachable`, { cause: shard.lastError });
    }
    shard.sub = this.connection(shard, 'sub');
    shard.subConnecting = this.waitReady(shard, shard.sub, 'sub').finally(() => {
      shard.subConnecting = undefined;
      // A subscriber connection that did not come up in time makes the backbone 'down'.
      this.recompute();
    });
    return shard.subConnecting;
  }

  /** Resolves when the shard's connection of `kind` is ready, or rejects after the connect deadline. */
  private waitReady(shard: Shard, conn: Connection, kind: Kind): Promise<void> {
    const ready = () => shard.ready(kind);
    if (ready()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        done(
          new BackboneUnavailableError(`redis ${shard.id} did not answer within ${this.options.connectTimeoutMs} ms`, {
            cause: shard.lastError,
          }),
        );
      }, this.options.connectTimeoutMs);
      const onEnd = () => done(new BackboneUnavailableError(`redis ${shard.id}: connection closed`, { cause: shard.lastError }));
      const check = () => {
        if (ready()) done();
      };
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        conn.off('end', onEnd);
        if (err) reject(err);
        else resolve();
      };
      // Readiness changes always go through recompute(), which runs the waiters.
      this.waiters.add(check);
      conn.once('end', onEnd);
    });
  }

  private onMessage(shard: Shard, name: string, text: string): void {
    if (name === this.control) return this.onControlMessage(text);
    const prefix = this.options.keyPrefix;
    const channel = name.slice(prefix.length + 2, -1);
    // Anything not subscribed (a late message after unsubscribe) is dropped here.
    if (!shard.channels.has(channel)) return;
    // Only the publish script assigns offsets and writes history: a hand-made PUBLISH carrying a
    // position of its own would tell clients of an epoch change or take an offset the next real
    // publication needs, so it is dropped like any other malformed message.
    const env = text.startsWith(SCRIPT_ENVELOPE_START) ? decodeEnvelope(text, channel, { requirePosition: true }) : NOT_FROM_SCRIPT;
    if (typeof env === 'string') {
      this.counters.malformed++;
      return this.options.onMalformed?.(env, text.slice(0, MALFORMED_SAMPLE));
    }
    const pub: Publication = { channel, epoch: env.epoch as string, offset: env.offset as number, ts: env.ts, data: env.data };
    try {
      this.handler?.onPublication(pub);
    } catch {
      // The contract forbids throwing here; if it happens anyway, it must not take the
      // subscriber connection (and every other channel on it) down with it.
      this.counters.handlerErrors++;
    }
  }

  private onControlMessage(text: string): void {
    const msg = decodeControl(text);
    if (typeof msg === 'string') {
      this.counters.controlMalformed++;
      return this.options.onMalformed?.(`control: ${msg}`, text.slice(0, MALFORMED_SAMPLE));
    }
    try {
      this.handler?.onControl(msg);
    } catch {
      // As in onMessage: a throwing handler must not take the subscriber connection down.
      this.counters.handlerErrors++;
    }
  }

  /** Called whenever a connection's readiness changes: wakes waiters, then reports the state. */
  private recompute(): void {
    for (const w of [...this.waiters]) w();
    // During start() the state stays 'connecting' until every shard answered once.
    if (!this.live || !this.handler || this.closed) return;
    const up = this.shards.every((s) => s.pubReady && (!s.sub || s.subReady || s.subConnecting !== undefined));
    const err = up ? undefined : this.shards.find((s) => !s.pubReady || (s.sub && !s.subReady))?.lastError;
    this.machine.set(up ? 'up' : 'down', err);
  }
}

/**
 * Cluster mode: SSUBSCRIBE through the Cluster client, which keeps its own channel list for
 * resubscribing and adds to it on every SSUBSCRIBE; the SUNSUBSCRIBE first keeps one entry per
 * channel however often this runs. The subscriber side is not ready while this runs, and the
 * core fills from history once it is.
 */
async function clusterSubscribe(conn: Cluster, name: string): Promise<void> {
  await conn.sunsubscribe(name);
  await conn.ssubscribe(name);
}

/** Loads every script into one server's cache, so EVALSHA finds them (see the 'ready' handler). */
async function loadScripts(conn: Redis): Promise<void> {
  await Promise.all(SCRIPTS.map((s) => conn.script('LOAD', s.lua)));
}

/**
 * Cluster mode: every master connected, answering `cluster_state:ok` (so no CLUSTERDOWN), scripts
 * loaded. Runs only once the Cluster client is ready: connecting a node earlier makes the client's
 * own ready check, sent to any node, fail on the one still connecting.
 */
async function mastersServing(conn: Cluster): Promise<boolean> {
  const masters = conn.nodes('master');
  // Node connections are lazy; open them all here.
  await Promise.all(masters.map((n) => (n.status === 'wait' ? n.connect() : undefined)));
  if (masters.length === 0 || masters.some((n) => n.status !== 'ready')) return false;
  const infos = await Promise.all(masters.map((n) => n.cluster('INFO') as Promise<string>));
  if (!infos.every((info) => /^cluster_state:ok\s*$/m.test(info))) return false;
  await Promise.all(masters.map(loadScripts));
  return true;
}

/** Creates a RedisBackbone on one or several `redis://host:port` URLs, or `redis+cluster://` seeds (not started). */
export function createRedisBackbone(urls: readonly string[], options: Omit<RedisBackboneOptions, 'urls'> = {}): RedisBackbone {
  return new RedisBackbone({ ...options, urls });
}

/**
 * Connects a RedisBackbone for publishing only (an outside service, the publisher library): no
 * subscriber connection is opened and incoming publications are ignored. Offsets still come from
 * the publish script, so these publications are ordered with the gateways' own.
 */
export async function connectRedisPublisher(
  urls: readonly string[],
  options: Omit<RedisBackboneOptions, 'urls'> = {},
): Promise<RedisBackbone> {
  const backbone = createRedisBackbone(urls, options);
  publisherOnly.add(backbone);
  await backbone.start({ onPublication: () => {}, onStateChange: () => {}, onControl: () => {} });
  return backbone;
}
