/**
 * Finds a uWebSockets.js build that loads on the running Node, for the raw uWebSockets.js baseline
 * (`--baseline-mode uws`). uWebSockets.js is not a dependency of the bench: its builds are tied to
 * one Node ABI (and a glibc), and the packages that carry them either target older Nodes or fall
 * back silently to a pure-JS server, which would not be the native baseline. So the build's binary
 * is loaded directly, from the first of:
 *
 * 1. the directory named by GATEHOUSE_BENCH_UWS (a uWebSockets.js package directory);
 * 2. the package `uWebSockets.js`, then `@trufflesuite/uws-js-unofficial`, where either resolves.
 *
 * Where none loads, the baseline is skipped with a note that says why.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The part of the uWebSockets.js API the baseline uses. */
export interface UwsModule {
  App(): UwsApp;
  us_socket_local_port(listenSocket: unknown): number;
  us_listen_socket_close(listenSocket: unknown): void;
  DISABLED: number;
}

/** A uWebSockets.js app (untyped beyond what the baseline calls). */
export interface UwsApp {
  ws(pattern: string, behavior: Record<string, unknown>): UwsApp;
  get(pattern: string, handler: (res: UwsResponse, req: UwsRequest) => void): UwsApp;
  post(pattern: string, handler: (res: UwsResponse, req: UwsRequest) => void): UwsApp;
  any(pattern: string, handler: (res: UwsResponse, req: UwsRequest) => void): UwsApp;
  listen(host: string, port: number, cb: (listenSocket: unknown) => void): UwsApp;
  publish(topic: string, message: string | Buffer, isBinary?: boolean): boolean;
  numSubscribers(topic: string): number;
}

export interface UwsRequest {
  getHeader(name: string): string;
}

export interface UwsResponse {
  onAborted(fn: () => void): UwsResponse;
  onData(fn: (chunk: ArrayBuffer, isLast: boolean) => void): UwsResponse;
  writeStatus(status: string): UwsResponse;
  writeHeader(name: string, value: string): UwsResponse;
  end(body?: string): UwsResponse;
  cork(fn: () => void): UwsResponse;
}

/** A loaded build, or why none loaded. */
export type UwsLoad = { uws: UwsModule; from: string } | { skipped: string };

const PACKAGES = ['uWebSockets.js', '@trufflesuite/uws-js-unofficial'];

/** Loads the first uWebSockets.js build that works on this Node. */
export function loadUws(): UwsLoad {
  const require = createRequire(import.meta.url);
  const dirs: string[] = [];
  const env = process.env['GATEHOUSE_BENCH_UWS'];
  if (env) dirs.push(env);
  for (const name of PACKAGES) {
    try {
      dirs.push(dirname(require.resolve(`${name}/package.json`)));
    } catch {
      // not installed
    }
  }
  const binary = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  const tried: string[] = [];
  for (const dir of dirs) {
    const file = [join(dir, binary), join(dir, 'binaries', binary)].find((f) => existsSync(f));
    if (!file) {
      tried.push(`${dir}: no ${binary}`);
      continue;
    }
    try {
      return { uws: require(file) as UwsModule, from: file };
    } catch (err) {
      tried.push(`${file}: ${String((err as Error).message).split('\n', 1)[0]}`);
    }
  }
  const where = tried.length > 0 ? tried.join('; ') : `none of ${PACKAGES.join(', ')} is installed and GATEHOUSE_BENCH_UWS is not set`;
  return {
    skipped: `raw uWebSockets.js baseline skipped: no build loads on Node ${process.version} (ABI ${process.versions.modules}, ${process.platform}-${process.arch}): ${where}`,
  };
}
