/**
 * deploy/kubernetes and deploy/Dockerfile, checked as far as this machine allows (no kubectl, no
 * container engine): every manifest parses, kinds and API versions are the expected ones, the
 * pieces reference each other correctly, the grace period covers preStop plus the drain, probes
 * hit real endpoints on the container port, resources follow the memory math in
 * docs/operations.md, and the shipped gateway config really starts a gateway.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { DEFAULTS } from '@gatehouse/server';
import { CLI_BIN, launchGateway, requireCli, stopAll } from './support/gateways.js';
import type { GatewayProcess } from './support/gateways.js';
import { REPO_ROOT, freePort, run, tempDir } from './support/processes.js';
import { ProtoClient } from './support/proto-client.js';

type Node = Record<string, any>;

const K8S = join(REPO_ROOT, 'deploy', 'kubernetes');
const manifests: Node[] = [];
for (const file of readdirSync(K8S)
  .filter((f) => f.endsWith('.yaml'))
  .sort()) {
  for (const doc of parseAllDocuments(readFileSync(join(K8S, file), 'utf8'))) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as Node | null;
    if (value) manifests.push({ ...value, __file: file });
  }
}

function only(kind: string): Node {
  const found = manifests.filter((m) => m['kind'] === kind);
  assert.equal(found.length, 1, `exactly one ${kind}`);
  return found[0] as Node;
}

const deployment = only('Deployment');
const pod = deployment['spec']['template'] as Node;
const container = (pod['spec']['containers'] as Node[]).find((c) => c['name'] === 'gatehouse') as Node;
const configMap = only('ConfigMap');
const configKey = Object.keys(configMap['data'])[0] as string;
const gatewayConfig = parse(configMap['data'][configKey]) as Node;
const env = new Map<string, Node>((container['env'] as Node[]).map((e) => [e['name'], e]));

/** A few assumptions from docs/operations.md ("Sizing"); the bench replaces them with measurements. */
const BYTES_PER_CONNECTION = 10 * 1024;
const PROCESS_BASELINE_BYTES = 100 * 1024 * 1024;

function quantityBytes(q: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(q);
  assert.ok(m, `a memory quantity in Ki/Mi/Gi: ${q}`);
  return Number(m[1]) * ({ Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] as 'Ki'] ?? 1);
}

function containerPort(ref: string | number): number {
  if (typeof ref === 'number') return ref;
  const port = (container['ports'] as Node[]).find((p) => p['name'] === ref);
  assert.ok(port, `a container port named ${ref}`);
  return port['containerPort'] as number;
}

test('every manifest parses and has the expected kind and API version', () => {
  const kinds = Object.fromEntries(manifests.map((m) => [m['kind'], m['apiVersion']]));
  assert.deepEqual(kinds, {
    ConfigMap: 'v1',
    Deployment: 'apps/v1',
    HorizontalPodAutoscaler: 'autoscaling/v2',
    PodDisruptionBudget: 'policy/v1',
    Service: 'v1',
  });
  for (const m of manifests) assert.ok(m['metadata']?.['name'], `${m['__file']} has a name`);
});

test('the Service, PodDisruptionBudget and autoscaler select the Deployment pods', () => {
  const labels = pod['metadata']['labels'] as Node;
  const matches = (selector: Node) => Object.entries(selector).every(([k, v]) => labels[k] === v);
  assert.ok(matches(deployment['spec']['selector']['matchLabels']), 'the Deployment selects its own pods');
  const service = only('Service');
  assert.ok(matches(service['spec']['selector']));
  assert.equal(service['spec']['sessionAffinity'] ?? 'None', 'None', 'no stickiness');
  assert.equal(containerPort(service['spec']['ports'][0]['targetPort']), gatewayConfig['port']);
  const pdb = only('PodDisruptionBudget');
  assert.ok(matches(pdb['spec']['selector']['matchLabels']));
  assert.equal(pdb['spec']['maxUnavailable'], 1);
  const hpa = only('HorizontalPodAutoscaler');
  assert.deepEqual(hpa['spec']['scaleTargetRef'], { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment['metadata']['name'] });
});

