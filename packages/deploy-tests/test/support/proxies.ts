/**
 * Real nginx and HAProxy in front of test gateways, each from a copy of the shipped configuration
 * (deploy/nginx, deploy/haproxy) in which only the addresses, ports, timeouts, check interval and
 * file locations are substituted. Every substitution must match exactly as often as expected, so
 * a change to the shipped file that the test no longer understands fails loudly instead of
 * silently testing something else.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tcpReachable, waitFor } from '@gatehouse/testkit';
import { REPO_ROOT, Service, findBinary, freePort, run, tempDir } from './processes.js';

/** The shipped files the tests use as templates. */
export const SHIPPED = {
  nginxMain: join(REPO_ROOT, 'deploy', 'nginx', 'nginx.conf'),
  nginxSite: join(REPO_ROOT, 'deploy', 'nginx', 'gatehouse.conf'),
  haproxy: join(REPO_ROOT, 'deploy', 'haproxy', 'haproxy.cfg'),
  /** The variant `location = /ws` that refuses WebSocket upgrades (the fallback tests). */
  nginxNoWebSocket: join(REPO_ROOT, 'deploy', 'nginx', 'no-websocket.conf'),
} as const;

/** Which proxy. */
export type ProxyKind = 'nginx' | 'haproxy';

/** How the test copy differs from the shipped file. */
export interface ProxySpec {
  /** Gateway ports, in order. */
  backends: number[];
  /** The WebSocket idle (tunnel) timeout, seconds; shipped: 75. */
  idleTimeoutSeconds: number;
  /** HAProxy health-check interval, ms; shipped: 2000. */
  checkIntervalMs?: number;
  /** nginx only: how long a failed gateway stays out of rotation, seconds; shipped: 10. */
  failTimeoutSeconds?: number;
  /** nginx only: use the shipped variant that refuses WebSocket upgrades (deploy/nginx/no-websocket.conf). */
  refuseUpgrades?: boolean;
}

/** A running proxy. */
export interface Proxy {
  kind: ProxyKind;
  port: number;
  service: Service;
  /** The rendered configuration files, for failure messages. */
  config: string;
  stop(): Promise<void>;
}

/** Replaces every match of `pattern` (global), requiring exactly `count` of them. */
export function substitute(
  text: string,
  pattern: RegExp,
  replacement: string | ((...m: string[]) => string),
  count: number,
  what: string,
): string {
  const matches = text.match(pattern)?.length ?? 0;
  if (matches !== count) {
    throw new Error(`shipped config changed: expected ${count} match(es) of ${pattern} (${what}), found ${matches}`);
  }
  return text.replace(pattern, replacement as (substring: string, ...args: unknown[]) => string);
}

