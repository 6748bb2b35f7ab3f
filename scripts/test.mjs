#!/usr/bin/env node
// Runs every compiled test file with Node's own test runner, then lists the suites that skipped
// because a real service was missing (and how to start them). Usage:
//   node scripts/test.mjs [filter...]   filter: substrings of test file paths (e.g. "redis", "client")
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { tmpdir } from 'node:os';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);

function walk(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = [];
for (const pkg of readdirSync(join(root, 'packages')).sort()) walk(join(root, 'packages', pkg, 'dist', 'test'), files);
const selected = files
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (selected.length === 0) {
  console.error(`no test files matched ${filters.join(' ') || '(all)'}; did the build run?`);
  process.exit(1);
}

const skipLog = join(tmpdir(), `gatehouse-skips-${process.pid}.log`);
rmSync(skipLog, { force: true });
const args = ['--test', '--test-reporter=spec', `--test-concurrency=${process.env.GATEHOUSE_TEST_CONCURRENCY ?? 2}`, '--test-timeout=300000', ...selected];
const run = spawnSync(process.execPath, args, {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, GATEHOUSE_SKIP_LOG: skipLog },
});
if (existsSync(skipLog)) {
  const skipped = [...new Set(readFileSync(skipLog, 'utf8').trim().split('\n'))];
  console.log(`\nskipped suites (${skipped.length}):`);
  for (const s of skipped) console.log(`  - ${s}`);
  console.log('start the services locally without Docker with: scripts/services.sh start');
  rmSync(skipLog, { force: true });
}
process.exit(run.status ?? 1);
