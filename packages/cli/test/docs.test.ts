/**
 * What a newcomer meets before running anything: the commands the README and docs tell them to
 * type must reach this repository's code (the npm name `gatehouse` is someone else's package),
 * and every EBADENGINE warning `npm ci` prints on our oldest Node is explained in the README.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from './helpers.js';

/** The README, docs/, each package's README and deploy/: where a user copies commands from. */
function documents(): string[] {
  const out = [join(ROOT, 'README.md')];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.(md|ya?ml|sh)$|Dockerfile$/.test(name)) out.push(path);
    }
  };
  walk(join(ROOT, 'docs'));
  walk(join(ROOT, 'deploy'));
  for (const pkg of readdirSync(join(ROOT, 'packages'))) {
    const readme = join(ROOT, 'packages', pkg, 'README.md');
    if (existsSync(readme)) out.push(readme);
  }
  return out;
}

/**
 * Why `npx <name>` (or `npm exec <name>`) would run something that is not ours, or undefined when
 * it resolves to a dependency the clone installs. A workspace's bin does not count: its command
 * name is not its package name, so outside the clone npx fetches whatever holds that name.
 */
function foreign(name: string): string | undefined {
  if (name === 'gatehouse') return 'the npm package "gatehouse" is an unrelated project';
  const bin = join(ROOT, 'node_modules', '.bin', name);
  if (!existsSync(bin)) return `no dependency of the clone provides "${name}", so npx would download it`;
  if (!relative(ROOT, realpathSync(bin)).startsWith('node_modules'))
    return `"${name}" is a workspace bin, not a published package of that name`;
  return undefined;
}

