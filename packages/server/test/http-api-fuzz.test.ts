/**
 * Property-based and mutation tests of the HTTP publish API against a live gateway: whatever the
 * body, the Authorization header or the path, the answer is 200 or a 4xx/503 with a JSON error
 * whose code matches its status, never a 500 and never a crash, and Object.prototype is never
 * touched. The gateway runs in this process so that prototype pollution would be visible here.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ERROR_HTTP_STATUS } from '@gatehouse/protocol';
import type { Gateway } from '../src/index.js';
import { API_KEY, startGateway } from './helpers.js';

const LIMITED_KEY = 'limited-key-0123456';
const RUNS = Number(process.env['GATEHOUSE_FUZZ_RUNS'] ?? 250);
const baselineProto = Object.getOwnPropertyNames(Object.prototype).sort().join(',');

let gw: Gateway;
before(async () => {
  // Random wrong keys by the thousand from one address: the key-guessing brake (tested in the
  // server API's abuse suite) would refuse everything after the tenth.
  gw = await startGateway({ apiKeys: [{ key: API_KEY }, { key: LIMITED_KEY, channels: ['public:ok*'] }], maxAuthFailures: 1_000_000 });
});
after(async () => {
  await gw.close();
});

/** Sends one request and checks the answer is one of the defined outcomes. */
async function check(
  path: string,
  body: string | Uint8Array,
  authorization: string | undefined,
  contentType = 'application/json',
): Promise<number> {
  const headers: Record<string, string> = { 'content-type': contentType };
  if (authorization !== undefined) headers['authorization'] = authorization;
  const res = await fetch(`http://127.0.0.1:${gw.port}${path}`, { method: 'POST', headers, body });
  const text = await res.text();
  assert.notEqual(res.status, 500, `500 for ${path} ${JSON.stringify(String(body).slice(0, 200))}: ${text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const json = JSON.parse(text) as any;
  if (res.status === 200) {
    if (path === '/api/publish') assert.ok(typeof json.offset === 'number' && typeof json.epoch === 'string', text);
    else assert.ok(Array.isArray(json.results), text);
  } else {
    const code = json?.error?.code as keyof typeof ERROR_HTTP_STATUS;
    assert.ok(code in ERROR_HTTP_STATUS, `unknown error code in ${text}`);
    assert.equal(ERROR_HTTP_STATUS[code], res.status, `status ${res.status} does not match code ${code}`);
    assert.ok(typeof json.error.message === 'string' && json.error.message.length > 0);
  }
  return res.status;
}

function assertPrototypesClean(): void {
  assert.equal(Object.getOwnPropertyNames(Object.prototype).sort().join(','), baselineProto, 'Object.prototype changed');
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
}

// ---- generators ----

const channel = fc.oneof(
  fc.constantFrom('public:ok', 'public:ok-1', 'public:other', 'private:x', 'nosuch:x', '__proto__:x', 'constructor:x', 'public:', ':x', ''),
  fc.stringMatching(/^[A-Za-z0-9_-]{1,8}:[A-Za-z0-9_.:@=/+-]{1,12}$/),
  fc.string({ unit: 'binary', maxLength: 20 }),
);
const hostileKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf');
/** A JSON object text with hostile keys spliced in (JSON.stringify would drop a real __proto__ key). */
const hostileObject = fc
  .tuple(fc.array(fc.tuple(hostileKey, fc.jsonValue({ maxDepth: 3 })), { maxLength: 4 }), channel, fc.jsonValue({ maxDepth: 3 }))
  .map(([pairs, ch, data]) => {
    const extra = pairs.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)},`).join('');
    return `{${extra}"channel":${JSON.stringify(ch)},"data":{${extra}"v":${JSON.stringify(data)}}}`;
  });
const deep = fc.tuple(fc.integer({ min: 1, max: 30_000 }), fc.constantFrom('[', '{"a":')).map(([depth, open]) => {
  const close = open === '[' ? ']' : '}';
  return `{"channel":"public:ok","data":${open.repeat(depth)}1${close.repeat(depth)}}`;
});
const hugeNumbers = fc.constantFrom('1e400', '-1e400', '123456789012345678901234567890', '-0', '1e-400', '9007199254740993');
const validBody = fc.record({ channel, data: fc.jsonValue({ maxDepth: 4 }) }).map((o) => JSON.stringify(o));

