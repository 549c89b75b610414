// The options that make each registered codec quantize a small test tensor: a codec that only some methods store
// (the vector codec) gets one of those methods and codebook sizes for small tensors, a codec that stores some methods
// only (int) one of those; the others take 3 bits.
import type { QuantizeOptions } from '../lib/index.js';
import { METHODS } from '../lib/methods/registry.js';

export function codecOptions(codec: string): QuantizeOptions {
  const owner = METHODS.find((m) => 'codec' in m && m.codec === codec);
  if (owner) return { method: owner.name, subvector: 4, centroids: 16 } as QuantizeOptions;
  // A codec that stores some methods besides others' codecs (int: uniform) gets one of them.
  const shared = METHODS.find((m) => ((m as { extraCodecs?: readonly string[] }).extraCodecs ?? []).includes(codec));
  return shared ? ({ method: shared.name, bits: 3 } as QuantizeOptions) : { bits: 3 };
}
