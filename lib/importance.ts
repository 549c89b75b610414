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
 *
 * Or a llama.cpp importance matrix (--imatrix; lib/imatrix.ts): per input column, the mean squared activation
 * E[x_j²], broadcast over the rows (for a linear layer, the diagonal of the layer-wise Hessian up to a constant).
 * Lookup for checkpoint tensor N: the --importance-map rules applied to N, then that name, then llama.cpp's GGUF
 * name for it (ggufNameOf: model.layers.3.self_attn.q_proj.weight -> blk.3.attn_q.weight; a per-expert HF tensor
 * takes its expert's slice of the merged expert entry).
 */
import { Checkpoint, type TensorRef } from './checkpoint.js';
import { FormatError, NonFiniteError, fromNative } from './errors.js';
import { loadNative } from './load.js';
import { Imatrix, broadcastColumns, ggufNameOf } from './imatrix.js';
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
    private readonly ckpt: Checkpoint | undefined,
    readonly kind: ImportanceKind | 'imatrix',
    private readonly mapName: (name: string) => string,
    private readonly imatrix?: Imatrix,
  ) {}

  static async open(path: string, kind: ImportanceKind, map: string[]): Promise<Importance> {
    return new Importance(await Checkpoint.open(path), kind, nameMapper(map));
  }

  /** A llama.cpp importance matrix (GGUF or legacy .dat; lib/imatrix.ts) as importance; FormatError when malformed. */
  static async openImatrix(path: string, map: string[]): Promise<Importance> {
    return new Importance(undefined, 'imatrix', nameMapper(map), Imatrix.open(path));
  }

  get file(): string {
    return this.ckpt?.path ?? this.imatrix!.path;
  }

  /** The importance tensor's (or imatrix entry's) name for a checkpoint tensor, or undefined. */
  nameFor(tensor: string): string | undefined {
    return this.resolve(tensor)?.name;
  }

  private resolve(tensor: string): { name: string; expert?: number } | undefined {
    const n = this.mapName(tensor);
    if (this.imatrix) {
      if (this.imatrix.has(n)) return { name: n };
      const g = ggufNameOf(n);
      return g && this.imatrix.has(g.name) ? g : undefined;
    }
    const name = [n, `${n}.exp_avg_sq`, `state.${n}.exp_avg_sq`, `exp_avg_sq.${n}`].find((c) => this.ckpt!.has(c));
    return name === undefined ? undefined : { name };
  }

  /** One non-negative F32 weight per element of `t`, or undefined when the file has none for it. */
  async weightsFor(t: TensorRef): Promise<Float32Array | undefined> {
    const found = this.resolve(t.name);
    if (found === undefined) return undefined;
    const name = found.name;
    if (this.imatrix) {
      const w = broadcastColumns(this.imatrix.values(name)!, t.shape, { file: this.imatrix.path, tensor: t.name, entry: name, expert: found.expert });
      this.checkWeights(w, t.name, { file: this.imatrix.path, tensor: name });
      return w;
    }
    const ckpt = this.ckpt!;
    const info = ckpt.info(name);
    const ctx = { file: ckpt.path, tensor: name };
    if (info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i]))
      throw new FormatError(`importance shape [${info.shape}] does not match tensor "${t.name}" [${t.shape}]`, ctx);
    if (!['F32', 'F16', 'BF16', 'F64'].includes(info.dtype)) throw new FormatError(`importance must be a float tensor, not ${info.dtype}`, ctx);
    const bytes = ckpt.bytes(name);
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
    this.checkWeights(w, t.name, ctx);
    if (this.kind === 'adam-v') {
      const s = new Float32Array(w.length);
      for (let i = 0; i < w.length; i++) s[i] = Math.sqrt(w[i]);
      w = s;
    }
    return w;
  }

  /** Never clamp silently: a negative, NaN or infinite entry is an error. */
  private checkWeights(w: Float32Array, tensor: string, ctx: { file: string; tensor: string }): void {
    for (let i = 0; i < w.length; i++) {
      const v = w[i];
      if (!(v >= 0) || v === Infinity)
        throw new NonFiniteError(`importance for tensor "${tensor}" is ${v} at element ${i}; it must be finite and non-negative`, ctx);
    }
  }

  close(): void {
    this.ckpt?.close();
    this.imatrix?.close();
  }
}