/** Applies byte-level insert/delete/replace mutations to a text. */
function mutate(text: string, edits: { at: number; op: number; ch: string }[]): string {
  let s = text;
  for (const e of edits) {
    const i = s.length === 0 ? 0 : e.at % (s.length + 1);
    if (e.op === 0) s = s.slice(0, i) + e.ch + s.slice(i);
    else if (e.op === 1) s = s.slice(0, i) + s.slice(i + 1);
    else s = s.slice(0, i) + e.ch + s.slice(i + 1);
  }
  return s;
}
const edits = fc.array(
  fc.record({
    at: fc.nat(),
    op: fc.integer({ min: 0, max: 2 }),
    ch: fc.constantFrom('{', '}', '"', ',', ':', '[', ']', '\\', '\u0000', 'é', '\ud800', '1', 'e', ' '),
  }),
  {
    minLength: 1,
    maxLength: 6,
  },
);
const mutatedBody = fc.tuple(fc.oneof(validBody, hostileObject), edits).map(([t, e]) => mutate(t, e));
const authorization = fc.oneof(
  fc.constant(`apikey ${API_KEY}`),
  fc.constant(`apikey ${LIMITED_KEY}`),
  fc.constant(undefined),
  fc.constantFrom(
    'apikey',
    'apikey ',
    `Bearer ${API_KEY}`,
    `APIKEY ${API_KEY}`,
    `apikey  ${API_KEY}`,
    `apikey ${API_KEY} extra`,
    `apikey ${'k'.repeat(5000)}`,
  ),
  fc.string({ maxLength: 40 }).map((s) => `apikey ${s}`),
);

describe('HTTP publish API under random and mutated input', () => {
  test('random text bodies get a defined answer, never a 500', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 200 }), async (body) => {
        await check('/api/publish', body, `apikey ${API_KEY}`);
      }),
      { numRuns: RUNS },
    );
  });

  test('random JSON values get a defined answer, never a 500', async () => {
    await fc.assert(
      fc.asyncProperty(fc.json({ maxDepth: 5 }), fc.constantFrom('/api/publish', '/api/broadcast'), async (body, path) => {
        await check(path, body, `apikey ${API_KEY}`);
      }),
      { numRuns: RUNS },
    );
  });

  test('random bytes (invalid UTF-8 included) get a defined answer, never a 500', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (body) => {
        await check('/api/publish', body, `apikey ${API_KEY}`);
      }),
      { numRuns: RUNS },
    );
  });

  test('mutated valid bodies, hostile keys, deep nesting and huge numbers with random keys get a defined answer; prototypes stay clean', async () => {
    const body = fc.oneof(
      { weight: 3, arbitrary: mutatedBody },
      { weight: 2, arbitrary: hostileObject },
      { weight: 1, arbitrary: deep },
      { weight: 1, arbitrary: hugeNumbers.map((n) => `{"channel":"public:ok","data":${n}}`) },
      { weight: 1, arbitrary: validBody },
    );
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(body, authorization, fc.constantFrom('/api/publish', '/api/broadcast'), async (b, auth, path) => {
        const text = path === '/api/broadcast' ? b.replace('"channel":', '"channels":') : b;
        statuses.add(await check(path, text, auth));
      }),
      { numRuns: RUNS * 2 },
    );
    assertPrototypesClean();
    // The run reached both sides: accepted publications and refusals.
    assert.ok(statuses.has(200) && statuses.size > 2, `statuses seen: ${[...statuses]}`);
  });

  test('broadcast bodies with random channel lists get a defined answer', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(channel, { maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), authorization, async (channels, data, auth) => {
        await check('/api/broadcast', JSON.stringify({ channels, data }), auth);
      }),
      { numRuns: RUNS },
    );
    assertPrototypesClean();
  });

  test('the node is still healthy afterwards', async () => {
    const res = await fetch(`http://127.0.0.1:${gw.port}/healthz`);
    assert.equal(res.status, 200);
    assertPrototypesClean();
  });
});
