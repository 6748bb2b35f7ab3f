/**
 * Start-up mistakes are reported in the user's terms: the flag, variable or file key they wrote,
 * in the setting's unit, exit code 2, a suggestion for a near miss; and `--version` answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closest, editDistance } from '../src/args.js';
import { environmentWarnings } from '../src/config.js';
import { BIN, ROOT } from './helpers.js';

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
}

const dir = mkdtempSync(join(tmpdir(), 'gh-cli-errors-'));

/** A config file holding `text`; returns its path. */
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

test('each start-up mistake exits 2 naming what the user typed, never an internal name', () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['--heartbeat', '0'], {}, /^gatehouse start: --heartbeat must be a number of seconds above 0, got "0"$/],
    [[], { GATEHOUSE_HEARTBEAT: '0' }, /^gatehouse start: GATEHOUSE_HEARTBEAT must be a number of seconds above 0, got "0"$/],
    [['--config', file('hb.yaml', 'heartbeat: 0\n')], {}, /config file .*hb\.yaml: heartbeat must be a number of seconds above 0, got 0$/],
    [
      ['--log-level', 'verbose'],
      {},
      /^gatehouse start: --log-level must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"$/,
    ],
    [['--log-level', 'warning'], {}, /got "warning"; did you mean warn\?$/],
    [[], { GATEHOUSE_LOG_LEVEL: 'loud' }, /^gatehouse start: GATEHOUSE_LOG_LEVEL must be one of/],
    [['--log-format', 'yaml'], {}, /--log-format must be one of auto, pretty, json, got "yaml"/],
    [['--port', '80x90'], {}, /^gatehouse start: --port must be a whole number, got "80x90"$/],
    [['--port', '99999'], {}, /^gatehouse start: --port must be a whole number from 0 to 65535, got "99999"$/],
    [['--max-connections', '0'], {}, /^gatehouse start: --max-connections must be a whole number, at least 1, got "0"$/],
    [['--coalesce-ms', '5000'], {}, /--coalesce-ms must be a whole number from 0 to 1000, got "5000"/],
    [['--max-batch-delay-ms', '5000'], {}, /--max-batch-delay-ms must be a whole number from 0 to 1000, got "5000"/],
    [['--heartbeet', '5'], {}, /^gatehouse start: unknown option --heartbeet; did you mean --heartbeat\?/],
    [['--api-keys', 'dev-key-123'], {}, /unknown option --api-keys; did you mean --api-key\?/],
    [['--port'], {}, /^gatehouse start: --port needs a value/],
    [['--trust-proxy=yes'], {}, /--trust-proxy takes no value/],
    [['--token-secret', 'short'], {}, /^gatehouse start: --token-secret must be a string of at least 8 characters$/],
    [['--api-key', 'dev-key-123', '--api-key', 'short'], {}, /^gatehouse start: --api-key #2 must be at least 8 characters$/],
    [['--config', file('prot.yaml', 'prot: 80\n')], {}, /config file .*prot\.yaml: unknown setting "prot"; did you mean port\?$/],
    [
      ['--backbone-option', 'jetstream.replicas=three'],
      {},
      /^gatehouse start: --backbone-option: backbone\.jetstream\.replicas must be a whole number, got "three"$/,
    ],
    [[], { GATEHOUSE_BACKBONE_NAMESPACE: 'Prod.EU' }, /^gatehouse start: GATEHOUSE_BACKBONE_NAMESPACE must be 1-32 characters/],
    [
      ['--config', file('ns.yaml', 'namespaces:\n  chat: { historySize: -3 }\n')],
      {},
      /config file .*ns\.yaml: namespaces\.chat\.historySize must be/,
    ],
  ];
  for (const [args, env, message] of cases) {
    const out = run(['start', '--port', '0', ...args], env);
    assert.equal(out.status, 2, `${args.join(' ')}: ${out.stderr}`);
    assert.match(out.stderr.trim(), message, args.join(' '));
    assert.doesNotMatch(out.stderr, /heartbeatMs|tokenSecret|apiKeys|custom levels|-- port| at .*\.js:\d+/, args.join(' '));
  }
});

test('--version prints the version of the command', () => {
  const version = (JSON.parse(readFileSync(join(ROOT, 'packages', 'cli', 'package.json'), 'utf8')) as { version: string }).version;
  for (const flag of ['--version', 'version']) {
    const out = run([flag]);
    assert.equal(out.status, 0, out.stderr);
    assert.equal(out.stdout.trim(), version);
  }
});

test('a misspelt command gets a suggestion', () => {
  const out = run(['strat']);
  assert.equal(out.status, 2);
  assert.match(out.stderr, /unknown command "strat"; did you mean start\?/);
});

test('a misspelt GATEHOUSE_ variable is reported, even when the start then fails', () => {
  const out = run(['start', '--port', 'x'], { GATEHOUSE_HEARTBEET: '5' });
  assert.match(
    out.stderr,
    /warning: environment variable GATEHOUSE_HEARTBEET is not a setting and is ignored; did you mean GATEHOUSE_HEARTBEAT\?/,
  );
  assert.deepEqual(
    environmentWarnings({ GATEHOUSE_URL: 'http://x', GATEHOUSE_WORKER_INDEX: '1', GATEHOUSE_SKIP_LOG: '/tmp/x', GATEHOUSE_PORT: '1' }),
    [],
  );
});

test('suggestions are for near misses only', () => {
  assert.equal(editDistance('heartbeet', 'heartbeat'), 1);
  assert.equal(editDistance('prot', 'port'), 1);
  assert.equal(closest('--heartbeet', ['--heartbeat', '--host']), '--heartbeat');
  assert.equal(closest('--drain', ['--drain-window', '--heartbeat']), '--drain-window');
  assert.equal(closest('--completely-else', ['--port', '--host']), undefined);
});
