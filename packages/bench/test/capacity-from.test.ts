import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MIN_TRUSTED_CONNECTIONS_PER_PROCESS } from '../src/capacity-source.js';
import { bench, capacity } from './helpers.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'gh-capacity-from-'));
let seq = 0;

/** Writes a bench document shaped like the ones `gatehouse bench --json` writes. */
function benchDoc(o: {
  scenario?: string;
  connections?: number;
  processes?: number;
  bytes?: number;
  urls?: string[];
  incomplete?: string;
}): string {
  const file = join(dir, `bench-${++seq}.json`);
  const processes = o.processes ?? 1;
  const doc: Record<string, unknown> = {
    tool: '@gatehouse/bench',
    scenario: o.scenario ?? 'idle',
    params: { connections: o.connections, urls: o.urls ?? [] },
    gateway: {
      target: 'gateway',
      processes,
      connections: o.connections,
      memoryPerConnectionBytes: o.bytes ?? 7000,
      rssBeforeBytes: processes * 66 * MiB,
    },
  };
  if (o.incomplete) doc['incomplete'] = o.incomplete;
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

async function plan(file: string, ...more: string[]) {
  const r = await capacity(['--users', '100000', '--nodes', '2', '--from', file, '--json', ...more]);
  assert.equal(r.code, 0, r.err);
  return { plan: JSON.parse(r.out), err: r.err };
}

describe('gatehouse capacity --from: a sample too small to trust', () => {
  test('warns about a 200-connection idle sample (19 KB each) and still prints the plan', async () => {
    const file = benchDoc({ connections: 200, bytes: 19_000 });
    const r = await capacity(['--users', '100000', '--nodes', '2', '--from', file]);
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.out,
      /warning: sample too small to trust: .* measured 200 connections on 1 gateway process; below 10,000 per process the figure overstates/,
    );
    assert.match(r.out, /measured over\s+200 connections on 1 gateway process \(bench idle\)/);
    assert.match(r.out, /RAM per node/);
  });

  test('counts connections per gateway process: 20,000 over 4 processes is 5,000 each, too few', async () => {
    const { plan: p, err } = await plan(benchDoc({ connections: 20_000, processes: 4 }));
    assert.equal(p.warnings.length, 1);
    assert.match(p.warnings[0], /20,000 connections over 4 gateway processes \(5,000 each\)/);
    assert.match(err, /^warning: sample too small to trust/m, 'with --json the warnings go to stderr too');
  });

  test('trusts the recorded runs: 15,000 on one process and 100,000 over seven', async () => {
    for (const [connections, processes] of [
      [15_000, 1],
      [100_000, 7],
      [MIN_TRUSTED_CONNECTIONS_PER_PROCESS, 1],
    ] as const) {
      const { plan: p, err } = await plan(benchDoc({ connections, processes }));
      assert.deepEqual(p.warnings, [], `${connections} over ${processes}`);
      assert.equal(err, '');
      assert.equal(p.input.sample.connections, connections);
    }
  });

  test('takes the connection count from params when the gateway result lacks it', async () => {
    const file = join(dir, 'old.json');
    writeFileSync(file, JSON.stringify({ scenario: 'idle', params: { connections: 500 }, gateway: { memoryPerConnectionBytes: 15_000 } }));
    const { plan: p } = await plan(file);
    assert.match(p.warnings[0], /measured 500 connections/);
  });

  test('says when the document does not tell how many connections it measured', async () => {
    const file = join(dir, 'bare.json');
    writeFileSync(file, JSON.stringify({ scenario: 'idle', gateway: { memoryPerConnectionBytes: 7000 } }));
    const { plan: p } = await plan(file);
    assert.match(p.warnings[0], /does not say how many connections it measured/);
  });
});

