/** 32-bit FNV-1a of a string: a stable, cheap key hash (not for security). */
export function fnv1a(text: string, seed = 0x811c9dc5): number {
  let hash = seed;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Mixes two 32-bit values into a well-spread 32-bit value (murmur3's finaliser). */
export function mix(a: number, b: number): number {
  let h = (a ^ Math.imul(b, 0x9e3779b1)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Weighted rendezvous (highest random weight) score of a key on a server: the
 * server with the highest score owns the key. Adding or removing a server moves
 * only the keys that server wins or held, about 1/n of them.
 */
export function rendezvousScore(keyHash: number, serverSeed: number, weight: number): number {
  const unit = (mix(keyHash, serverSeed) + 0.5) / 4294967296;
  return weight / -Math.log(unit);
}
