// The options that make each registered codec quantize a small test tensor: a codec that only some methods store
// (the vector codec) gets one of those methods and codebook sizes for small tensors; the others take 3 bits.
import type { QuantizeOptions } from '../lib/index.js';
import { METHODS } from '../lib/methods/registry.js';

export function codecOptions(codec: string): QuantizeOptions {
  const owner = METHODS.find((m) => 'codec' in m && m.codec === codec);
  return owner ? ({ method: owner.name, subvector: 4, centroids: 16 } as QuantizeOptions) : { bits: 3 };
}
