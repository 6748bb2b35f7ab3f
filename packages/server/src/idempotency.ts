/**
 * Idempotent publish: a publish carrying an `idempotencyKey` claims (channel, key) fleet-wide
 * before it publishes; a retry with the same key inside the window answers the first result and
 * publishes nothing. Where the backbone offers atomic claims (`backbone.claims`, Redis SET NX) they
 * are used; elsewhere every claim of a (channel, key) goes to one owner node, picked by rendezvous
 * hashing over the live nodes, which keeps it in memory (bounded). docs/api.md says what holds on
 * each backbone.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backbone, ClaimStore } from './backbone.js';
import type { FleetRequests } from './fleet-requests.js';
import { ApiError } from './http-api.js';

/** The value a claim holds while its publish is in flight. */
const PENDING = '"pending"';
/** How long a claim stays pending: a node that dies mid-publish frees the key after this. */
const PENDING_TTL_MS = 30_000;
/** How long a retry waits for a first attempt still in flight before answering 503. */
const WAIT_FOR_FIRST_MS = 5_000;
/** Keys one node keeps as owner at most. */
export const MAX_LOCAL_CLAIMS = 200_000;
/** Deadline for an owner node to answer a claim. */
const OWNER_TIMEOUT_MS = 2_000;

/** A publish result as the API answers it. */
export interface PublishResult {
  channel: string;
  epoch: string;
  offset: number;
}

/** Claims kept in this process, with their expiry (the owner side of routed claims). */
export class LocalClaims implements ClaimStore {
  private readonly held = new Map<string, { value: string; expiresAt: number }>();

  constructor(private readonly max = MAX_LOCAL_CLAIMS) {}

  get size(): number {
    return this.held.size;
  }

  async claim(scope: string, key: string, value: string, ttlMs: number): Promise<string | undefined> {
    const k = `${scope}\n${key}`;
    const now = Date.now();
    const h = this.held.get(k);
    if (h && h.expiresAt > now) return h.value;
    if (!h && this.held.size >= this.max) {
      this.sweep(now);
      if (this.held.size >= this.max)
        throw new ApiError('unavailable', `${this.max} idempotency keys are held on this node; retry later`, 5);
    }
    this.held.set(k, { value, expiresAt: now + ttlMs });
    return undefined;
  }

  async settle(scope: string, key: string, value: string, ttlMs: number): Promise<void> {
    this.held.set(`${scope}\n${key}`, { value, expiresAt: Date.now() + ttlMs });
  }

  async release(scope: string, key: string): Promise<void> {
    this.held.delete(`${scope}\n${key}`);
  }

  private sweep(now: number): void {
    for (const [k, h] of this.held) if (h.expiresAt <= now) this.held.delete(k);
  }
}

/** What idempotent publishing works with. */
export interface IdempotencyDeps {
  node: string;
  backbone: Backbone;
  requests: FleetRequests;
  /** The node that owns claims for `id` (rendezvous over ready nodes); undefined: none known. */
  owner(id: string): string | undefined;
  windowMs: number;
  publish(channel: string, data: string): Promise<PublishResult>;
}

/** Publishes at most once per (channel, key) within the window, fleet-wide. */
export class Idempotency {
  readonly local = new LocalClaims();
  private readonly store: ClaimStore;

  constructor(private readonly d: IdempotencyDeps) {
    this.store = d.backbone.claims ?? this.routed();
    for (const op of ['claim', 'settle', 'release'] as const) {
      d.requests.handle(`idem.${op}`, async (data) => {
        const scope = String(data['scope']);
        const key = String(data['key']);
        const ttl = Math.min(Number(data['ttlMs']) || 1000, 86_400_000);
        if (op === 'claim') return { held: (await this.local.claim(scope, key, String(data['value']), ttl)) ?? null };
        if (op === 'settle') await this.local.settle(scope, key, String(data['value']), ttl);
        else await this.local.release(scope, key);
        return {};
      });
    }
  }

  /** Whether claims are atomic in the backbone (true) or routed to an owner node (false). */
  get atomic(): boolean {
    return this.d.backbone.claims !== undefined;
  }

  /**
   * Publishes `data` to `channel` once per `key`: the first call publishes; a later one within
   * the window answers the first result with `replayed: true`.
   */
  async publish(channel: string, data: string, key: string | undefined): Promise<PublishResult & { replayed?: true }> {
    if (key === undefined) return this.d.publish(channel, data);
    const deadline = Date.now() + WAIT_FOR_FIRST_MS;
    for (;;) {
      const held = await this.store.claim(channel, key, PENDING, Math.min(PENDING_TTL_MS, this.d.windowMs)).catch((err: unknown) => {
        if (err instanceof ApiError) throw err;
        throw new ApiError('unavailable', `the idempotency key could not be claimed: ${(err as Error).message}`, 1);
      });
      if (held === undefined) break;
      if (held !== PENDING) {
        const first = JSON.parse(held) as PublishResult;
        return { channel: first.channel, epoch: first.epoch, offset: first.offset, replayed: true };
      }
      if (Date.now() >= deadline) {
        throw new ApiError('unavailable', 'the first request with this idempotencyKey is still in flight; retry shortly', 1);
      }
      await sleep(100);
    }
    let result: PublishResult;
    try {
      result = await this.d.publish(channel, data);
    } catch (err) {
      // Nothing was published: a retry with this key may publish.
      await this.store.release(channel, key).catch(() => {});
      throw err;
    }
    const kept = { channel: result.channel, epoch: result.epoch, offset: result.offset };
    await this.store.settle(channel, key, JSON.stringify(kept), this.d.windowMs).catch(() => {});
    return kept;
  }

  /** Claims sent to the owner node of each (channel, key); this node's own claims stay local. */
  private routed(): ClaimStore {
    const call = async (op: string, scope: string, key: string, extra: Record<string, unknown>): Promise<unknown> => {
      const owner = this.d.owner(`${scope}\n${key}`) ?? this.d.node;
      const answer = await this.d.requests.ask(`idem.${op}`, { scope, key, ...extra }, OWNER_TIMEOUT_MS, owner);
      const reply = answer.replies[0];
      if (!reply) throw new ApiError('unavailable', `node ${owner}, which holds this idempotency key, did not answer`, 1);
      if (reply.error) throw new ApiError('unavailable', `node ${owner}: ${reply.error.message}`, 1);
      return reply.result;
    };
    return {
      claim: async (scope, key, value, ttlMs) => {
        const r = (await call('claim', scope, key, { value, ttlMs })) as { held?: unknown } | undefined;
        return typeof r?.held === 'string' ? r.held : undefined;
      },
      settle: async (scope, key, value, ttlMs) => void (await call('settle', scope, key, { value, ttlMs })),
      release: async (scope, key) => void (await call('release', scope, key, {})),
    };
  }
}
