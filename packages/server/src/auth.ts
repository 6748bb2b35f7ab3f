/**
 * Token verification with `jose`, and a bounded cache of verified tokens.
 *
 * The cache is a storm defence: when a node dies and its clients reconnect elsewhere, every
 * token would be verified again (an HMAC or an RSA/ECDSA verify each). A cached entry is keyed by
 * the exact token string, so it only ever answers for a token that was fully verified before, and
 * it is never used past the token's `exp`.
 */
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, errors as joseErrors } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';

/** What a verified token grants. */
export interface Grant {
  /** The user id (`sub`), or '' for anonymous connections. */
  readonly user: string;
  /** Channel patterns the user may subscribe to (`channels` claim). */
  readonly subscribe: readonly string[];
  /** Channel patterns the user may publish to (`publish` claim). */
  readonly publish: readonly string[];
  /** Expiry, ms since the epoch; undefined when the token has no `exp`. */
  readonly expiresAt: number | undefined;
  /** The token's id (`jti`), by which it can be revoked. */
  readonly jti?: string | undefined;
  /** The token's `info` claim (a JSON object of at most 1024 characters of JSON), shown to others in presence. */
  readonly info?: Readonly<Record<string, unknown>> | undefined;
}

/** The grant of a connection without a token. */
export const ANONYMOUS: Grant = Object.freeze({ user: '', subscribe: [], publish: [], expiresAt: undefined, jti: undefined });

/** Revoked token ids kept at most (each until its token would have expired anyway). */
const MAX_REVOKED = 100_000;
/** How long a revocation without a known expiry is kept. */
const DEFAULT_REVOCATION_MS = 24 * 3600 * 1000;

/** Why a token was refused; `message` is safe to send to the client and to log (no token). */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  constructor(
    message: string,
    readonly expired = false,
  ) {
    super(message);
  }
}

/** Verification settings. */
export interface VerifierOptions {
  tokenSecret?: string | undefined;
  jwks?: string | undefined;
  issuer?: string | undefined;
  audience?: string | undefined;
  cacheSize: number;
  /** Told whether each lookup was answered from the cache (for metrics). */
  onLookup?: (cached: boolean) => void;
}

function stringList(v: unknown, claim: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x.length <= 256) || v.length > 256) {
    throw new AuthError(`claim "${claim}" must be a list of at most 256 channel patterns`);
  }
  return v as string[];
}

/** Verifies tokens and caches the results. */
export class TokenVerifier {
  private readonly cache = new Map<string, Grant>();
  /** Revoked `jti`s, each kept until the given time (ms). */
  private readonly revoked = new Map<string, number>();
  private readonly key: JWTVerifyGetKey | Uint8Array | undefined;
  private readonly algorithms: string[];

  constructor(private readonly options: VerifierOptions) {
    if (options.tokenSecret !== undefined) {
      this.key = new TextEncoder().encode(options.tokenSecret);
      this.algorithms = ['HS256'];
    } else if (options.jwks !== undefined) {
      this.key = /^https?:\/\//.test(options.jwks)
        ? createRemoteJWKSet(new URL(options.jwks), { cooldownDuration: 30_000, cacheMaxAge: 600_000 })
        : createLocalJWKSet(JSON.parse(readFileSync(options.jwks, 'utf8')));
      this.algorithms = ['RS256', 'ES256'];
    } else {
      this.algorithms = [];
    }
  }

  /** True when a token could ever be accepted (a secret or JWKS is configured). */
  get enabled(): boolean {
    return this.key !== undefined;
  }

