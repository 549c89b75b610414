/**
 * Importance weights (Choi et al. 2017): a diagonal Hessian, a Fisher diagonal, or Adam's second moment
 * (then sqrt(v) is used, as in the paper), read from a safetensors file whose tensors carry the checkpoint's
 * names and shapes.
 *
 * Name lookup for checkpoint tensor N: first the --importance-map rules ("FROM=>TO", FROM a regex, applied in
 * order to N), then these names, the first that exists: N, N.exp_avg_sq, state.N.exp_avg_sq, exp_avg_sq.N.
 * A PyTorch optimizer state can be exported with
 *   save_file({n: opt.state[p]['exp_avg_sq'].contiguous() for n, p in model.named_parameters() if p in opt.state}, 'adam_v.safetensors')
 * A tensor with no importance falls back to uniform weights, with a warning in the report.
 */
import { Checkpoint, type TensorRef } from './checkpoint.js';
import { FormatError, NonFiniteError, fromNative } from './errors.js';
import { loadNative } from './load.js';
import type { ImportanceKind } from './validate.js';

/**
 * Name rules "FROM=>TO" (FROM a regex; validated by resolveQuantizeOptions) as a function that applies them in
 * order to a tensor name. Shared by the importance and calibration files (--importance-map, --calibration-map).
 */
export function nameMapper(map: string[]): (name: string) => string {
  const rules = map.map((r) => {
    const i = r.indexOf('=>');
    return { from: new RegExp(r.slice(0, i)), to: r.slice(i + 2) };
  });
  return (name) => rules.reduce((n, r) => n.replace(r.from, r.to), name);
}

export class Importance {
  private constructor(
    private readonly ckpt: Checkpoint,
    readonly kind: ImportanceKind,
    private readonly mapName: (name: string) => string,
  ) {}

  static async open(path: string, kind: ImportanceKind, map: string[]): Promise<Importance> {
    return new Importance(await Checkpoint.open(path), kind, nameMapper(map));
  }

  get file(): string {
    return this.ckpt.path;
  }

  /** The importance tensor's name for a checkpoint tensor, or undefined. */
  nameFor(tensor: string): string | undefined {
    const n = this.mapName(tensor);
    return [n, `${n}.exp_avg_sq`, `state.${n}.exp_avg_sq`, `exp_avg_sq.${n}`].find((c) => this.ckpt.has(c));
  }

  /** One non-negative F32 weight per element of `t`, or undefined when the file has none for it. */
  async weightsFor(t: TensorRef): Promise<Float32Array | undefined> {
    const name = this.nameFor(t.name);
    if (name === undefined) return undefined;
    const info = this.ckpt.info(name);
    const ctx = { file: this.ckpt.path, tensor: name };
    if (info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i]))
      throw new FormatError(`importance shape [${info.shape}] does not match tensor "${t.name}" [${t.shape}]`, ctx);
    if (!['F32', 'F16', 'BF16', 'F64'].includes(info.dtype)) throw new FormatError(`importance must be a float tensor, not ${info.dtype}`, ctx);
    const bytes = this.ckpt.bytes(name);
    let w: Float32Array;
    if (info.dtype === 'F32' && bytes.byteOffset % 4 === 0) {
      w = new Float32Array(bytes.buffer, bytes.byteOffset, t.numel);
    } else {
      w = new Float32Array(t.numel);
      try {
        await loadNative().convert(bytes, info.dtype, 'F32', new Uint8Array(w.buffer), name);
      } catch (e) {
        throw fromNative(e, ctx);
      }
    }
    // Never clamp silently: a negative, NaN or infinite entry is an error.
    for (let i = 0; i < w.length; i++) {
      const v = w[i];
      if (!(v >= 0) || v === Infinity)
        throw new NonFiniteError(`importance for tensor "${t.name}" is ${v} at element ${i}; it must be finite and non-negative`, ctx);
    }
    if (this.kind === 'adam-v') {
      const s = new Float32Array(w.length);
      for (let i = 0; i < w.length; i++) s[i] = Math.sqrt(w[i]);
      w = s;
    }
    return w;
  }

  close(): void {
    this.ckpt.close();
  }
}
