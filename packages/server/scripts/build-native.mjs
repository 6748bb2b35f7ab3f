#!/usr/bin/env node
// Compiles native/send.c (the fan-out's batched send, see that file) into
// dist/native/gatehouse_send.node with the system C compiler ($CC, else cc) and the Node-API
// headers from the node-api-headers package. Node-API is ABI-stable, so one build serves Node 20
// and 24. Without a compiler, or off Linux and macOS, the build is skipped with a note and the
// gateway writes through net.Socket as before (`--native-writes auto`).
import { spawnSync } from 'node:child_process';
import { mkdirSync, existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const pkg = new URL('..', import.meta.url).pathname;
const source = join(pkg, 'native', 'send.c');
const out = join(pkg, 'dist', 'native', 'gatehouse_send.node');

if (process.platform !== 'linux' && process.platform !== 'darwin') {
  console.log(`build-native: skipped on ${process.platform}; the gateway writes through net.Socket`);
  process.exit(0);
}
if (existsSync(out) && statSync(out).mtimeMs > statSync(source).mtimeMs) process.exit(0);

let include;
try {
  include = join(dirname(createRequire(import.meta.url).resolve('node-api-headers/package.json')), 'include');
} catch {
  console.warn('build-native: node-api-headers is not installed (npm ci installs it); skipped');
  process.exit(0);
}

const cc = process.env.CC || 'cc';
const flags = ['-O2', '-Wall', '-Wextra', '-fPIC', '-shared', `-I${include}`, '-o', out, source];
// macOS resolves the Node-API symbols from the node binary at load time.
if (process.platform === 'darwin') flags.unshift('-undefined', 'dynamic_lookup');
mkdirSync(dirname(out), { recursive: true });
const r = spawnSync(cc, flags, { stdio: 'inherit' });
if (r.error || r.status !== 0) {
  console.warn(
    `build-native: ${cc} ${r.error ? `could not run (${r.error.message})` : `failed (exit ${r.status})`}; ` +
      'skipped, the gateway writes through net.Socket. Install a C compiler (gcc or clang) for the faster path.',
  );
  process.exit(0);
}
console.log(`build-native: wrote ${out}`);
