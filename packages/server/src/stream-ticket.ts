/**
 * Tickets for authenticated Server-Sent Events: `EventSource` cannot send headers, and a token in a
 * URL lands in logs and histories. `POST /sse/ticket` with the token in `Authorization` returns a
 * ticket that carries the token sealed (AES-256-GCM, key derived from the fleet's token secret) for
 * TICKET_TTL_MS; `GET /sse?ticket=...` opens it once.
 *
 * Single use is enforced on the node that opens the ticket (a bounded set of used nonces, kept until
 * the ticket expires) and, best effort, fleet-wide: the node tells its peers a nonce was used, over
 * the control plane. A replay on another node that races that message inside the TTL is the window
 * left; the TTL is short so the window is too, and a ticket only ever opens a stream as its user.
 * Without a token secret (JWKS only) the key is random per node and tickets work on the issuing
 * node only.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** How long a ticket opens a stream. */
export const TICKET_TTL_MS = 30_000;
/** Used nonces remembered at most (beyond this, tickets are refused until some expire). */
const MAX_USED = 100_000;

/** Seals and opens tickets; remembers which were used. */
export class StreamTickets {
  private readonly key: Buffer;
  /** Used nonces and when their ticket expires. */
  private readonly used = new Map<string, number>();

  constructor(secret: string | undefined) {
    this.key = createHash('sha256')
      .update('gatehouse sse ticket\n')
      .update(secret ?? randomBytes(32))
      .digest();
  }

  /** A ticket for `token`, valid until `now + TICKET_TTL_MS`. */
  issue(token: string, now = Date.now()): { ticket: string; expires: number } {
    const expires = now + TICKET_TTL_MS;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(JSON.stringify({ t: token, e: expires }), 'utf8'), cipher.final()]);
    return { ticket: Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url'), expires };
  }

  /**
   * The token a ticket carries, marking it used; or an error message (expired, used, forged).
   * Returns the nonce too, for telling the fleet.
   */
  open(ticket: string, now = Date.now()): { token: string; nonce: string } | { error: string } {
    if (ticket.length > 16_384) return { error: 'ticket is malformed' };
    const raw = Buffer.from(ticket, 'base64url');
    if (raw.length < 29) return { error: 'ticket is malformed' };
    let payload: { t?: unknown; e?: unknown };
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      payload = JSON.parse(Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8')) as typeof payload;
    } catch {
      return { error: 'ticket is not valid here (forged, corrupted, or issued by a fleet with another secret)' };
    }
    if (typeof payload.t !== 'string' || typeof payload.e !== 'number') return { error: 'ticket is malformed' };
    if (now > payload.e) return { error: 'ticket expired; ask for a new one' };
    const nonce = raw.subarray(0, 12).toString('base64url');
    if (this.used.has(nonce)) return { error: 'ticket already used; ask for a new one' };
    this.sweep(now);
    if (this.used.size >= MAX_USED) return { error: 'too many tickets in flight; retry shortly' };
    this.used.set(nonce, payload.e);
    return { token: payload.t, nonce };
  }

  /** A peer opened the ticket with this nonce. */
  markUsed(nonce: string, now = Date.now()): void {
    if (typeof nonce !== 'string' || nonce.length !== 16) return;
    this.sweep(now);
    if (this.used.size < MAX_USED) this.used.set(nonce, now + TICKET_TTL_MS);
  }

  private sweep(now: number): void {
    // Insertion order is expiry order (one TTL for all), so the expired ones are at the front.
    for (const [n, exp] of this.used) {
      if (exp >= now) break;
      this.used.delete(n);
    }
  }
}
