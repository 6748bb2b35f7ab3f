/**
 * The README's EventSource one-liner, run as written in a real Chromium against a gateway started
 * with the README's start command (only the port changes), receives the curl publication.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serviceSkipReason, waitFor } from '@gatehouse/testkit';
import { ROOT, startChild, stopChild } from './helpers.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

test('the README EventSource one-liner receives a publication', async (t) => {
  const chromium = '/usr/bin/chromium';
  const skip = await serviceSkipReason('chromium', 'README EventSource snippet in a browser', async () => existsSync(chromium));
  if (skip) return t.skip(skip);
  const snippet = /<!-- readme:sse:start -->\n```js\n([\s\S]*?)```\n<!-- readme:sse:end -->/.exec(readme)?.[1];
  assert.ok(snippet, 'README has the sse block');
  const startLine = /^npm run gatehouse -- (start .*)$/m.exec(readme);
  assert.ok(startLine, 'README has the start command');
  const { child, port } = await startChild((startLine[1] as string).split(/\s+/).slice(1));
  const { chromium: pw } = await import('playwright-core');
  let browser: Awaited<ReturnType<typeof pw.launch>> | undefined;
  try {
    browser = await pw.launch({ executablePath: chromium, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (msg) => logs.push(msg.text()));
    await page.goto(`http://localhost:${port}/healthz`);
    await page.evaluate(snippet);
    await waitFor('the SSE stream subscribed', async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return /^gatehouse_channels\{[^}]*\} 1$/m.test(text);
    });
    const key = /--api-key (\S+)/.exec(startLine[1] as string)?.[1] ?? '';
    const res = await fetch(`http://127.0.0.1:${port}/api/publish`, {
      method: 'POST',
      headers: { authorization: `apikey ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'public:demo', data: { text: 'over sse' } }),
    });
    assert.equal(res.status, 200);
    const line = await waitFor('the browser to log the publication', () => logs.find((l) => l.startsWith('sse received')));
    assert.match(line, /over sse|Object/);
  } finally {
    await browser?.close();
    await stopChild(child);
  }
});
