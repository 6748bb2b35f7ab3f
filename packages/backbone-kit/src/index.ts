/** @gatehouse/backbone-kit: the backbone contract and the plumbing adapters share. */
export * from './contract.js';
export * from './backoff.js';
export * from './state.js';
export * from './validate.js';
export * from './envelope.js';
export * from './rendezvous.js';
export * from './presence-book.js';
