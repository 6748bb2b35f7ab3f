import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackbone, MemoryBus, REVOCATION_RECORDS } from '../src/index.js';
import { API_KEY, RawClient, startGateway, token } from './helpers.js';

async function refusal(port: number, tok: string): Promise<{ code: number; reason: string }> {
  const c = await RawClient.open(port);
  c.send({ op: 'connect', id: 1, v: 1, token: tok });
  return c.waitClose();
}

async function revoke(port: number, jti: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/admin/revoke`, {
    method: 'POST',
    headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ jti }),
  });
  assert.equal(res.status, 202);
}

test('a revocation is kept as a fleet record, and a node started later refuses the token', async () => {
  const bus = new MemoryBus();
  const a = await startGateway({}, { backbone: new MemoryBackbone({ bus }) });
  try {
    const tok = await token('mallory', { channels: ['private:*'], jti: 'kept-1' });
    await revoke(a.port, 'kept-1');
    const probe = new MemoryBackbone({ bus });
    await probe.start({ onPublication: () => {}, onStateChange: () => {}, onControl: () => {} });
    const records = await probe.records(REVOCATION_RECORDS);
    await probe.close();
    assert.deepEqual(
      records.map((r) => r.key),
      ['kept-1'],
    );
    // Node a is gone before the new node starts: only the record can tell it.
    await a.close();
    const later = await startGateway({}, { backbone: new MemoryBackbone({ bus }) });
    try {
      const refused = await refusal(later.port, tok);
      assert.equal(refused.code, 4001);
      assert.match(refused.reason, /revoked/);
    } finally {
      await later.close();
    }
  } finally {
    await a.close();
  }
});

test('where the backbone keeps no records, a node that starts learns the revocations in force from its peers', async () => {
  const bus = new MemoryBus();
  const a = await startGateway({}, { backbone: new MemoryBackbone({ bus, keepRecords: false }) });
  try {
    const tok = await token('mallory', { channels: ['private:*'], jti: 'peer-1' });
    const fine = await token('alice', { channels: ['private:*'], jti: 'peer-2' });
    await revoke(a.port, 'peer-1');
    const later = await startGateway({}, { backbone: new MemoryBackbone({ bus, keepRecords: false }) });
    try {
      const refused = await refusal(later.port, tok);
      assert.equal(refused.code, 4001);
      assert.match(refused.reason, /revoked/);
      // Another token of the same fleet still connects.
      const ok = await RawClient.connect(later.port, fine);
      ok.close();
    } finally {
      await later.close();
    }
  } finally {
    await a.close();
  }
});
