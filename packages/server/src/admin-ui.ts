/**
 * The admin web UI at `/admin/` (only with `adminUi`, `--admin-ui`): static files from the
 * package's `admin/` folder, no build step. Signing in exchanges an unrestricted API key for a
 * session cookie (HttpOnly, SameSite=Strict, Path=/admin/, one hour); the key never reaches the
 * page. The cookie is signed with a key derived from the API key itself, so every node of the fleet
 * (same keys) accepts it and no session store is needed. The page calls the server API through
 * `POST /admin/call/<name>`, which needs the cookie, a same-origin `Origin` and the session's CSRF
 * token in `x-csrf-token`; the call is then handled exactly as `POST /api/<name>` with that key.
 * Failed sign-ins are rate limited per address (failure-limiter.ts).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FailureLimiter } from './failure-limiter.js';
import { ApiError, sendError, sendJson } from './http-api.js';
import type { ApiKey } from './options.js';
import { readJson } from './server-api.js';

/** How long a session lasts, ms. */
export const SESSION_TTL_MS = 60 * 60 * 1000;
/** The session cookie's name. */
export const SESSION_COOKIE = 'gh_admin';
/** The calls the page may make, and the route each one is handled as. */
const CALLS: Record<string, string> = {
  info: '/api/info',
  channels: '/api/channels',
  history: '/api/history',
  presence: '/api/presence',
  publish: '/api/publish',
  disconnect: '/api/disconnect',
  drain: '/api/drain',
  revoke: '/admin/revoke',
};
const FILES: Record<string, { file: string; type: string }> = {
  '/admin/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/admin/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/admin/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
};
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

interface SigningKey {
  id: string;
  key: string;
  secret: Buffer;
}

/** What the admin UI works with. */
export interface AdminUiDeps {
  apiKeys: ApiKey[];
  limiter: FailureLimiter;
  clientAddress(req: IncomingMessage): string;
  /** TLS is terminated here or (trusted) in front: cookies get `Secure`. */
  secure(req: IncomingMessage): boolean;
  /** Where the static files are; default the package's admin/ folder. */
  dir?: URL;
}

/** Serves the admin UI and its session endpoints. */
export class AdminUi {
  private readonly keys: SigningKey[];
  private readonly dir: URL;
  private readonly files = new Map<string, Buffer>();

  constructor(private readonly d: AdminUiDeps) {
    // Only unrestricted keys may administer; each signs the sessions it opened.
    this.keys = d.apiKeys
      .filter((k) => k.channels === undefined)
      .map((k) => ({
        id: createHash('sha256').update(k.key).digest('base64url').slice(0, 12),
        key: k.key,
        secret: createHmac('sha256', k.key).update('gatehouse admin session v1').digest(),
      }));
    this.dir = d.dir ?? new URL('../../admin/', import.meta.url);
  }

  /** Handles `path` if it is the UI's; `dispatch` re-enters the node's routes for a call. */
  handle(req: IncomingMessage, res: ServerResponse, path: string, dispatch: (req: IncomingMessage, res: ServerResponse) => void): boolean {
    const file = FILES[path];
    if (file) {
      if (req.method !== 'GET' && req.method !== 'HEAD') sendError(res, new ApiError('bad_request', `${path} takes GET`));
      else {
        this.serve(req, res, file).catch(() =>
          sendError(
            res,
            new ApiError('not_found', `the admin UI's ${file.file} is missing from this installation (packages/server/admin/)`),
          ),
        );
      }
      return true;
    }
    if (path === '/admin') {
      res.writeHead(308, { location: '/admin/', 'content-length': 0 }).end();
      return true;
    }
    if (path === '/admin/session') {
      this.session(req, res).catch((err: unknown) =>
        sendError(res, err instanceof ApiError ? err : new ApiError('internal', 'internal error')),
      );
      return true;
    }
    if (path.startsWith('/admin/call/')) {
      try {
        const route = CALLS[path.slice('/admin/call/'.length)];
        if (!route) throw new ApiError('not_found', `no admin call ${path}`);
        if (req.method !== 'POST') throw new ApiError('bad_request', `${path} takes POST`);
        this.checkOrigin(req);
        const signer = this.verify(req);
        if (!signer) throw new ApiError('unauthorized', 'sign in first (the session is missing or expired)');
        const csrf = req.headers['x-csrf-token'];
        if (typeof csrf !== 'string' || !safeEqual(csrf, this.csrf(signer.key, signer.nonce))) {
          throw new ApiError('forbidden', 'missing or wrong x-csrf-token');
        }
        // Handled as the API call itself, with the key this session was opened with.
        req.url = route;
        req.headers.authorization = `apikey ${signer.key.key}`;
        dispatch(req, res);
      } catch (err) {
        sendError(res, err instanceof ApiError ? err : new ApiError('internal', 'internal error'));
      }
      return true;
    }
    return false;
  }