test('the grace period covers preStop, the drain window and the last closes', () => {
  const drainWindow = (gatewayConfig['drainWindow'] as number | undefined) ?? DEFAULTS.drainWindowMs / 1000;
  const preStop = container['lifecycle']['preStop']['exec']['command'] as string[];
  assert.equal(preStop[0], 'sleep');
  const preStopSeconds = Number(preStop[1]);
  assert.ok(preStopSeconds > 0 && preStopSeconds < 30);
  // The gateway drains for the window, waits up to the close timeout + 1 s for the last closes, then exits.
  const needed = preStopSeconds + drainWindow + DEFAULTS.closeTimeoutMs / 1000 + 1;
  const grace = pod['spec']['terminationGracePeriodSeconds'] as number;
  assert.ok(grace >= needed, `terminationGracePeriodSeconds ${grace} >= ${needed}`);
  assert.ok(grace <= needed + 30, 'but not so long that a stuck pod lingers');
  const rollout = deployment['spec']['strategy']['rollingUpdate'] as Node;
  assert.equal(rollout['maxUnavailable'], 0, 'a replacement is ready before a pod drains');
  assert.ok(Number(rollout['maxSurge']) >= 1);
});

test('probes hit /readyz and /healthz on the container port, which is the gateway port and the image EXPOSE', () => {
  assert.equal(container['readinessProbe']['httpGet']['path'], '/readyz');
  assert.equal(container['livenessProbe']['httpGet']['path'], '/healthz');
  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
    if (!container[probe]) continue;
    assert.equal(containerPort(container[probe]['httpGet']['port']), gatewayConfig['port'], `${probe} port`);
  }
  assert.equal(gatewayConfig['port'], DEFAULTS.port);
  assert.equal(Number(pod['metadata']['annotations']['prometheus.io/port']), gatewayConfig['port']);
  assert.equal(dockerfile.expose, gatewayConfig['port']);
});

