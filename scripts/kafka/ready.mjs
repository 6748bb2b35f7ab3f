#!/usr/bin/env node
// Waits until a Kafka broker answers a real metadata request that lists at least one broker, the
// same request the backbone makes at start, so "ready" means ready for clients and not merely
// "the port is open". Used by scripts/services.sh.
//
// Usage: node scripts/kafka/ready.mjs [--broker host:port] [--timeout ms] [--pid n] [--once]
//   --pid   fail at once when that process dies (the broker we just launched crashed)
//   --once  one attempt, exit 0 when ready and 1 otherwise (for `services.sh status`)
// Exit codes: 0 ready, 1 not ready by the deadline (or --once failed), 2 bad usage or no client.
import { parseArgs } from 'node:util';

let opts;
try {
  opts = parseArgs({
    options: {
      broker: { type: 'string', default: '127.0.0.1:9092' },
      timeout: { type: 'string', default: '180000' },
      pid: { type: 'string' },
      once: { type: 'boolean', default: false },
    },
  }).values;
} catch (err) {
  console.error(`ready.mjs: ${err.message}`);
  process.exit(2);
}
const timeoutMs = Number(opts.timeout);
if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
  console.error(`ready.mjs: --timeout must be a positive integer of milliseconds, got "${opts.timeout}"`);
  process.exit(2);
}
const pid = opts.pid === undefined ? undefined : Number(opts.pid);
if (pid !== undefined && (!Number.isInteger(pid) || pid <= 0)) {
  console.error(`ready.mjs: --pid must be a positive integer, got "${opts.pid}"`);
  process.exit(2);
}

let Admin;
try {
  ({ Admin } = await import('@platformatic/kafka'));
} catch (err) {
  console.error(`ready.mjs: cannot load @platformatic/kafka (run npm ci in the repository first): ${err.message}`);
  process.exit(2);
}

function alive(p) {
  try {
    process.kill(p, 0);
    return true;
  } catch {
    return false;
  }
}

/** One metadata round trip with its own short client, so a half-open connection cannot stick. */
async function probe() {
  const admin = new Admin({
    clientId: 'gatehouse-ready',
    bootstrapBrokers: [opts.broker],
    retries: 0,
    timeout: 3000,
    connectTimeout: 2000,
  });
  try {
    const md = await admin.metadata({ topics: [] });
    return md.brokers.size > 0 ? `cluster ${md.id}, ${md.brokers.size} broker(s)` : undefined;
  } finally {
    await admin.close().catch(() => {});
  }
}

const deadline = Date.now() + timeoutMs;
let lastError;
for (;;) {
  try {
    const ok = await probe();
    if (ok) {
      console.log(ok);
      process.exit(0);
    }
    lastError = 'metadata lists no broker yet';
  } catch (err) {
    lastError = err?.message ?? String(err);
  }
  if (opts.once) break;
  if (pid !== undefined && !alive(pid)) {
    console.error(`ready.mjs: the broker process ${pid} exited before it became ready (last error: ${lastError})`);
    process.exit(1);
  }
  if (Date.now() > deadline) break;
  await new Promise((r) => setTimeout(r, 500));
}
if (!opts.once) console.error(`ready.mjs: ${opts.broker} not ready after ${timeoutMs} ms (last error: ${lastError})`);
process.exit(1);
