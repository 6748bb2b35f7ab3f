#!/usr/bin/env node
// npm's prepack/postpack helper for packages that ship workspace siblings inside their tarball
// (`bundleDependencies`). @gatehouse/protocol is not on any registry, so a tarball that merely
// depends on it cannot be installed anywhere but here. npm bundles a dependency only when it finds
// it in the package's own node_modules, while the workspace hoists it to the root; `link` puts a
// symlink to the sibling there for the length of `npm pack`, `unlink` takes it away again.
// A leftover link is harmless: it points at the same live sibling the root link does.
//   usage (from package.json, cwd = the package): node ../../scripts/bundled-deps.mjs link|unlink
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmdirSync, symlinkSync, unlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkgDir = process.cwd();
const action = process.argv[2];
const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const bundled = manifest.bundleDependencies ?? [];

function fail(message) {
  console.error(`bundled-deps (${manifest.name}): ${message}`);
  process.exit(1);
}

if (action !== 'link' && action !== 'unlink') fail(`expected "link" or "unlink", got ${JSON.stringify(action)}`);

for (const name of bundled) {
  const local = join(pkgDir, 'node_modules', name);
  if (action === 'unlink') {
    if (lstatSync(local, { throwIfNoEntry: false })?.isSymbolicLink()) unlinkSync(local);
    // Remove the folders `link` created (the scope, then node_modules) once they are empty.
    for (let dir = dirname(local); dir.startsWith(join(pkgDir, 'node_modules')); dir = dirname(dir)) {
      if (!existsSync(dir) || readdirSync(dir).length > 0) break;
      rmdirSync(dir);
    }
    continue;
  }
  const hoisted = join(root, 'node_modules', name);
  if (!existsSync(hoisted)) fail(`${name} is not installed at the repository root; run npm ci`);
  const target = realpathSync(hoisted);
  const sibling = JSON.parse(readFileSync(join(target, 'package.json'), 'utf8'));
  // npm also packs a bundled sibling's own dependencies, from wherever it resolves them. Siblings
  // bundled next to it are found by Node from there (they sit in the same node_modules); anything
  // else (a registry package) would be copied in from the workspace, so it is refused.
  const unbundled = Object.keys(sibling.dependencies ?? {}).filter((dep) => !bundled.includes(dep));
  if (unbundled.length > 0)
    fail(
      `${name} depends on ${unbundled.join(', ')}, which this package does not bundle; bundle only siblings whose @gatehouse dependencies are bundled too and that have no others`,
    );
  if (!existsSync(join(target, sibling.main ?? 'index.js'))) fail(`${name} is not built (${sibling.main} missing); run npx tsc -b`);
  const present = lstatSync(local, { throwIfNoEntry: false });
  if (present) {
    if (present.isSymbolicLink() && existsSync(local) && realpathSync(local) === target) continue;
    fail(`${relative(root, local)} exists and is not a link to ${relative(root, target)}; remove it`);
  }
  mkdirSync(dirname(local), { recursive: true });
  symlinkSync(relative(dirname(local), target), local);
}
