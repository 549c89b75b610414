/**
 * The codecs weightpress knows, one row each (lib/codecs/<name>.ts). quantize, decode, plan and inspect find a
 * codec here by name (a task's `codec`) or by the stored scheme entry it owns; they hold no per-codec branches.
 */
import { FormatError } from '../errors.js';
import { storedCodec, type TensorScheme } from '../format.js';
import { blockCodec } from './block.js';
import type { Codec, CodecName } from './codec.js';
import { keepCodec } from './keep.js';
import { scalarCodec } from './scalar.js';

export const CODECS: readonly Codec[] = [scalarCodec, blockCodec, keepCodec];

/** The codecs a user may ask for (`codec` option, `--codec`): every row but 'keep'. */
export const QUANTIZING_CODECS = CODECS.filter((c) => c.phase === 'quantize').map((c) => c.name);

export function findCodec(name: CodecName | string): Codec | undefined {
  return CODECS.find((c) => c.name === name);
}

/** The codec that owns a stored scheme entry; a FormatError when none does. */
export function codecOf(s: TensorScheme, where: { file: string; tensor: string }): Codec {
  const name = storedCodec(s);
  const c = CODECS.find((x) => x.name === name);
  if (!c) throw new FormatError(`scheme entry was written by codec ${JSON.stringify(name)}, which this reader does not know (known: ${CODECS.map((x) => x.name).join(', ')})`, where);
  return c;
}
