/** Rendezvous hashing now lives in @gatehouse/backbone-kit (the Redis adapter shards with it). */
export { RendezvousHash, murmur3, murmur3Bytes } from '@gatehouse/backbone-kit';
