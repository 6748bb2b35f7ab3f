/**
 * Token revocation across the fleet. A revocation is applied here at once, kept as a fleet record
 * where the backbone keeps records (so a node that starts later reads it), and announced to every
 * node over the control plane (so nodes running now close the token's connections).
 *
 * On a backbone that keeps no records (NATS core), a node that starts asks its peers for the
 * revocations in force and waits a bounded time for the first answer.
 */
import type { Logger } from 'pino';
import type { Backbone, ControlMessage } from './backbone.js';
import type { TokenVerifier } from './auth.js';
import { ControlType, parseObject } from './control.js';
import type { ControlPlane } from './control.js';

/** The record kind revocations are kept under. */
export const REVOCATION_RECORDS = 'token-revocation';
/** Revocations per answer to a peer's request (each is well under 100 bytes of JSON). */
const PER_ANSWER = 500;
/** Answers one node sends to one request, at most (PER_ANSWER each). */
const MAX_ANSWERS = 40;

/** A revocation as it travels: the token id and until when it stays revoked (ms). */
export interface Revocation {
  jti: string;
  until: number;
}

/** Reads a revocation from another node; undefined for anything malformed. */
export function parseRevocation(v: unknown): Revocation | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  const jti = r['jti'];
  const until = r['until'];
  if (typeof jti === 'string' && jti.length > 0 && jti.length <= 256 && typeof until === 'number' && Number.isFinite(until))
    return { jti, until };
  return undefined;
}

/** What revocations act on. */
export interface RevocationDeps {
  backbone: Backbone;
  control: ControlPlane;
  verifier: TokenVerifier;
  log: Logger;
  /** Closes this node's connections that hold token `jti`. */
  closeToken(jti: string): void;
}

/** The fleet-wide revocation list, as this node keeps it. */
export class Revocations {
  private synced: (() => void) | undefined;

  constructor(private readonly d: RevocationDeps) {
    d.control.on(ControlType.Revoke, (msg) => {
      const r = parseRevocation(parseObject(msg.data));
      if (r) this.apply(r);
    });
    d.control.on(ControlType.Revocations, (msg) => this.onAnswer(msg));
    d.control.on(ControlType.RevocationsRequest, (msg) => void this.answer(msg.from));
  }

  /** Revokes `jti` on every node until `until` (ms; default a day from now). */
  async revoke(jti: string, until = Date.now() + 24 * 3600 * 1000): Promise<void> {
    const r = { jti, until };
    this.apply(r);
    if (this.d.backbone.capabilities.durableRecords) {
      await this.d.backbone.putRecord(REVOCATION_RECORDS, { key: jti, value: JSON.stringify(r), expiresAt: until });
    }
    await this.d.control.send(ControlType.Revoke, r);
  }

  /**
   * Learns the revocations made before this node started: from the records where the backbone
   * keeps them, otherwise from the peers (waiting at most `waitMs` for the first answer).
   */
  async load(waitMs: number): Promise<void> {
    const { backbone, log } = this.d;
    try {
      if (backbone.capabilities.durableRecords) {
        for (const rec of await backbone.records(REVOCATION_RECORDS)) {
          let r: Revocation | undefined;
          try {
            r = parseRevocation(JSON.parse(rec.value));
          } catch {
            r = undefined;
          }
          if (r) this.apply(r);
        }
        return;
      }
      const answered = new Promise<void>((resolve) => (this.synced = resolve));
      await this.d.control.send(ControlType.RevocationsRequest, {});
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([answered, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
      clearTimeout(timer);
    } catch (err) {
      log.warn({ err }, 'cannot read earlier revocations');
    } finally {
      this.synced = undefined;
    }
  }

  private apply(r: Revocation): void {
    if (r.until <= Date.now()) return;
    this.d.verifier.revoke(r.jti, r.until);
    this.d.closeToken(r.jti);
  }

  private onAnswer(msg: ControlMessage): void {
    const list = parseObject(msg.data)?.['revocations'];
    if (!Array.isArray(list)) return;
    for (const v of list.slice(0, PER_ANSWER)) {
      const r = parseRevocation(v);
      if (r) this.apply(r);
    }
    this.synced?.();
  }

  /** Answers a peer's request with every revocation in force, in bounded chunks. */
  private async answer(to: string): Promise<void> {
    if (to === this.d.control.node) return;
    let chunk: Revocation[] = [];
    let sent = 0;
    try {
      for (const r of this.d.verifier.revocations()) {
        chunk.push(r);
        if (chunk.length === PER_ANSWER) {
          await this.d.control.send(ControlType.Revocations, { revocations: chunk }, to);
          chunk = [];
          if (++sent === MAX_ANSWERS) return;
        }
      }
      // Also answer with nothing: the asking node stops waiting.
      if (chunk.length > 0 || sent === 0) await this.d.control.send(ControlType.Revocations, { revocations: chunk }, to);
    } catch (err) {
      this.d.log.debug({ err, to }, 'cannot answer a revocations request');
    }
  }
}