  private async serve(req: IncomingMessage, res: ServerResponse, f: { file: string; type: string }): Promise<void> {
    let body = this.files.get(f.file);
    if (!body) {
      body = await readFile(new URL(f.file, this.dir));
      this.files.set(f.file, body);
    }
    res.writeHead(200, { 'content-type': f.type, 'content-length': body.length, ...SECURITY_HEADERS });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  /** `POST` signs in, `GET` says whether the session holds (and its CSRF token), `DELETE` signs out. */
  private async session(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const headers = { ...SECURITY_HEADERS, 'cache-control': 'no-store' };
    if (req.method === 'GET') {
      const s = this.verify(req);
      if (!s) throw new ApiError('unauthorized', 'not signed in');
      sendJson(res, 200, { csrf: this.csrf(s.key, s.nonce), expires: s.expires }, headers);
      return;
    }
    if (req.method === 'DELETE') {
      this.checkOrigin(req);
      sendJson(res, 200, { signedOut: true }, { ...headers, 'set-cookie': this.cookie(req, '', 0) });
      return;
    }
    if (req.method !== 'POST') throw new ApiError('bad_request', '/admin/session takes GET, POST or DELETE');
    this.checkOrigin(req);
    const address = this.d.clientAddress(req);
    this.d.limiter.check(address);
    const body = await readJson(req);
    const presented = body['key'];
    const key = typeof presented === 'string' ? this.keys.find((k) => safeEqual(k.key, presented)) : undefined;
    if (!key) {
      this.d.limiter.fail(address);
      throw new ApiError('unauthorized', 'that is not an unrestricted API key of this gateway');
    }
    const nonce = randomBytes(16).toString('base64url');
    const expires = Date.now() + SESSION_TTL_MS;
    const payload = Buffer.from(JSON.stringify({ k: key.id, e: expires, n: nonce })).toString('base64url');
    const value = `${payload}.${sign(key.secret, payload)}`;
    sendJson(res, 200, { csrf: this.csrf(key, nonce), expires }, { ...headers, 'set-cookie': this.cookie(req, value, SESSION_TTL_MS) });
  }

  private cookie(req: IncomingMessage, value: string, maxAgeMs: number): string {
    const secure = this.d.secure(req) ? '; Secure' : '';
    return `${SESSION_COOKIE}=${value}; Path=/admin/; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(maxAgeMs / 1000)}${secure}`;
  }

  private csrf(key: SigningKey, nonce: string): string {
    return sign(key.secret, `csrf:${nonce}`);
  }

  /** The session the request's cookie proves, if any. */
  private verify(req: IncomingMessage): { key: SigningKey; nonce: string; expires: number } | undefined {
    const header = req.headers.cookie ?? '';
    const m = new RegExp(`(?:^|;\\s*)${SESSION_COOKIE}=([A-Za-z0-9_-]{1,400})\\.([A-Za-z0-9_-]{43})(?:;|$)`).exec(header);
    if (!m) return undefined;
    const [, payload, mac] = m as unknown as [string, string, string];
    let p: { k?: unknown; e?: unknown; n?: unknown };
    try {
      p = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof p;
    } catch {
      return undefined;
    }
    const key = this.keys.find((k) => k.id === p.k);
    if (!key || !safeEqual(mac, sign(key.secret, payload))) return undefined;
    if (typeof p.e !== 'number' || p.e <= Date.now() || typeof p.n !== 'string') return undefined;
    return { key, nonce: p.n, expires: p.e };
  }

  /** Refuses a request whose `Origin` is another site's (or, for a browser, absent). */
  private checkOrigin(req: IncomingMessage): void {
    const origin = req.headers.origin;
    const host = req.headers.host;
    if (typeof origin !== 'string' || !host) throw new ApiError('forbidden', 'a same-origin Origin header is required');
    let o: URL;
    try {
      o = new URL(origin);
    } catch {
      throw new ApiError('forbidden', 'Origin is not a URL');
    }
    if (o.host !== host) throw new ApiError('forbidden', `cross-site request from ${o.origin} refused`);
  }
}

function sign(secret: Buffer, text: string): string {
  return createHmac('sha256', secret).update(text).digest('base64url');
}

function safeEqual(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y) && a === b;
}
