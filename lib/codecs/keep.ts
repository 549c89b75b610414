/**
 * Codec 'keep': the tensor is stored under its own name with its original dtype, shape and bytes (docs/FORMAT.md,
 * "Kept tensors"). Decoding converts float tensors to the asked dtype (round to nearest even).
 */
import { DTYPE_SIZE, numel } from '../dtype.js';
import { FormatError } from '../errors.js';
import type { StoredMetrics } from '../format.js';
import { loadNative } from '../load.js';
import type { Codec } from './codec.js';
import { entryBytes } from './codec.js';

export const keepCodec = {
  name: 'keep' as const,
  summary: 'stored as it is (tensors the rules do not select, non-float and empty tensors)',
  phase: 'copy' as const,
  placement: 'last',
  storedNames: () => [],
  plan: () => ({ layout: {} }),
  headerBytes: (task) => 2 * entryBytes(task.tensor) + 400,
  outputBytes: (task) => task.tensor.byteLength,

  async encode(task, job) {
    const t = task.tensor;
    await job.out.add(t.name, t.dtype, t.shape, job.ckpt.bytes(t.name));
    job.ckpt.advise(t.name, 'dontneed');
    const metrics: StoredMetrics = { mse: 0, sqnrDb: null, maxAbsErr: 0, bitsPerWeight: DTYPE_SIZE[t.dtype] * 8, bytesIn: t.byteLength, bytesOut: t.byteLength, seconds: 0 };
    return {
      scheme: { method: 'keep', dtype: t.dtype, shape: t.shape, metrics },
      metrics,
      report: (m) => ({ name: t.name, dtype: t.dtype, shape: t.shape, method: 'keep', bits: DTYPE_SIZE[t.dtype] * 8, granularity: null, numel: t.numel, ...m }),
    };
  },

  parse: () => undefined,
  check(ckpt, name, s) {
    if (!ckpt.has(name)) throw new FormatError('kept tensor is missing from the file', { file: ckpt.path, tensor: name });
    const t = ckpt.info(name);
    // The scheme must say exactly what the container holds: another dtype or shape would decode the bytes wrong.
    if (t.dtype !== s.dtype || t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i]))
      throw new FormatError(`kept tensor is ${t.dtype} ${JSON.stringify(t.shape)} in the file, the scheme says ${s.dtype} ${JSON.stringify(s.shape)}`, { file: ckpt.path, tensor: name });
  },

  async decode(name, s, dtype, job) {
    if (dtype === s.dtype) return job.ckpt.bytes(name);
    const dense = new Uint8Array(numel(s.shape) * DTYPE_SIZE[dtype]);
    job.saturated += await loadNative().convert(job.ckpt.bytes(name), s.dtype, dtype, dense, name, job.allowOverflow);
    return dense;
  },

  granularity: () => null,
} satisfies Codec;
