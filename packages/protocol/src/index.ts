/**
 * @gatehouse/protocol: the wire format shared by the Gatehouse server and its SDKs.
 * No dependencies; runs in browsers and Node.
 */
export * from './frames.js';
export * from './codec.js';
export * from './close-codes.js';
export * from './patterns.js';
