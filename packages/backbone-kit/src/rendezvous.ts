/**
 * Rendezvous (highest-random-weight) hashing: a key goes to the node with the highest score
 * `murmur3_32(key, seed = murmur3_32(node, 0))`. Removing a node moves only the keys it owned;
 * adding one takes about 1/n of the keys from the others; the answer depends only on the strings,
 * never on list order or on the process, so every gateway and every outside publisher agrees
 * where a channel lives. Strings are hashed as UTF-8 so an implementation in another language
 * gives the same answers (docs/backbones.md states the rule).
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** MurmurHash3 x86 32-bit of `bytes` with `seed`, as an unsigned 32-bit integer. */
export function murmur3Bytes(bytes: Uint8Array, seed: number): number {
  let h = seed >>> 0;
  const blocks = bytes.length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = (bytes[i] as number) | ((bytes[i + 1] as number) << 8) | ((bytes[i + 2] as number) << 16) | ((bytes[i + 3] as number) << 24);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = bytes.length & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= (bytes[blocks + 2] as number) << 16;
    if (tail >= 2) k ^= (bytes[blocks + 1] as number) << 8;
    k ^= bytes[blocks] as number;
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const encoder = new TextEncoder();

/** MurmurHash3 x86 32-bit of the UTF-8 bytes of `text`. */
export function murmur3(text: string, seed = 0): number {
  return murmur3Bytes(encoder.encode(text), seed);
}

/**
 * Picks one of a fixed set of nodes for each key. Node names are compared as given, so use a
 * canonical form (the adapter uses `host:port/db`).
 */
export class RendezvousHash {
  /** The node names, in the order given. */
  readonly nodes: readonly string[];
  private readonly seeds: Uint32Array;

  constructor(nodes: readonly string[]) {
    if (nodes.length === 0) throw new TypeError('rendezvous hashing needs at least one node');
    if (new Set(nodes).size !== nodes.length) throw new TypeError(`rendezvous node names must be unique: ${nodes.join(', ')}`);
    this.nodes = [...nodes];
    this.seeds = Uint32Array.from(nodes, (n) => murmur3(n, 0));
  }

  /** The index (into `nodes`) of the node that owns `key`. */
  indexOf(key: string): number {
    if (this.nodes.length === 1) return 0;
    const bytes = encoder.encode(key);
    let best = 0;
    let bestScore = -1;
    for (let i = 0; i < this.seeds.length; i++) {
      const score = murmur3Bytes(bytes, this.seeds[i] as number);
      // Ties (1 in 2^32) go to the lexically smaller name, so list order never matters.
      if (score > bestScore || (score === bestScore && (this.nodes[i] as string) < (this.nodes[best] as string))) {
        best = i;
        bestScore = score;
      }
    }
    return best;
  }

  /** The name of the node that owns `key`. */
  pick(key: string): string {
    return this.nodes[this.indexOf(key)] as string;
  }
}
