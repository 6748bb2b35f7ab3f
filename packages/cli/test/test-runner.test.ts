/** scripts/test.mjs, the README's way to run one suite or one file: --help, --list, bad options. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

function runner(args: string[]) {
  return spawnSync(process.execPath, [join(ROOT, 'scripts', 'test.mjs'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
}

test('--help explains filters and --list instead of looking for a file named --help', () => {
  const out = runner(['--help']);
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /--list/);
  assert.match(out.stdout, /one suite/);
  assert.doesNotMatch(out.stdout + out.stderr, /no test files matched/);
});

test('--list names each matching file with its suite and the services it needs, and runs nothing', () => {
  const out = runner(['--list', 'backbone-redis', 'cli/dist/test/test-runner']);
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /^cli +packages\/cli\/dist\/test\/test-runner\.test\.js$/m);
  assert.match(out.stdout, /^backbone-redis +packages\/backbone-redis\/dist\/test\/conformance\.test\.js +\(needs redis\)$/m);
  assert.doesNotMatch(out.stdout, /^cli +packages\/cli\/dist\/test\/errors\.test\.js/m);
  assert.doesNotMatch(out.stdout, /ℹ tests|# tests/);
});

test('an unknown option is an error of its own, and no match says how to list the files', () => {
  const bad = runner(['--lsit']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown option --lsit/);
  const none = runner(['no-such-test-file']);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /--list/);
});

test('the README has the section on running one suite or one file', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  assert.match(readme, /^### Running one suite or one file$/m);
  assert.match(readme, /^node scripts\/test\.mjs --list/m);
  assert.match(readme, /^node scripts\/test\.mjs packages\/cli\/dist\/test\/cli\.test\.js/m);
});
