import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSize } from '../src/capacity.js';
import { capacityPlan } from '../src/capacity-math.js';
import { capacity } from './helpers.js';

const MiB = 1024 * 1024;

describe('capacity math', () => {
  test('adds process bases, gateway bytes and kernel bytes, then headroom', () => {
    const plan = capacityPlan({
      connectionsPerNode: 40_000,
      connectionsPerUser: 1,
      bytesPerConnection: 6000,
      kernelBytesPerSocket: 4000,
      processBaseBytes: 100 * MiB,
      connectionsPerProcess: 19_000,
      headroom: 0.5,
      source: 'test',
    });
    assert.equal(plan.processesPerNode, 3);
    assert.equal(plan.perConnectionBytes, 10_000);
    assert.equal(plan.nodeBytes, 3 * 100 * MiB + 40_000 * 10_000);
    assert.equal(plan.nodeBytesWithHeadroom, Math.ceil(plan.nodeBytes * 1.5));
    assert.equal(plan.headroomBytes, plan.nodeBytesWithHeadroom - plan.nodeBytes);
    assert.equal(plan.nodesNeeded, null);
  });

  test('divides users over nodes and checks the loss of one node against the headroom', () => {
    const plan = capacityPlan({
      users: 1_000_000,
      nodes: 10,
      connectionsPerUser: 1.5,
      bytesPerConnection: 6000,
      kernelBytesPerSocket: 4096,
      processBaseBytes: 64 * MiB,
      connectionsPerProcess: 19_000,
      headroom: 0.3,
      source: 'test',
    });
    assert.equal(plan.totalConnections, 1_500_000);
    assert.equal(plan.connectionsPerNode, 150_000);
    assert.equal(plan.processesPerNode, 8);
    assert.equal(plan.nodesNeeded, 10);
    assert.equal(plan.oneNodeLost?.connectionsPerNode, Math.ceil(1_500_000 / 9));
    assert.equal(plan.oneNodeLost?.fitsInHeadroom, true);
  });

  test('reads sizes with units', () => {
    assert.equal(parseSize('x', '8192'), 8192);
    assert.equal(parseSize('x', '5.6KB'), 5600);
    assert.equal(parseSize('x', '6KiB'), 6144);
    assert.equal(parseSize('x', '2GiB'), 2 * 1024 ** 3);
    assert.throws(() => parseSize('bytes-per-connection', 'lots'), /--bytes-per-connection must be a size/);
  });
});

describe('gatehouse capacity', () => {
  test('prints RAM per node, nodes needed and headroom', async () => {
    const r = await capacity(['--users', '200000', '--connections-per-node', '50000', '--bytes-per-connection', '6KiB']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /connections per node\s+50,000/);
    assert.match(r.out, /RAM per node\s+[\d.]+ (GiB|MiB)/);
    assert.match(r.out, /with headroom\s+[\d.]+ (GiB|MiB) \(headroom [\d.]+ (GiB|MiB), 30%\)/);
    assert.match(r.out, /nodes needed\s+4/);
    assert.match(r.out, /6,144 B gateway \(--bytes-per-connection\) \+ 4,352 B kernel/);
  });

  test('takes bytes per connection and the process base from a bench JSON document', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-capacity-'));
    const file = join(dir, 'idle.json');
    writeFileSync(
      file,
      JSON.stringify({ scenario: 'idle', gateway: { memoryPerConnectionBytes: 7000, rssBeforeBytes: 2 * 80 * MiB, processes: 2 } }),
    );
    const r = await capacity(['--connections-per-node', '10000', '--from', file, '--json']);
    assert.equal(r.code, 0, r.err);
    const plan = JSON.parse(r.out);
    assert.equal(plan.input.bytesPerConnection, 7000);
    assert.equal(plan.input.processBaseBytes, 80 * MiB);
    assert.equal(plan.nodeBytes, 80 * MiB + 10_000 * (7000 + 4352));
  });

  const BAD: [string[], RegExp][] = [
    [['--bytes-per-connection', '6000'], /say how many connections/],
    [['--users', '10', '--bytes-per-connection', '6000'], /--users needs --nodes/],
    [['--nodes', '3', '--bytes-per-connection', '6000'], /--nodes needs --users/],
    [['--connections-per-node', '10', '--nodes', '3', '--bytes-per-connection', '6000'], /--connections-per-node and --nodes contradict/],
    [['--connections-per-node', '10'], /exactly one of --bytes-per-connection .* and --from/],
    [['--connections-per-node', '10', '--bytes-per-connection', '1', '--from', 'x.json'], /exactly one of/],
    [['--connections-per-node', 'ten', '--bytes-per-connection', '6000'], /--connections-per-node must be a whole number/],
    [['--connections-per-node', '10', '--bytes-per-connection', 'big'], /--bytes-per-connection must be a size/],
    [['--connections-per-node', '10', '--bytes-per-connection', '6000', '--headroom=-1'], /--headroom must be a number/],
    [['--connections-per-node', '10', '--from', '/nonexistent/bench.json'], /--from \/nonexistent\/bench.json: cannot read/],
    [['--connections-per-node', '10', '--bytes-per-connection', '6000', '--frobnicate'], /--frobnicate/],
  ];
  for (const [argv, message] of BAD) {
    test(`refuses ${argv.join(' ')}`, async () => {
      const r = await capacity(argv);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, message);
    });
  }

  test('refuses a bench file without a memory figure, naming the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-capacity-'));
    const file = join(dir, 'fanout.json');
    writeFileSync(file, JSON.stringify({ scenario: 'fanout', gateway: { memoryPerConnectionBytes: null } }));
    const r = await capacity(['--connections-per-node', '10', '--from', file]);
    assert.equal(r.code, 2);
    assert.match(r.err, /gateway\.memoryPerConnectionBytes is missing or not a number/);
  });
});
