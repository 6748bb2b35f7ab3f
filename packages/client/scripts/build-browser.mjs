#!/usr/bin/env node
// Builds dist/browser/gatehouse.js: the browser entry and @gatehouse/protocol in one ESM file, so a
// page can `import { GatehouseClient } from '/sdk/gatehouse.js'` with no bundler and no import map.
// It bundles tsc's output (dist/src), not the TypeScript sources, so the file carries exactly the
// code that was type-checked; run `tsc -b` first (the root `build` and `prepare` scripts do).
import { build } from 'esbuild';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const entry = `${pkgDir}dist/src/index.js`;
const outfile = `${pkgDir}dist/browser/gatehouse.js`;

if (!existsSync(entry)) {
  console.error(`build-browser: ${entry} is missing; run \`npx tsc -b\` at the repository root first`);
  process.exit(1);
}

const { version } = JSON.parse(readFileSync(`${pkgDir}package.json`, 'utf8'));
const result = await build({
  absWorkingDir: pkgDir,
  entryPoints: [entry],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  // The same language level tsc emits (tsconfig.base.json), which every current browser runs.
  target: 'es2022',
  // Readable on purpose: this is the file a newcomer steps through in the developer tools.
  minify: false,
  legalComments: 'none',
  banner: { js: `// @gatehouse/client ${version}, browser build (single file, no dependencies). Apache-2.0.` },
  metafile: true,
  logLevel: 'warning',
});

// A bare import left in the output would make the file unusable without an import map.
const external = Object.values(result.metafile.outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path));
if (external.length > 0) {
  console.error(`build-browser: ${outfile} still imports ${external.join(', ')}`);
  process.exit(1);
}
console.log(`build-browser: wrote ${outfile}`);
