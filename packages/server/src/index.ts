/** @gatehouse/server: the gateway core and its HTTP/WebSocket binding. */
export * from './backbone.js';
export * from './memory-backbone.js';
export { Gateway } from './gateway.js';
export type { GatewayDeps } from './gateway.js';
export { resolveOptions, DEFAULTS, NAMESPACE_DEFAULTS, OptionsError } from './options.js';
export type { GatewayOptions, NamespaceOptions, ApiKey } from './options.js';
export { TokenVerifier, AuthError } from './auth.js';
export type { Grant } from './auth.js';
export { TokenBucket, AddressLimiter, retryDelay } from './admission.js';
export { textFrame } from './wire.js';
export { IpcBackbone, IpcBackboneHost } from './ipc-backbone.js';
export type { IpcPort } from './ipc-backbone.js';
export { RendezvousHash, murmur3, murmur3Bytes } from './rendezvous.js';
