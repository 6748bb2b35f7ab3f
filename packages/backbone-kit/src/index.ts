/** @gatehouse/backbone-kit: the backbone contract and the plumbing adapters share. */
export * from './contract.js';
