/**
 * The two things a gateway serves to browsers besides WebSockets: the SDK's single-file build at
 * `/sdk/gatehouse.js` (so a page can `import` it with no bundler), and a small demo page at
 * `/demo/`. The page exists because current Chromium refuses a WebSocket from `about:blank` to
 * `ws://localhost` (local network access checks); from a page of the gateway's own origin the
 * connection is same-site and allowed, so the README's console snippet works there.
 */
import { stat, readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from './http-api.js';

/** Where the SDK's browser build is served. */
export const SDK_PATH = '/sdk/gatehouse.js';
/** Where the demo page is served. */
export const DEMO_PATH = '/demo/';

/**
 * Finds the SDK's browser build: `@gatehouse/client`'s `./gatehouse.js` export, built by
 * `npm run build`. Resolved at request time so a gateway without the SDK still starts.
 */
export function defaultSdkFile(): string {
  return fileURLToPath(import.meta.resolve('@gatehouse/client/gatehouse.js'));
}

/** The demo page: loads the SDK through an import map and says what to paste where. */
const DEMO_PAGE = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gatehouse demo</title>
<script type="importmap">{ "imports": { "@gatehouse/client": "${SDK_PATH}" } }</script>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
  code { background: #f2f2f2; padding: 0 0.2em; }
</style>
<h1>Gatehouse</h1>
<p>This page comes from the gateway itself, so the browser lets it open WebSockets to the
gateway. Open the developer console (F12) and paste the snippet from the README's
"Subscribe from a browser" section.</p>
<p>The SDK is served at <code>${SDK_PATH}</code>: <code>GatehouseClient</code> is a global on this
page, and <code>await import('${SDK_PATH}')</code> works in the console.</p>
<p id="status">Loading the SDK...</p>
<script type="module">
  import { GatehouseClient } from '@gatehouse/client';
  window.GatehouseClient = GatehouseClient;
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  document.getElementById('status').textContent = 'SDK loaded. This gateway\\'s WebSocket URL: ' + url;
</script>
</html>
`;

/** The SDK file as last read, kept while its size and modification time stay the same. */
interface CachedFile {
  body: Buffer;
  etag: string;
  mtimeMs: number;
  size: number;
}

/** Answers GET and HEAD for the SDK and the demo page; every other request is left to the caller. */
export class StaticRoutes {
  private sdk: CachedFile | undefined;

  /** `sdkFile` names the SDK build on disk (tests point it elsewhere). */
  constructor(private readonly sdkFile: () => string = defaultSdkFile) {}

  /** Handles `path` if it is one of these routes and returns true; otherwise returns false. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (path !== SDK_PATH && path !== DEMO_PATH && path !== '/demo') return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { error: { code: 'bad_request', message: `${path} takes GET` } }, { allow: 'GET, HEAD' });
      return true;
    }
    if (path === '/demo') {
      res.writeHead(308, { location: DEMO_PATH, 'content-length': 0 }).end();
    } else if (path === DEMO_PATH) {
      const body = Buffer.from(DEMO_PAGE);
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': body.length,
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } else {
      // serveSdk answers every failure it expects; anything else must not become an unhandled rejection.
      this.serveSdk(req, res).catch(() => res.destroy());
    }
    return true;
  }

  private async serveSdk(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let file: CachedFile;
    try {
      file = await this.loadSdk();
    } catch (err) {
      const message = `the browser SDK is not available on this node (${(err as Error).message}); build it with npm run build`;
      sendJson(res, 404, { error: { code: 'not_found', message } });
      return;
    }
    const headers = {
      'content-type': 'text/javascript; charset=utf-8',
      // Revalidated after five minutes: the URL carries no version, so a redeployed gateway's
      // SDK must reach pages soon, and the ETag makes the check cheap.
      'cache-control': 'public, max-age=300',
      etag: file.etag,
      // Module scripts are fetched with CORS: a page on another origin may import this file.
      'access-control-allow-origin': '*',
      'cross-origin-resource-policy': 'cross-origin',
      'x-content-type-options': 'nosniff',
    };
    if (req.headers['if-none-match']?.split(',').some((tag) => tag.trim() === file.etag)) {
      res.writeHead(304, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': file.body.length });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  }

  /** Reads the SDK file, or reuses the copy in memory while the file on disk is unchanged. */
  private async loadSdk(): Promise<CachedFile> {
    const path = this.sdkFile();
    const info = await stat(path);
    if (this.sdk && this.sdk.mtimeMs === info.mtimeMs && this.sdk.size === info.size) return this.sdk;
    const body = await readFile(path);
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    this.sdk = { body, etag, mtimeMs: info.mtimeMs, size: info.size };
    return this.sdk;
  }
}
