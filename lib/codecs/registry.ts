/**
 * The codecs weightpress knows, one row each (lib/codecs/<name>.ts). quantize, decode, plan and inspect find a
 * codec here by name (a task's `codec`) or by the stored scheme entry it owns; they hold no per-codec branches.
 */
import { FormatError } from '../errors.js';
import { storedCodec, type TensorScheme } from '../format.js';
import { blockCodec } from './block.js';
import type { Codec } from './codec.js';
import { intCodec } from './int.js';
import { keepCodec } from './keep.js';
import { scalarCodec } from './scalar.js';
import { vectorCodec } from './vector.js';

const ROWS = [scalarCodec, blockCodec, vectorCodec, intCodec, keepCodec] as const satisfies readonly Codec[];
export const CODECS: readonly Codec[] = ROWS;

/** A registered codec's name. */
export type CodecName = (typeof ROWS)[number]['name'];
/** The codecs a user may ask for (`codec` option, `--codec`): every row that quantizes. */
export type QuantizingCodecName = Extract<(typeof ROWS)[number], { phase: 'quantize' }>['name'];
export const QUANTIZING_CODECS = CODECS.filter((c) => c.phase === 'quantize').map((c) => c.name) as QuantizingCodecName[];

export function findCodec(name: string): Codec | undefined {
  return CODECS.find((c) => c.name === name);
}

/** The codec that owns a stored scheme entry; a FormatError when none does. */
export function codecOf(s: TensorScheme, where: { file: string; tensor: string }): Codec {
  const name = storedCodec(s);
  const c = CODECS.find((x) => x.name === name);
  if (!c) throw new FormatError(`scheme entry was written by codec ${JSON.stringify(name)}, which this reader does not know (known: ${CODECS.map((x) => x.name).join(', ')})`, where);
  return c;
}