describe('gatehouse capacity --from: scenarios and other documents', () => {
  test('idle needs no comment; fanout and channels say queued bytes are left out; storm the reconnect peak', async () => {
    const expected: Record<string, RegExp | null> = {
      idle: null,
      fanout: /a fanout document reads memory per connection before the first publication.*leaves out the bytes queued/,
      channels: /a channels document reads memory per connection before the first publication.*leaves out the bytes queued/,
      storm: /a storm document reads memory per connection before the drop.*leaves out the reconnect peak/,
    };
    for (const [scenario, re] of Object.entries(expected)) {
      const { plan: p } = await plan(benchDoc({ scenario, connections: 15_000 }));
      if (re === null) assert.deepEqual(p.warnings, [], scenario);
      else {
        assert.equal(p.warnings.length, 1, scenario);
        assert.match(p.warnings[0], re);
      }
      assert.equal(p.input.sample.scenario, scenario);
    }
  });

  test('a 1,000-connection fanout (the bench default) gets both warnings in the text', async () => {
    const file = benchDoc({ scenario: 'fanout', connections: 1000, bytes: 15_315 });
    const r = await capacity(['--connections-per-node', '50000', '--from', file]);
    assert.equal(r.code, 0, r.err);
    assert.equal((r.out.match(/^ {2}warning: /gm) ?? []).length, 2, r.out);
  });

  test('warns about gateways measured over --url and runs that stopped early', async () => {
    const { plan: p } = await plan(
      benchDoc({ connections: 15_000, urls: ['http://10.0.0.5:8080'], incomplete: 'the run reached its time bound' }),
    );
    assert.equal(p.warnings.length, 2);
    assert.match(p.warnings[0], /measured running gateways \(--url\): no full GC/);
    assert.match(p.warnings[1], /stopped early \(the run reached its time bound\)/);
  });

  const REFUSED: [string, unknown, RegExp][] = [
    [
      'a capacity plan fed back in',
      { totalConnections: 1, input: { bytesPerConnection: 7000 } },
      /not a "gatehouse bench --json" document \(no scenario; expected one of idle, fanout, channels, storm\)/,
    ],
    ['an unknown scenario', { scenario: 'soak', gateway: { memoryPerConnectionBytes: 7000 } }, /scenario "soak"/],
    ['a JSON array', [1, 2], /no scenario/],
    ['JSON null', null, /no scenario/],
    [
      'a memory figure that did not grow',
      { scenario: 'idle', params: { connections: 300 }, gateway: { memoryPerConnectionBytes: -52 } },
      /gateway\.memoryPerConnectionBytes is -52: resident memory did not grow measurably over 300 connections, a sample too small/,
    ],
    [
      'a memory figure that is not a number',
      { scenario: 'idle', gateway: { memoryPerConnectionBytes: '7000' } },
      /is missing or not a number/,
    ],
  ];
  for (const [what, doc, re] of REFUSED) {
    test(`refuses ${what}, naming what is wrong`, async () => {
      const file = join(dir, `refused-${++seq}.json`);
      writeFileSync(file, JSON.stringify(doc));
      const r = await capacity(['--connections-per-node', '10', '--from', file]);
      assert.equal(r.code, 2);
      assert.equal(r.out, '');
      assert.match(r.err, re);
    });
  }
});

describe('gatehouse capacity --from a document the bench wrote', () => {
  test('a real 120-connection idle run is flagged as too small to size from', async () => {
    const file = join(dir, 'real-idle.json');
    const b = await bench([
      'idle',
      '--connections',
      '120',
      '--duration',
      '1',
      '--settle',
      '0.5',
      '--probes',
      '1',
      '--quiet',
      '--json',
      file,
    ]);
    assert.equal(b.code, 0, b.err);
    const r = await capacity(['--users', '100000', '--nodes', '2', '--from', file]);
    // Over so few connections resident memory may not even grow; either way the answer says the
    // sample is too small, and never prints a plan without saying so.
    if (r.code === 0) assert.match(r.out, /warning: sample too small to trust: .* measured 120 connections on 1 gateway process;/);
    else {
      assert.equal(r.code, 2);
      assert.match(r.err, /did not grow measurably over 120 connections, a sample too small/);
    }
  });
});

describe('gatehouse capacity --html', () => {
  test('writes a self-contained page with the plan, the warnings and a chart', async () => {
    const from = benchDoc({ connections: 200, bytes: 19_000 });
    const page = join(dir, 'plan.html');
    const r = await capacity(['--users', '100000', '--nodes', '4', '--from', from, '--html', page]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, new RegExp(`wrote ${page.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(r.out, /RAM per node/, 'the text plan is still printed');
    const html = readFileSync(page, 'utf8');
    assert.match(html, /^<!doctype html>/);
    assert.match(html, /<h2>Warnings<\/h2>\n<ul class="warn"><li>sample too small to trust/);
    assert.match(html, /<svg [^>]*>.*RAM per node by connections per node/s);
    assert.match(html, /this plan: 25,000 per node/);
    assert.match(html, /one node lost: 33,334 per node/);
    assert.equal(html.match(/sample too small to trust/g)?.length, 1, 'the warning is shown once, in its own section');
    assert.doesNotMatch(html, /<script|<link|src=|href=/i, 'nothing loaded from elsewhere');
  });

  test('a page without warnings has no warnings section; --json and --html together', async () => {
    const page = join(dir, 'plain.html');
    const r = await capacity(['--connections-per-node', '40000', '--bytes-per-connection', '7KB', '--html', page, '--json']);
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out).connectionsPerNode, 40_000);
    const html = readFileSync(page, 'utf8');
    assert.doesNotMatch(html, /Warnings/);
    assert.match(html, /40,000 connections per node/);
  });

  test('says so when the page cannot be written', async () => {
    const r = await capacity([
      '--connections-per-node',
      '10',
      '--bytes-per-connection',
      '7KB',
      '--html',
      join(dir, 'no', 'such', 'dir', 'p.html'),
    ]);
    assert.equal(r.code, 1);
    assert.match(r.err, /--html .*p\.html: cannot write the page \(ENOENT/);
  });

  test('refuses an empty file name', async () => {
    const r = await capacity(['--connections-per-node', '10', '--bytes-per-connection', '7KB', '--html=']);
    assert.equal(r.code, 2);
    assert.match(r.err, /--html needs a file name/);
  });
});
