/**
 * The published packages as a user gets them: `npm pack` protocol, client and publisher, install
 * each tarball alone into an empty directory outside the workspace with npm offline (so nothing
 * named @gatehouse/* can come from a registry, where it does not exist), type-check a consumer
 * against the installed types, then subscribe with the installed SDK and publish with the
 * installed publisher through a real gateway.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor, withDeadline } from '@gatehouse/testkit';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const API_KEY = 'pack-test-key-123';
const PACKAGES = ['protocol', 'client', 'publisher'] as const;

/**
 * The environment for a child npm: without the npm_* variables `npm test` exports, which would
 * point the child at the workspace (npm_config_local_prefix and friends).
 */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  return { ...env, npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false' };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (bounded), collecting its output. */
async function run(cmd: string, args: string[], cwd: string, timeoutMs = 60_000): Promise<Run> {
  const child = spawn(cmd, args, { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await withDeadline(
    `${cmd} ${args.join(' ')}`,
    new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c) => resolve(c));
    }),
    timeoutMs,
  ).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  return { code, stdout, stderr };
}

/** Like `run`, but a non-zero exit fails the test with the command's output. */
async function ok(cmd: string, args: string[], cwd: string): Promise<string> {
  const r = await run(cmd, args, cwd);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} in ${cwd} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** An empty ESM project with `tarballs` installed, npm offline. */
async function install(dir: string, tarballs: string[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await ok('npm', ['install', '--offline', '--no-audit', '--no-fund', ...tarballs], dir);
}

test(
  'protocol, client and publisher install from their tarballs alone and work against a real gateway',
  { timeout: 180_000 },
  async (t) => {
    const tmp = await mkdtemp(join(tmpdir(), 'gatehouse-pack-'));
    const children: ReturnType<typeof spawn>[] = [];
    t.after(async () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await rm(tmp, { recursive: true, force: true });
    });

    const packs = join(tmp, 'packs');
    await mkdir(packs);
    const workspaces = PACKAGES.flatMap((p) => ['-w', `packages/${p}`]);
    await ok('npm', ['pack', '--silent', ...workspaces, '--pack-destination', packs], ROOT);
    // `ws` is the Node entry's optional peer (Node 20 has no WebSocket); installed from the
    // workspace's copy so the whole test stays offline.
    await ok('npm', ['pack', '--silent', join(ROOT, 'node_modules/ws'), '--pack-destination', packs], ROOT);
    const tarball = (name: string): string => join(packs, `gatehouse-${name}-0.1.0.tgz`);

    const apps = Object.fromEntries(PACKAGES.map((p) => [p, join(tmp, `${p}-app`)])) as Record<(typeof PACKAGES)[number], string>;
    await install(apps.protocol, [tarball('protocol')]);
    await install(apps.client, [
      tarball('client'),
      (await readdir(packs)).map((f) => join(packs, f)).find((f) => /\/ws-[\d.]+\.tgz$/.test(f)) as string,
    ]);
    await install(apps.publisher, [tarball('publisher')]);
    // Each app got exactly its package: the protocol it needs travels inside the tarball.
    assert.deepEqual(await readdir(join(apps.client, 'node_modules/@gatehouse')), ['client']);
    assert.deepEqual(await readdir(join(apps.publisher, 'node_modules/@gatehouse')), ['publisher']);
    assert.deepEqual(await readdir(join(apps.client, 'node_modules/@gatehouse/client/node_modules/@gatehouse')), ['protocol']);

    await writeFile(
      join(apps.protocol, 'check.mjs'),
      `import { encodeClientFrame, CloseCode } from '@gatehouse/protocol';\n` +
        `console.log(encodeClientFrame({ op: 'ping' }), CloseCode.Overloaded);\n`,
    );
    assert.equal((await ok(process.execPath, ['check.mjs'], apps.protocol)).trim(), '{"op":"ping"} 4100');

    // The installed types resolve without the workspace: the SDK's declarations import the bundled
    // protocol's.
    await writeFile(
      join(apps.client, 'check.ts'),
      `import { GatehouseClient, CloseCode, type Publication } from '@gatehouse/client';\n` +
        `const c: GatehouseClient = new GatehouseClient('ws://127.0.0.1:1/ws');\n` +
        `c.subscribe('public:x').on('publication', (p: Publication) => p.offset.toFixed());\n` +
        `const code: number = CloseCode.Overloaded;\n` +
        `export { code };\n`,
    );
    await writeFile(
      join(apps.client, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          noEmit: true,
          types: [],
          lib: ['es2022', 'dom'],
        },
        files: ['check.ts'],
      }),
    );
    await ok(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], apps.client);

    const port = await freePort();
    const gateway = spawn(
      process.execPath,
      [join(ROOT, 'packages/cli/bin/gatehouse.js'), 'start', '--port', String(port), '--host', '127.0.0.1', '--api-key', API_KEY],
      {
        env: cleanEnv(),
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    children.push(gateway);
    await waitFor(
      'the gateway to answer /readyz',
      async () => {
        if (gateway.exitCode !== null) throw new Error(`the gateway exited ${gateway.exitCode}`);
        return (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok || undefined;
      },
      30_000,
    );

    await writeFile(
      join(apps.client, 'subscribe.mjs'),
      `import { GatehouseClient } from '@gatehouse/client';\n` +
        `const client = new GatehouseClient(process.argv[2]);\n` +
        `const sub = client.subscribe('public:pack');\n` +
        `sub.on('subscribed', () => console.log('subscribed'));\n` +
        `sub.on('publication', (p) => { console.log('received ' + JSON.stringify(p.data)); client.close(); });\n` +
        `client.connect();\n`,
    );
    const subscriber = spawn(process.execPath, ['subscribe.mjs', `ws://127.0.0.1:${port}/ws`], {
      cwd: apps.client,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(subscriber);
    let out = '';
    subscriber.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => subscriber.once('exit', (code) => resolve(code)));
    await waitFor('the installed SDK to subscribe', () => out.includes('subscribed\n') || undefined, 30_000);

    await writeFile(
      join(apps.publisher, 'publish.mjs'),
      `import { HttpPublisher } from '@gatehouse/publisher';\n` +
        `const publisher = new HttpPublisher({ url: process.argv[2], apiKey: process.argv[3] });\n` +
        `console.log(JSON.stringify(await publisher.publish('public:pack', { from: 'tarball' })));\n` +
        `await publisher.close();\n`,
    );
    const published = JSON.parse(await ok(process.execPath, ['publish.mjs', `http://127.0.0.1:${port}`, API_KEY], apps.publisher));
    assert.equal(published.offset, 1);

    assert.equal(await withDeadline('the subscriber to exit', exited, 30_000), 0);
    assert.match(out, /^received \{"from":"tarball"\}$/m);
  },
);

test('every package not marked private is one the tarball test installs', async () => {
  const published: string[] = [];
  for (const dir of await readdir(join(ROOT, 'packages'))) {
    const manifest = JSON.parse(await readFile(join(ROOT, 'packages', dir, 'package.json'), 'utf8')) as { private?: boolean };
    if (manifest.private !== true) published.push(dir);
  }
  assert.deepEqual(
    published.sort(),
    [...PACKAGES].sort(),
    'a public package must install from its tarball alone: add it to PACKAGES, or mark it private',
  );
});
