/**
 * The uWebSockets.js baseline is loaded from a build for the running Node or skipped with a note
 * that says why: never silently replaced by something that is not the native server.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadUws } from '../src/uws-load.js';

function withEnv<T>(value: string, fn: () => T): T {
  const before = process.env['GATEHOUSE_BENCH_UWS'];
  process.env['GATEHOUSE_BENCH_UWS'] = value;
  try {
    return fn();
  } finally {
    if (before === undefined) delete process.env['GATEHOUSE_BENCH_UWS'];
    else process.env['GATEHOUSE_BENCH_UWS'] = before;
  }
}

test('a directory without a build for this Node is skipped with a note naming the binary it looked for', () => {
  const dir = mkdtempSync(join(tmpdir(), 'uws-none-'));
  try {
    const r = withEnv(dir, loadUws);
    if ('uws' in r) return; // an installed uWebSockets.js package loaded after it: nothing to check here
    assert.match(r.skipped, /raw uWebSockets\.js baseline skipped: no build loads on Node v\d+/);
    assert.ok(r.skipped.includes(`${dir}: no uws_${process.platform}_${process.arch}_${process.versions.modules}.node`), r.skipped);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a build that does not load (wrong ABI, missing glibc) is skipped with the loader error, not replaced', () => {
  const dir = mkdtempSync(join(tmpdir(), 'uws-bad-'));
  try {
    writeFileSync(join(dir, `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`), 'not a shared object');
    const r = withEnv(dir, loadUws);
    if ('uws' in r) {
      assert.notEqual(r.from, join(dir, `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`));
      return;
    }
    assert.ok(r.skipped.includes(dir), r.skipped);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