/** The commands in a document: a Markdown file's code blocks and code spans, any other file whole. */
function commands(file: string): string {
  const text = readFileSync(file, 'utf8');
  if (!file.endsWith('.md')) return text;
  const blocks = [...text.matchAll(/^```[^\n]*\n([\s\S]*?)^```/gm)].map((m) => m[1]);
  const spans = [...text.replace(/^```[\s\S]*?^```/gm, '').matchAll(/`([^`]+)`/g)].map((m) => m[1]);
  return [...blocks, ...spans].join('\n');
}

test('no command in the README or docs can reach a package that is not ours', () => {
  const problems: string[] = [];
  for (const file of documents()) {
    const text = commands(file);
    for (const m of text.matchAll(/\b(?:npx|npm exec|npm x|pnpm dlx|yarn dlx)\s+(?:-{1,2}[\w-]+(?:=\S+)?\s+)*(@?[\w./-]+)/g)) {
      const why = foreign(m[1] as string);
      if (why) problems.push(`${relative(ROOT, file)}: "${m[0]}": ${why}`);
    }
    for (const m of text.matchAll(/\b(?:npm|pnpm|yarn)\s+(?:i|install|add)\b[^\n`]*?(?:^|\s)gatehouse(?:@\S*)?(?=\s|`|$)/gm)) {
      problems.push(`${relative(ROOT, file)}: "${m[0]}" installs the unrelated npm package "gatehouse"`);
    }
  }
  assert.deepEqual(problems, []);
});

test('the README runs the command through the root npm script, and that script is the CLI', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  assert.match(readme, /^npm run gatehouse -- start /m);
  assert.match(readme, /not published to npm/);
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  assert.equal(scripts['gatehouse'], 'node packages/cli/bin/gatehouse.js');
  const npm = spawnSync('npm', ['run', '--silent', 'gatehouse', '--', '--version'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(npm.status, 0, npm.stderr);
  const version = (JSON.parse(readFileSync(join(ROOT, 'packages', 'cli', 'package.json'), 'utf8')) as { version: string }).version;
  assert.equal(npm.stdout.trim(), version);
});

type Version = [number, number, number];

function parseVersion(text: string): { v: Version; parts: number } {
  const m = /^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?$/.exec(text);
  if (!m) throw new Error(`cannot read version "${text}" in an engines range`);
  const raw = [m[1], m[2], m[3]];
  const parts = raw.findIndex((p) => p === undefined || /^[xX*]$/.test(p));
  return { v: raw.map((p) => (p === undefined || /^[xX*]$/.test(p) ? 0 : Number(p))) as Version, parts: parts === -1 ? 3 : parts };
}

function compare(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** The first version past a partial one: 20 -> 21.0.0, 20.19 -> 20.20.0. */
function bump(v: Version, parts: number): Version {
  if (parts <= 1) return [v[0] + 1, 0, 0];
  if (parts === 2) return [v[0], v[1] + 1, 0];
  return [v[0], v[1], v[2] + 1];
}

/**
 * Whether `range` (the forms npm's engines fields use: `>=`, `>`, `<`, `<=`, `=`, `^`, `~`, bare
 * and x-ranges, `||`, spaces) admits `version`. Anything else throws, so an unread range fails the
 * test instead of passing it.
 */
export function admits(range: string, version: Version): boolean {
  return range.split('||').some((alternative) => {
    const comparators = alternative
      .trim()
      .replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1')
      .split(/\s+/)
      .filter(Boolean);
    return comparators.every((c) => {
      if (c === '*' || c === 'x') return true;
      const [, op = '', rest = ''] = /^(>=|<=|>|<|=|\^|~)?(.*)$/.exec(c) as RegExpExecArray;
      const { v, parts } = parseVersion(rest);
      const cmp = compare(version, v);
      switch (op) {
        case '>=':
          return cmp >= 0;
        case '>':
          return parts < 3 ? compare(version, bump(v, parts)) >= 0 : cmp > 0;
        case '<':
          return cmp < 0;
        case '<=':
          return parts < 3 ? compare(version, bump(v, parts)) < 0 : cmp <= 0;
        case '^':
          return cmp >= 0 && compare(version, v[0] > 0 || parts === 1 ? bump(v, 1) : bump(v, 2)) < 0;
        case '~':
          return cmp >= 0 && compare(version, bump(v, Math.min(parts, 2))) < 0;
        default:
          return parts < 3 ? cmp >= 0 && compare(version, bump(v, parts)) < 0 : cmp === 0;
      }
    });
  });
}

test('the engines-range reader agrees with npm on the forms in our lockfile', () => {
  const v: Version = [20, 19, 4];
  const cases: [string, boolean][] = [
    ['>= 22.x', false],
    ['>= 22.19.0', false],
    ['>= 20.19.4 || >= 22.18.0 || >= 24.6.0', true],
    ['^20.19.0 || ^22.13.0 || >=24', true],
    ['^20.20.0', false],
    ['^18.18.0 || ^20.9.0 || >=21.1.0', true],
    ['18 || 20 || >=22', true],
    ['20 || >=22', true],
    ['>=18 <20', false],
    ['~20.19.0', true],
    ['~20.18', false],
    ['>20', false],
    ['<=20', true],
    ['*', true],
  ];
  for (const [range, expected] of cases) assert.equal(admits(range, v), expected, range);
  assert.throws(() => admits('1.0.0 - 2.0.0', [1, 0, 0]), /cannot read version/);
});

test('every dependency that does not declare our oldest Node is named in the README', () => {
  const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
  const oldest = /^>=\s*(\d+)\.(\d+)\.(\d+)$/.exec(root.engines.node);
  assert.ok(oldest, `root engines "${root.engines.node}" is a plain lower bound`);
  const version = [Number(oldest[1]), Number(oldest[2]), Number(oldest[3])] as Version;
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { engines?: { node?: unknown } }>;
  };
  const names = new Set<string>();
  const refusing = new Set<string>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (!path.includes('node_modules/')) continue;
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    names.add(name);
    const node = entry.engines?.node;
    if (typeof node === 'string' && !admits(node, version)) refusing.add(name);
  }
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /<!-- readme:engines:start -->([\s\S]*?)<!-- readme:engines:end -->/.exec(readme);
  assert.ok(block, 'README has the engines note');
  const explained = [...(block[1] as string).matchAll(/`([^`\s]+)`/g)].map((m) => m[1] as string).filter((n) => names.has(n));
  assert.deepEqual(
    [...new Set(explained)].sort(),
    [...refusing].sort(),
    `dependencies declaring no Node ${version.join('.')}; explain each in the README engines note`,
  );
});
