#!/usr/bin/env node
// Runs the compiled test files with Node's own test runner, then lists the suites that skipped
// because a real service was missing (and how to start them). `--help` says how to pick files.
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { tmpdir } from 'node:os';

const HELP = `node scripts/test.mjs [--list] [filter...]

Runs every compiled test file (packages/*/dist/test/**/*.test.js; build first with "npx tsc -b",
or use "npm test", which builds and runs everything).

  filter     run only the files whose path contains one of these substrings, e.g.
               node scripts/test.mjs backbone-redis          one suite (a package)
               node scripts/test.mjs cli/dist/test/cli.test  one file
               node scripts/test.mjs redis nats              every file matching either
  --list     print the files that would run, each with its suite and the services it checks
             for, and run nothing
  --help     this text

Suites that need Redis, NATS, Kafka, nginx, HAProxy, Prometheus or Chromium skip with a note when
the service is missing ("scripts/services.sh start" starts them); GATEHOUSE_REQUIRE_SERVICES=1 turns
such a skip into a failure. GATEHOUSE_TEST_CONCURRENCY sets how many files run at once (default 2).`;

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(HELP);
  process.exit(0);
}
const list = args.includes('--list');
const unknown = args.filter((a) => a.startsWith('-') && a !== '--list');
if (unknown.length > 0) {
  console.error(`unknown option ${unknown[0]}: test.mjs takes --list, --help and file filters (see --help)`);
  process.exit(2);
}
const filters = args.filter((a) => !a.startsWith('-'));

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
const selected = files.map((f) => relative(root, f)).filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (selected.length === 0) {
  const built = files.length > 0 ? `none of the ${files.length} test files matched` : 'no compiled test files: run "npx tsc -b" first';
  console.error(`${built} ${filters.join(' ') || '(all)'}; "node scripts/test.mjs --list" shows them all`);
  process.exit(1);
}

if (list) {
  // The services a file checks for are the ones it names to the testkit's skip check.
  const rows = selected.map((file) => {
    const suite = file.split('/')[1];
    const services = [
      ...new Set([...readFileSync(join(root, file), 'utf8').matchAll(/serviceSkipReason\(['"]([a-z0-9-]+)['"]/g)].map((m) => m[1])),
    ];
    return [suite, file, services.join(', ')];
  });
  const width = Math.max(...rows.map(([suite]) => suite.length));
  for (const [suite, file, services] of rows) console.log(`${suite.padEnd(width)}  ${file}${services ? `  (needs ${services})` : ''}`);
  console.log(`\n${rows.length} files; run one with: node scripts/test.mjs ${rows[0][1]}`);
  process.exit(0);
}

const skipLog = join(tmpdir(), `gatehouse-skips-${process.pid}.log`);
rmSync(skipLog, { force: true });
const nodeArgs = [
  '--test',
  '--test-reporter=spec',
  `--test-concurrency=${process.env.GATEHOUSE_TEST_CONCURRENCY ?? 2}`,
  '--test-timeout=300000',
  ...selected,
];
const run = spawnSync(process.execPath, nodeArgs, {
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