test('resources follow the memory math: the per-pod connection cap fits the memory request', () => {
  const cap = (gatewayConfig['maxConnections'] as number | undefined) ?? DEFAULTS.maxConnections;
  const request = quantityBytes(container['resources']['requests']['memory']);
  const limit = quantityBytes(container['resources']['limits']['memory']);
  const atCap = cap * BYTES_PER_CONNECTION + PROCESS_BASELINE_BYTES;
  assert.ok(request >= atCap, `request ${request} B >= ${cap} connections x 10 KB + 100 MB = ${atCap} B`);
  assert.ok(limit >= request);
  const queueBudget = (gatewayConfig['admissionQueueBytes'] as number | undefined) ?? DEFAULTS.admissionQueueBytes;
  assert.ok(
    atCap + queueBudget <= limit,
    `connections at the cap plus the queue budget (${atCap + queueBudget} B) fit the limit (${limit} B)`,
  );
  const heap = /--max-old-space-size=(\d+)/.exec(env.get('NODE_OPTIONS')?.['value'] ?? '');
  assert.ok(heap && Number(heap[1]) * 1024 * 1024 < limit, 'the V8 heap limit sits below the memory limit');
  const hpa = only('HorizontalPodAutoscaler');
  const target = Number(hpa['spec']['metrics'][0]['pods']['target']['averageValue']);
  assert.equal(hpa['spec']['metrics'][0]['pods']['metric']['name'], 'gatehouse_connections');
  assert.ok(
    target > 0 && target <= cap / 2,
    `the autoscaler target (${target}) leaves room for a drained neighbour under the cap (${cap})`,
  );
  const adapter = parse(readFileSync(join(REPO_ROOT, 'deploy', 'prometheus', 'adapter-rules.yaml'), 'utf8')) as Node;
  const rule = (adapter['rules']['custom'] as Node[]).find((r) => r['name']['as'] === 'gatehouse_connections');
  assert.ok(rule, 'the Prometheus Adapter serves gatehouse_connections');
  assert.match(rule['seriesQuery'], /^gatehouse_connections\{/);
});

test('the container runs the image command unprivileged, with the config file and secrets where the CLI reads them', async () => {
  requireCli();
  assert.equal(container['command'], undefined, 'the image CMD runs');
  assert.equal(container['args'], undefined, 'the image CMD runs');
  assert.equal(pod['spec']['securityContext']['runAsNonRoot'], true);
  assert.equal(container['securityContext']['allowPrivilegeEscalation'], false);
  const mount = (container['volumeMounts'] as Node[]).find((m) => m['name'] === 'config') as Node;
  const volume = (pod['spec']['volumes'] as Node[]).find((v) => v['name'] === 'config') as Node;
  assert.equal(volume['configMap']['name'], configMap['metadata']['name']);
  assert.equal(env.get('GATEHOUSE_CONFIG')?.['value'], `${mount['mountPath']}/${configKey}`);
  // Every GATEHOUSE_* variable is one the CLI documents.
  const help = await run(process.execPath, [CLI_BIN, 'start', '--help']);
  assert.equal(help.code, 0, help.stderr);
  const known = new Set([...help.stdout.matchAll(/\[env (GATEHOUSE_[A-Z_]+)\]/g)].map((m) => m[1]));
  for (const name of env.keys()) {
    if (name.startsWith('GATEHOUSE_')) assert.ok(known.has(name), `${name} is a setting of gatehouse start`);
  }
});

const started: GatewayProcess[] = [];
after(() => stopAll(started));

test('the ConfigMap config starts a real gateway with its settings (backbone swapped for memory, loopback)', async () => {
  const dir = tempDir('k8s-config');
  try {
    const file = join(dir.path, configKey);
    writeFileSync(file, configMap['data'][configKey]);
    const port = await freePort();
    // Flags win over the file: only the address and the backbone (no Redis service here) change.
    const gw = await launchGateway('configmap', port, ['--config', file, '--backbone', 'memory', '--log-level', 'warn']);
    started.push(gw);
    const client = await ProtoClient.connectRetrying(`ws://127.0.0.1:${port}/ws`);
    const connected = client.frames.find((f) => f.op === 'connected') as Node;
    assert.equal(connected['heartbeat'], gatewayConfig['heartbeat'] * 1000, 'the heartbeat from the file is in force');
    await client.subscribe('public:k8s-config');
    client.terminate();
  } finally {
    dir.cleanup();
  }
});

/** The Dockerfile, read instruction by instruction. */
const dockerfile = (() => {
  const text = readFileSync(join(REPO_ROOT, 'deploy', 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const instructions = lines.map((l) => {
    const [op, ...rest] = l.split(/\s+/);
    return { op: (op as string).toUpperCase(), args: rest.join(' ') };
  });
  const froms = instructions.map((x, i) => ({ ...x, i })).filter((x) => x.op === 'FROM');
  const lastStage = instructions.slice((froms.at(-1) as { i: number }).i);
  const expose = lastStage.find((x) => x.op === 'EXPOSE')?.args;
  return { instructions, froms, lastStage, expose: expose ? Number(expose.split('/')[0]) : undefined };
})();

test('the Dockerfile: multi-stage on node:24-slim, npm ci and build, non-root, the CLI start command on the default port', () => {
  assert.ok(dockerfile.froms.length >= 2, 'multi-stage');
  for (const f of dockerfile.froms) assert.match(f.args, /^node:24-slim\b/);
  const runs = dockerfile.instructions.filter((x) => x.op === 'RUN').map((x) => x.args);
  assert.ok(
    runs.some((r) => /\bnpm ci\b/.test(r)),
    'npm ci',
  );
  // npm ci runs the root "prepare" script, which is the build.
  const rootPackage = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as Node;
  assert.match(rootPackage['scripts']['prepare'], /tsc -b/);
  const user = dockerfile.lastStage.filter((x) => x.op === 'USER').at(-1)?.args;
  assert.ok(user && user !== 'root' && user !== '0', `the runtime stage drops root (USER ${user})`);
  const cmd = JSON.parse(dockerfile.lastStage.find((x) => x.op === 'CMD')?.args ?? 'null') as string[];
  assert.deepEqual(cmd, ['node', '--max-semi-space-size=8', 'packages/cli/bin/gatehouse.js', 'start']);
  assert.ok(existsSync(join(REPO_ROOT, cmd.at(-2) as string)), 'the CLI entry the image runs exists');
  assert.equal(dockerfile.expose, DEFAULTS.port, 'EXPOSE is the CLI default port');
  assert.equal(DEFAULTS.host, '0.0.0.0', 'the default host listens outside the container');
  for (const copy of dockerfile.instructions.filter((x) => x.op === 'COPY' && !x.args.startsWith('--from'))) {
    const sources = copy.args
      .split(/\s+/)
      .filter((a) => !a.startsWith('--'))
      .slice(0, -1);
    for (const s of sources) assert.ok(existsSync(join(REPO_ROOT, s)), `COPY source ${s} exists`);
  }
});
