/**
 * Calibration: for each weight, the Gram matrix of its layer's inputs, H = Σ x xᵀ over calibration samples
 * (in_features × in_features, as GPTQ accumulates it), read from a safetensors file. With it, methods that take
 * `calibration` minimise the layer-output error tr((W − Ŵ) H (W − Ŵ)ᵀ) instead of the weight error
 * (docs/CALIBRATION.md). Only the matrix's scale-free shape matters: Σ x xᵀ or its mean give the same result.
 *
 * A weight of shape [out, d1, d2, ...] has in_features = d1·d2·... (a Conv2D weight [out, in, kh, kw] has
 * in·kh·kw, its unfolded input patches). Name lookup for weight N: first the calibrationMap rules ("FROM=>TO",
 * FROM a regex, applied in order), then the first of N, N without its ".weight" suffix (the module's name, as a
 * forward hook sees it), N + ".gram" that the file holds.
 */
import { Checkpoint, type TensorRef } from './checkpoint.js';
import { FormatError, NonFiniteError, fromNative } from './errors.js';
import { nameMapper } from './importance.js';
import { loadNative } from './load.js';

/** One weight's calibration: the Gram matrix, row-major, `inFeatures` × `inFeatures`. */
export interface Gram {
  /** The calibration tensor's name in the file. */
  name: string;
  inFeatures: number;
  /** H, row-major F32 (symmetric; checked). */
  h: Float32Array;
}

/** A weight's in_features: its elements per output row (shape[0] rows). */
export function inFeaturesOf(t: Pick<TensorRef, 'shape' | 'numel'>): number {
  return t.shape.length ? t.numel / Math.max(1, t.shape[0]) : 1;
}

export class Calibration {
  private constructor(
    private readonly ckpt: Checkpoint,
    private readonly mapName: (name: string) => string,
  ) {}

  /** Opens a calibration file; `map` holds "FROM=>TO" name rules. Throws IoError/FormatError for a bad file. */
  static async open(path: string, map: string[] = []): Promise<Calibration> {
    return new Calibration(await Checkpoint.open(path), nameMapper(map));
  }

  get file(): string {
    return this.ckpt.path;
  }

  /** The calibration tensor's name for weight `tensor`, or undefined when the file has none. */
  nameFor(tensor: string): string | undefined {
    const n = this.mapName(tensor);
    return [n, n.replace(/\.weight$/, ''), `${n}.gram`].find((c) => this.ckpt.has(c));
  }

  /**
   * The Gram matrix for weight `t`, or undefined when the file has none for it. Throws FormatError when its shape
   * is not [in, in] (in = inFeaturesOf(t)), its dtype is not a float, or it is not symmetric; NonFiniteError for a
   * NaN/inf entry or a negative diagonal entry.
   */
  async gramFor(t: TensorRef): Promise<Gram | undefined> {
    const name = this.nameFor(t.name);
    if (name === undefined) return undefined;
    const info = this.ckpt.info(name);
    const n = inFeaturesOf(t);
    const ctx = { file: this.ckpt.path, tensor: name };
    if (info.shape.length !== 2 || info.shape[0] !== n || info.shape[1] !== n)
      throw new FormatError(`calibration Gram matrix has shape [${info.shape}]; weight "${t.name}" [${t.shape}] needs [${n},${n}] (in_features × in_features)`, ctx);
    if (!['F32', 'F16', 'BF16', 'F64'].includes(info.dtype)) throw new FormatError(`calibration must be a float tensor, not ${info.dtype}`, ctx);
    const h = new Float32Array(n * n);
    try {
      await loadNative().convert(this.ckpt.bytes(name), info.dtype, 'F32', new Uint8Array(h.buffer), name);
    } catch (e) {
      throw fromNative(e, ctx);
    }
    for (let i = 0; i < h.length; i++)
      if (!Number.isFinite(h[i])) throw new NonFiniteError(`calibration of "${t.name}" has ${h[i]} at element ${i}`, ctx);
    let top = 0;
    for (let i = 0; i < n; i++) {
      const d = h[i * n + i];
      if (d < 0) throw new NonFiniteError(`calibration of "${t.name}" has a negative diagonal entry ${d} at ${i}: a Gram matrix has none`, ctx);
      top = Math.max(top, d);
    }
    // Symmetric up to F16 rounding of the stored entries.
    for (let i = 0; i < n; i++)
      for (let j = i + 1; j < n; j++) {
        const a = h[i * n + j];
        const b = h[j * n + i];
        if (Math.abs(a - b) > 1e-3 * (Math.abs(a) + Math.abs(b)) + 1e-6 * top)
          throw new FormatError(`calibration of "${t.name}" is not symmetric: H[${i},${j}] = ${a}, H[${j},${i}] = ${b}`, ctx);
      }
    return { name, inFeatures: n, h };
  }

  close(): void {
    this.ckpt.close();
  }
}