  /** Verifies `token`, from the cache when it was verified before and has not expired. */
  async verify(token: string, now = Date.now()): Promise<Grant> {
    const cached = this.cache.get(token);
    if (cached?.jti !== undefined && this.isRevoked(cached.jti, now)) throw new AuthError('token revoked');
    if (cached) {
      if (cached.expiresAt === undefined || cached.expiresAt > now) {
        this.options.onLookup?.(true);
        // Refresh recency: Map iteration order is insertion order, so re-inserting makes it newest.
        this.cache.delete(token);
        this.cache.set(token, cached);
        return cached;
      }
      this.cache.delete(token);
    }
    this.options.onLookup?.(false);
    if (!this.key) throw new AuthError('this gateway accepts no tokens (no token secret or JWKS configured)');
    let payload: JWTPayload;
    try {
      const verifyOptions = {
        algorithms: this.algorithms,
        ...(this.options.issuer ? { issuer: this.options.issuer } : {}),
        ...(this.options.audience ? { audience: this.options.audience } : {}),
        currentDate: new Date(now),
      };
      const result =
        this.key instanceof Uint8Array ? await jwtVerify(token, this.key, verifyOptions) : await jwtVerify(token, this.key, verifyOptions);
      payload = result.payload;
    } catch (e) {
      if (e instanceof joseErrors.JWTExpired) throw new AuthError('token expired', true);
      if (e instanceof joseErrors.JWTClaimValidationFailed) throw new AuthError(`token claim "${e.claim}" is not valid`);
      if (e instanceof joseErrors.JWSSignatureVerificationFailed) throw new AuthError('token signature is not valid');
      if (e instanceof joseErrors.JOSEAlgNotAllowed) throw new AuthError('token algorithm is not allowed');
      if (e instanceof joseErrors.JWKSNoMatchingKey) throw new AuthError('token key id matches no key');
      throw new AuthError('token is malformed');
    }
    if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 256) {
      throw new AuthError('token needs a "sub" claim (the user id)');
    }
    const jti = typeof payload.jti === 'string' && payload.jti.length <= 256 ? payload.jti : undefined;
    if (jti !== undefined && this.isRevoked(jti, now)) throw new AuthError('token revoked');
    const grant: Grant = Object.freeze({
      user: payload.sub,
      subscribe: Object.freeze(stringList(payload['channels'], 'channels')),
      publish: Object.freeze(stringList(payload['publish'], 'publish')),
      expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
      jti,
      info: infoClaim(payload['info']),
    });
    this.cache.set(token, grant);
    if (this.cache.size > this.options.cacheSize) {
      // Evict the least recently used entry.
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
    }
    return grant;
  }

  /**
   * Revokes the token with id `jti` until `untilMs` (its expiry; default a day). Bounded: past
   * the cap, revocations that have run out are dropped first, then the oldest.
   */
  revoke(jti: string, untilMs = Date.now() + DEFAULT_REVOCATION_MS, now = Date.now()): void {
    this.revoked.set(jti, untilMs);
    if (this.revoked.size > MAX_REVOKED) {
      for (const [id, until] of this.revoked) if (until <= now) this.revoked.delete(id);
      while (this.revoked.size > MAX_REVOKED) this.revoked.delete(this.revoked.keys().next().value as string);
    }
  }

  /** True when `jti` is revoked now. */
  isRevoked(jti: string, now = Date.now()): boolean {
    const until = this.revoked.get(jti);
    if (until === undefined) return false;
    if (until > now) return true;
    this.revoked.delete(jti);
    return false;
  }

  /** Every revocation still in force: the token id and until when. */
  *revocations(now = Date.now()): Iterable<{ jti: string; until: number }> {
    for (const [jti, until] of this.revoked) if (until > now) yield { jti, until };
  }

  /** Entries currently cached. */
  get cacheEntries(): number {
    return this.cache.size;
  }
}

/** The `info` claim: absent, or a JSON object of at most 1 KiB (presence shows it to other members). */
function infoClaim(v: unknown): Record<string, unknown> | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v) || JSON.stringify(v).length > 1024) {
    throw new AuthError('token claim "info" must be a JSON object of at most 1024 characters');
  }
  return Object.freeze(v as Record<string, unknown>);
}
