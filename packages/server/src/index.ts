/** @gatehouse/server: the gateway core and its HTTP/WebSocket binding. */
export * from './backbone.js';
export * from './memory-backbone.js';