/** The nginx configuration the test runs: the shipped main file and site file, substituted. */
export function renderNginx(spec: ProxySpec, listenPort: number, dir: string): { main: string; site: string } {
  let main = readFileSync(SHIPPED.nginxMain, 'utf8');
  main = substitute(main, /^pid \/run\/nginx\.pid;$/gm, `pid ${dir}/nginx.pid;`, 1, 'pid file');
  main = substitute(main, /\/var\/log\/nginx\//g, `${dir}/`, 2, 'log files');
  main = substitute(main, /include \/etc\/nginx\/conf\.d\/gatehouse\.conf;/g, `include ${dir}/gatehouse.conf;`, 1, 'site include');
  // Temporary files in the test directory (the compiled-in defaults are system paths).
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${dir}/${t}_temp;`).join('\n');
  main = substitute(main, /^http \{$/gm, `http {\n${temp}`, 1, 'http block');

  let site = readFileSync(SHIPPED.nginxSite, 'utf8');
  site = substitute(site, /^ {4}listen 80;$/gm, `    listen 127.0.0.1:${listenPort};`, 1, 'listen');
  let first = true;
  site = substitute(
    site,
    /^ {4}server 10\.0\.0\.\d+:8080( [^;]*)?;\n/gm,
    (_m, params = '') => {
      if (!first) return '';
      first = false;
      return spec.backends.map((p) => `    server 127.0.0.1:${p}${params};\n`).join('');
    },
    3,
    'upstream servers',
  );
  site = substitute(
    site,
    /^( +)(proxy_read_timeout|proxy_send_timeout|send_timeout) 75s;$/gm,
    (_m, indent: string, directive: string) => `${indent}${directive} ${spec.idleTimeoutSeconds}s;`,
    9,
    'WebSocket, stream and Pusher idle timeouts',
  );
  if (spec.failTimeoutSeconds !== undefined) {
    site = substitute(site, / fail_timeout=10s;/g, ` fail_timeout=${spec.failTimeoutSeconds}s;`, spec.backends.length, 'fail_timeout');
  }
  if (spec.refuseUpgrades) {
    const variant = readFileSync(SHIPPED.nginxNoWebSocket, 'utf8').replace(/^#.*\n/gm, '');
    site = substitute(site, /^ {4}location = \/ws \{\n[\s\S]*?^ {4}\}\n/gm, () => variant, 1, 'the /ws location');
  }
  return { main, site };
}

/** The HAProxy configuration the test runs: the shipped file, substituted. */
export function renderHaproxy(spec: ProxySpec, listenPort: number): string {
  let cfg = readFileSync(SHIPPED.haproxy, 'utf8');
  // The shipped connection limits need ~200,000 descriptors, more than a test machine's hard
  // limit may allow (HAProxy refuses to start then); scale them down, keeping their ratio.
  cfg = substitute(cfg, /^ {4}maxconn 100000$/gm, '    maxconn 4000', 1, 'global maxconn');
  cfg = substitute(cfg, /^ {4}maxconn 90000$/gm, '    maxconn 3600', 1, 'frontend maxconn');
  cfg = substitute(cfg, /^ {4}bind :80$/gm, `    bind 127.0.0.1:${listenPort}`, 1, 'bind');
  cfg = substitute(cfg, /^ {4}timeout tunnel 75s$/gm, `    timeout tunnel ${spec.idleTimeoutSeconds}s`, 1, 'tunnel timeout');
  cfg = substitute(cfg, / check inter 2s /g, ` check inter ${spec.checkIntervalMs ?? 2000}ms `, 1, 'check interval');
  let first = true;
  cfg = substitute(
    cfg,
    /^ {4}server gw\d 10\.0\.0\.\d+:8080\n/gm,
    () => {
      if (!first) return '';
      first = false;
      return spec.backends.map((p, i) => `    server gw${i + 1} 127.0.0.1:${p}\n`).join('');
    },
    3,
    'backend servers',
  );
  return cfg;
}

/** Starts nginx or HAProxy from the rendered shipped config on a free port. */
export async function startProxy(kind: ProxyKind, spec: ProxySpec): Promise<Proxy> {
  const binary = findBinary(kind);
  if (!binary) throw new Error(`${kind} is not installed`);
  const port = await freePort();
  const dir = tempDir(kind);
  // nginx's workers run as an unprivileged user when the master is root; let them in.
  chmodSync(dir.path, 0o755);
  let service: Service;
  let config: string;
  if (kind === 'nginx') {
    const { main, site } = renderNginx(spec, port, dir.path);
    writeFileSync(join(dir.path, 'nginx.conf'), main);
    writeFileSync(join(dir.path, 'gatehouse.conf'), site);
    config = `${main}\n---- gatehouse.conf ----\n${site}`;
    const base = ['-p', dir.path, '-c', join(dir.path, 'nginx.conf'), '-e', join(dir.path, 'error.log')];
    const check = await run(binary, [...base, '-t']);
    if (check.code !== 0) throw new Error(`nginx -t rejected the rendered config:\n${check.stderr}`);
    service = new Service('nginx', binary, [...base, '-g', 'daemon off;']);
  } else {
    config = renderHaproxy(spec, port);
    const file = join(dir.path, 'haproxy.cfg');
    writeFileSync(file, config);
    const check = await run(binary, ['-c', '-f', file]);
    if (check.code !== 0) throw new Error(`haproxy -c rejected the rendered config:\n${check.stdout}${check.stderr}`);
    service = new Service('haproxy', binary, ['-db', '-f', file]);
  }
  try {
    await waitFor(
      `${kind} listening on 127.0.0.1:${port}`,
      async () => {
        if (!service.running) throw new Error(`${kind} exited with ${JSON.stringify(service.exit)}`);
        return tcpReachable('127.0.0.1', port, 500);
      },
      15_000,
      50,
    );
  } catch (err) {
    await service.stop().catch(() => undefined);
    const errorLog = kind === 'nginx' ? readFileSync(join(dir.path, 'error.log'), 'utf8') : '';
    dir.cleanup();
    throw new Error(`${(err as Error).message}\n${service.describe()}\n${errorLog}`, { cause: err });
  }
  return {
    kind,
    port,
    service,
    config,
    async stop() {
      await service.stop().catch(() => undefined);
      dir.cleanup();
    },
  };
}
