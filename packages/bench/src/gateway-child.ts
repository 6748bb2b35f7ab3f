/**
 * A gateway process started by the bench: `node gateway-child.js '<ServerChildConfig JSON>'`.
 * It runs a Gatehouse gateway (memory backbone, default namespaces: "public" allows anonymous
 * subscribers) on the given address, prints a JSON ready line with its pid and port, and obeys
 * the coordinator's gc and stop messages.
 */
import { Gateway } from '@gatehouse/server';
import { announceReady, readChildConfig, serveChildControl } from './child-protocol.js';

const config = readChildConfig(process.argv);
const gateway = new Gateway({
  host: config.host,
  port: config.port,
  apiKeys: [{ key: config.apiKey }],
  heartbeatMs: config.heartbeatMs,
  ...(config.nodeId ? { nodeId: config.nodeId } : {}),
  ...(config.connectRate ? { connectRate: config.connectRate } : {}),
  ...(config.connectRatePerAddress ? { connectRatePerAddress: config.connectRatePerAddress } : {}),
  ...(config.maxConnections ? { maxConnections: config.maxConnections } : {}),
  ...(config.admissionLagMs ? { admissionLagMs: config.admissionLagMs } : {}),
  ...(config.coalesceMs !== undefined ? { coalesceMs: config.coalesceMs } : {}),
  ...(config.maxBatchDelayMs !== undefined ? { maxBatchDelayMs: config.maxBatchDelayMs } : {}),
  ...(config.nativeWrites !== undefined ? { nativeWrites: config.nativeWrites } : {}),
  ...(config.pusherApp ? { pusherApps: [config.pusherApp] } : {}),
});
const { port } = await gateway.start();
serveChildControl(() => gateway.close());
announceReady(config.host, port);
