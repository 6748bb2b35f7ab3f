import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { waitFor } from '@gatehouse/testkit';
import { startGateway } from './helpers.js';

test('TLS terminates in the process with --tls-cert and --tls-key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gh-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  const gw = await startGateway({ tlsCert: cert, tlsKey: key });
  try {
    const { readFileSync } = await import('node:fs');
    const ws = new WebSocket(`wss://127.0.0.1:${gw.port}/ws`, { ca: readFileSync(cert) });
    const frames: any[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ op: 'connect', id: 1, v: 1 }));
    const connected = await waitFor('connected over TLS', () => frames.find((f) => f.op === 'connected'));
    assert.equal(connected.node, gw.options.nodeId);
    ws.terminate();
    // Plain HTTP on the TLS port does not get through.
    await assert.rejects(fetch(`http://127.0.0.1:${gw.port}/healthz`));
  } finally {
    await gw.close();
  }
});
