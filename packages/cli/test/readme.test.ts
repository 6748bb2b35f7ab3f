/**
 * The README's quick start, run as written: the start command, the browser snippet in a real
 * Chromium, and the curl publish. Only the port changes (8080 may be taken where tests run).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { ROOT, startChild, stopChild } from './helpers.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

function block(name: string): string {
  const m = new RegExp(`<!-- readme:${name}:start -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\`\`\`\\n<!-- readme:${name}:end -->`).exec(readme);
  assert.ok(m, `README has the ${name} block`);
  return m[1] as string;
}

test('the README quick start works as written: start, browser snippet, curl publish', async (t) => {
  const chromium = '/usr/bin/chromium';
  const skip = await serviceSkipReason('chromium', 'README quick start in a browser', async () => existsSync(chromium));
  if (skip) return t.skip(skip);
  const startLine = /^npm run gatehouse -- (start .*)$/m.exec(readme);
  assert.ok(startLine, 'README has the start command');
  const args = (startLine[1] as string).split(/\s+/).slice(1);
  const { child, port } = await startChild(args);
  const { chromium: pw } = await import('playwright-core');
  // launch() gives every run a fresh, temporary profile.
  let browser: Awaited<ReturnType<typeof pw.launch>> | undefined;
  try {
    browser = await pw.launch({
      executablePath: chromium,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    });
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (msg) => logs.push(msg.text()));
    await page.goto(`http://localhost:${port}/healthz`);
    await page.evaluate(block('browser').replaceAll('localhost:8080', `localhost:${port}`));
    // The snippet subscribes asynchronously; publish once the gateway has the subscription.
    await waitFor('the browser subscription', async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return /^gatehouse_channels\{[^}]*\} 1$/m.test(text);
    });
    const out = execFileSync('bash', ['-c', block('curl').replaceAll('localhost:8080', `localhost:${port}`)], { encoding: 'utf8' });
    const answer = JSON.parse(out);
    assert.equal(answer.channel, 'public:demo');
    assert.equal(answer.offset, 1);
    const line = await waitFor('the browser to log the publication', () => logs.find((l) => l.startsWith('received 1')));
    assert.match(line, /hello/);
  } finally {
    await browser?.close();
    await stopChild(child);
  }
});
