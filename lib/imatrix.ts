/**
 * llama.cpp importance matrices (`llama-imatrix`, tools/imatrix/imatrix.cpp): per weight matrix, the mean squared
 * activation of each input column, E[x_j²] over the calibration tokens (the diagonal of the layer's Gram matrix
 * divided by the token count). Both file formats llama-imatrix writes are read:
 *
 * - GGUF (the default since 2025): a GGUF v2/v3 file with `general.type` = "imatrix", KVs `imatrix.datasets`,
 *   `imatrix.chunk_count`, `imatrix.chunk_size`, and per weight `<name>.in_sum2` (F32, ne = [ne0, n_mat]: the sum
 *   of squared activations per column, per expert for 3-D expert tensors) and `<name>.counts` (F32, ne = [1,
 *   n_mat]: the tokens summed). The values are in_sum2 / count per matrix; a matrix with count 0 (an expert the
 *   data never routed to) reads as 1 everywhere, as llama-quantize reads it. `<name>.in_sum` (mean activations,
 *   newer files) is ignored.
 * - legacy `.dat`: int32 n_entries; per entry int32 name length, the name's bytes, int32 ncall, int32 nval, nval
 *   F32 values (the mean squares times ncall); then optionally int32 chunk count and int32 length + the dataset
 *   name. The values are values / ncall (as they are when ncall is 0).
 *
 * Entries carry llama.cpp's GGUF tensor names (blk.N.attn_q.weight, ...). The file is indexed when opened and an
 * entry's values are read when asked for (an imatrix of a large MoE can be a GB), so memory stays with one entry.
 * Malformed files throw FormatError naming the file and, where known, the entry.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { resolve } from 'node:path';

import { FormatError, IoError } from './errors.js';

interface Entry {
  name: string;
  /** Values per matrix (columns of the weight). */
  ne0: number;
  /** Matrices: experts of a 3-D expert tensor, else 1 (legacy: always 1, the experts being one long row). */
  nmat: number;
  /** Byte offset of the F32 sums / values. */
  offset: number;
  /** GGUF: byte offset of the n_mat F32 counts; legacy: -1. */
  countsOffset: number;
  /** Legacy: the entry's ncall. */
  ncall: number;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const MAX_ENTRIES = 1 << 24;

export class Imatrix {
  private readonly entries = new Map<string, Entry>();
  /** Datasets the matrix was computed on (GGUF `imatrix.datasets`, or the legacy trailer's name). */
  datasets: string[] = [];
  /** Chunks of calibration text (GGUF `imatrix.chunk_count`, or the legacy trailer), when the file says. */
  chunks: number | undefined;
  format: 'gguf' | 'dat' = 'dat';

  private constructor(readonly path: string, private fd: number, private readonly size: number) {}

  /** Opens and indexes `path` (FormatError for a malformed file, IoError when it cannot be read). */
  static open(path: string): Imatrix {
    const file = resolve(path);
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch (e) {
      throw new IoError(`cannot open imatrix file: ${(e as Error).message}`, { file });
    }
    const m = new Imatrix(file, fd, fstatSync(fd).size);
    try {
      if (m.size >= 4 && m.u32(0) === GGUF_MAGIC) m.indexGguf();
      else m.indexLegacy();
      if (m.entries.size === 0) throw m.bad('holds no entries');
    } catch (e) {
      m.close();
      throw e;
    }
    return m;
  }

  /** The entries' names (llama.cpp's GGUF tensor names). */
  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Columns per matrix and matrices of an entry. */
  shape(name: string): { ne0: number; nmat: number; nval: number } | undefined {
    const e = this.entries.get(name);
    return e && { ne0: e.ne0, nmat: e.nmat, nval: e.ne0 * e.nmat };
  }

  /** The entry's mean squared activations, n_mat × ne0 values (matrix-major), or undefined. */
  values(name: string): Float32Array | undefined {
    const e = this.entries.get(name);
    if (!e) return undefined;
    const n = e.ne0 * e.nmat;
    const v = this.f32s(e.offset, n, name);
    if (e.countsOffset >= 0) {
      const c = this.f32s(e.countsOffset, e.nmat, name);
      for (let m = 0; m < e.nmat; m++) {
        const count = c[m];
        if (!Number.isFinite(count) || count < 0) throw this.bad(`count ${count} of matrix ${m} is not a finite non-negative number`, name);
        for (let j = m * e.ne0; j < (m + 1) * e.ne0; j++) v[j] = count > 0 ? Math.fround(v[j] / count) : 1;
      }
    } else if (e.ncall > 0) {
      for (let j = 0; j < n; j++) v[j] = Math.fround(v[j] / e.ncall);
    }
    return v;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  // ---- reading ----

  private bad(problem: string, entry?: string): FormatError {
    return new FormatError(`not a valid llama.cpp imatrix (${this.format === 'gguf' ? 'GGUF' : 'legacy .dat'}): ${problem}`, { file: this.path, ...(entry !== undefined ? { tensor: entry } : {}) });
  }

  private read(pos: number, n: number, what: string): Buffer {
    if (pos < 0 || n < 0 || pos + n > this.size) throw this.bad(`truncated: ${what} needs ${n} bytes at offset ${pos}, the file has ${this.size}`);
    const b = Buffer.alloc(n);
    let done = 0;
    while (done < n) {
      const k = readSync(this.fd, b, done, n - done, pos + done);
      if (k <= 0) throw this.bad(`truncated at offset ${pos + done}`);
      done += k;
    }
    return b;
  }

  private u32(pos: number): number {
    return this.read(pos, 4, 'a 32-bit value').readUInt32LE(0);
  }

  private f32s(pos: number, n: number, entry: string): Float32Array {
    const b = this.read(pos, n * 4, `the values of "${entry}"`);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = b.readFloatLE(4 * i);
    return out;
  }

  private indexLegacy(): void {
    this.format = 'dat';
    let pos = 0;
    const nEntries = this.read(pos, 4, 'the entry count').readInt32LE(0);
    pos += 4;
    if (nEntries < 1 || nEntries > MAX_ENTRIES) throw this.bad(`entry count ${nEntries} (expected 1 to ${MAX_ENTRIES}; a GGUF file starts with "GGUF")`);
    for (let i = 0; i < nEntries; i++) {
      const len = this.read(pos, 4, `the name length of entry ${i}`).readInt32LE(0);
      pos += 4;
      if (len < 1 || len > 4096) throw this.bad(`entry ${i} has a name of ${len} bytes`);
      const name = this.read(pos, len, `the name of entry ${i}`).toString('utf8');
      pos += len;
      const h = this.read(pos, 8, `the ncall and nval of "${name}"`);
      const ncall = h.readInt32LE(0), nval = h.readInt32LE(4);
      pos += 8;
      if (nval < 1) throw this.bad(`entry has ${nval} values`, name);
      if (ncall < 0) throw this.bad(`entry has ncall ${ncall}`, name);
      if (pos + 4 * nval > this.size) throw this.bad(`truncated: ${nval} values need ${4 * nval} bytes at offset ${pos}, the file has ${this.size}`, name);
      if (this.entries.has(name)) throw this.bad('entry appears twice', name);
      this.entries.set(name, { name, ne0: nval, nmat: 1, offset: pos, countsOffset: -1, ncall });
      pos += 4 * nval;
    }
    // The optional trailer: the chunk count, then the dataset's name.
    if (pos + 4 <= this.size) {
      this.chunks = this.read(pos, 4, 'the chunk count').readInt32LE(0);
      pos += 4;
      if (pos + 4 <= this.size) {
        const len = this.read(pos, 4, 'the dataset name length').readInt32LE(0);
        pos += 4;
        if (len < 0 || pos + len > this.size) throw this.bad(`the dataset name of ${len} bytes runs past the end`);
        if (len > 0) this.datasets.push(this.read(pos, len, 'the dataset name').toString('utf8'));
        pos += len;
      }
    }
    if (pos !== this.size) throw this.bad(`${this.size - pos} unexpected bytes after the entries at offset ${pos}`);
  }

  private indexGguf(): void {
    this.format = 'gguf';
    const h = this.read(0, 24, 'the GGUF header');
    const version = h.readUInt32LE(4);
    if (version !== 2 && version !== 3) throw this.bad(`GGUF version ${version} (2 or 3 are read)`);
    const nTensors = Number(h.readBigUInt64LE(8));
    const nKv = Number(h.readBigUInt64LE(16));
    if (nTensors > MAX_ENTRIES || nKv > MAX_ENTRIES) throw this.bad(`${nTensors} tensors and ${nKv} KVs`);
    let pos = 24;
    const u64 = () => {
      const v = this.read(pos, 8, 'a 64-bit value').readBigUInt64LE(0);
      pos += 8;
      if (v > BigInt(this.size)) throw this.bad(`a length of ${v} at offset ${pos - 8} is larger than the file`);
      return Number(v);
    };
    const u32 = () => {
      const v = this.u32(pos);
      pos += 4;
      return v;
    };
    const str = () => {
      const n = u64();
      const s = this.read(pos, n, 'a string').toString('utf8');
      pos += n;
      return s;
    };
    const SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
    const scalar = (t: number): number | string | boolean => {
      if (t === 8) return str();
      const n = SIZES[t];
      if (n === undefined) throw this.bad(`KV value type ${t} at offset ${pos - 4}`);
      const b = this.read(pos, n, 'a KV value');
      pos += n;
      switch (t) {
        case 0: return b.readUInt8(0);
        case 1: return b.readInt8(0);
        case 2: return b.readUInt16LE(0);
        case 3: return b.readInt16LE(0);
        case 4: return b.readUInt32LE(0);
        case 5: return b.readInt32LE(0);
        case 6: return b.readFloatLE(0);
        case 7: return b.readUInt8(0) !== 0;
        case 10: return Number(b.readBigUInt64LE(0));
        case 11: return Number(b.readBigInt64LE(0));
        default: return b.readDoubleLE(0);
      }
    };
    let alignment = 32;
    let type: unknown;
    for (let i = 0; i < nKv; i++) {
      const key = str();
      const t = u32();
      if (t === 9) {
        const et = u32();
        const n = u64();
        const values: unknown[] = [];
        for (let k = 0; k < n; k++) values.push(et === 9 ? (() => { throw this.bad(`nested arrays in KV "${key}"`); })() : scalar(et));
        if (key === 'imatrix.datasets') this.datasets = values.map(String);
      } else {
        const v = scalar(t);
        if (key === 'general.alignment') {
          if (typeof v !== 'number' || v < 1 || (v & (v - 1)) !== 0) throw this.bad(`general.alignment ${v} is not a power of two`);
          alignment = v;
        } else if (key === 'general.type') type = v;
        else if (key === 'imatrix.chunk_count') this.chunks = Number(v);
      }
    }
    if (type !== undefined && type !== 'imatrix') throw this.bad(`general.type is ${JSON.stringify(type)}, not "imatrix" (a model, not an importance matrix?)`);
    const infos: { name: string; ne: number[]; type: number; offset: number }[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = str();
      const nd = u32();
      if (nd < 1 || nd > 4) throw this.bad(`tensor has ${nd} dimensions`, name);
      const ne: number[] = [];
      for (let d = 0; d < nd; d++) ne.push(u64());
      const t = u32();
      const offset = u64();
      infos.push({ name, ne, type: t, offset });
    }
    const dataStart = Math.ceil(pos / alignment) * alignment;
    const sums = new Map<string, (typeof infos)[number]>();
    const counts = new Map<string, (typeof infos)[number]>();
    for (const t of infos) {
      const m = /^(.*)\.(in_sum2|counts|in_sum)$/.exec(t.name);
      if (!m || m[2] === 'in_sum') continue;
      if (t.type !== 0) throw this.bad(`tensor type ${t.type} (F32, type 0, expected)`, t.name);
      const numel = t.ne.reduce((a, b) => a * b, 1);
      if (dataStart + t.offset + 4 * numel > this.size) throw this.bad(`tensor data (${4 * numel} bytes at offset ${dataStart + t.offset}) runs past the end of the file (${this.size} bytes)`, t.name);
      (m[2] === 'in_sum2' ? sums : counts).set(m[1], { ...t, offset: dataStart + t.offset });
    }
    for (const [name, s] of sums) {
      const c = counts.get(name);
      if (!c) throw this.bad(`"${name}.in_sum2" has no "${name}.counts"`, name);
      const ne0 = s.ne[0], nmat = s.ne.slice(1).reduce((a, b) => a * b, 1);
      const cn = c.ne.reduce((a, b) => a * b, 1);
      if (ne0 < 1 || cn !== nmat) throw this.bad(`in_sum2 [${s.ne}] and counts [${c.ne}] do not agree (counts must hold one value per matrix)`, name);
      this.entries.set(name, { name, ne0, nmat, offset: s.offset, countsOffset: c.offset, ncall: 0 });
    }
    for (const name of counts.keys()) if (!sums.has(name)) throw this.bad(`"${name}.counts" has no "${name}.in_sum2"`, name);
  }
}

// ---- names ----

/** HF (transformers) names of a decoder layer's weights and llama.cpp's GGUF names for them (convert_hf_to_gguf). */
const LAYER_NAMES: readonly [RegExp, string][] = [
  [/^self_attn\.q_proj$/, 'attn_q'],
  [/^self_attn\.k_proj$/, 'attn_k'],
  [/^self_attn\.v_proj$/, 'attn_v'],
  [/^self_attn\.o_proj$/, 'attn_output'],
  [/^self_attn\.qkv_proj$/, 'attn_qkv'],
  [/^mlp\.gate_proj$/, 'ffn_gate'],
  [/^mlp\.up_proj$/, 'ffn_up'],
  [/^mlp\.gate_up_proj$/, 'ffn_up'],
  [/^mlp\.down_proj$/, 'ffn_down'],
  [/^(?:mlp|block_sparse_moe)\.gate$/, 'ffn_gate_inp'],
  [/^mlp\.shared_experts?\.gate_proj$/, 'ffn_gate_shexp'],
  [/^mlp\.shared_experts?\.up_proj$/, 'ffn_up_shexp'],
  [/^mlp\.shared_experts?\.down_proj$/, 'ffn_down_shexp'],
];
/** Per-expert HF names: the expert's slice of the merged 3-D expert tensor's entry. */
const EXPERT_NAMES: readonly [RegExp, string][] = [
  [/^mlp\.experts\.(\d+)\.gate_proj$/, 'ffn_gate_exps'],
  [/^mlp\.experts\.(\d+)\.up_proj$/, 'ffn_up_exps'],
  [/^mlp\.experts\.(\d+)\.down_proj$/, 'ffn_down_exps'],
  [/^block_sparse_moe\.experts\.(\d+)\.w1$/, 'ffn_gate_exps'],
  [/^block_sparse_moe\.experts\.(\d+)\.w3$/, 'ffn_up_exps'],
  [/^block_sparse_moe\.experts\.(\d+)\.w2$/, 'ffn_down_exps'],
];

/**
 * llama.cpp's GGUF name of a checkpoint tensor given by its HF name (Llama, Mistral, Mixtral, Qwen 2/3 and their
 * MoE variants, Gemma, Phi-3 naming), with the expert index for a per-expert HF tensor; undefined when the name is
 * not one of those. `model.layers.3.self_attn.q_proj.weight` gives `blk.3.attn_q.weight`;
 * `model.layers.1.mlp.experts.5.down_proj.weight` gives `blk.1.ffn_down_exps.weight`, expert 5.
 */
export function ggufNameOf(hf: string): { name: string; expert?: number } | undefined {
  if (hf === 'lm_head.weight') return { name: 'output.weight' };
  if (/(?:^|\.)embed_tokens\.weight$/.test(hf)) return { name: 'token_embd.weight' };
  const m = /(?:^|\.)layers\.(\d+)\.(.+)\.weight$/.exec(hf);
  if (!m) return undefined;
  const [, layer, rest] = m;
  for (const [re, g] of LAYER_NAMES) if (re.test(rest)) return { name: `blk.${layer}.${g}.weight` };
  for (const [re, g] of EXPERT_NAMES) {
    const e = re.exec(rest);
    if (e) return { name: `blk.${layer}.${g}.weight`, expert: Number(e[1]) };
  }
  return undefined;
}

/**
 * One importance weight per element of a tensor of `shape` from an imatrix entry's values (per input column,
 * broadcast over the rows). The entry fits when it has one value per column (the last dimension, or numel /
 * shape[0] for a kernel read as [out, in·kh·kw]); a 3-D expert tensor [n_expert, out, in] takes expert e's
 * columns from values[e·in ...]; a per-expert tensor (`expert` given) takes its expert's slice. FormatError
 * otherwise, naming both sizes.
 */
export function broadcastColumns(values: Float32Array, shape: readonly number[], ctx: { file: string; tensor: string; entry: string; expert?: number }): Float32Array {
  const numel = shape.reduce((a, b) => a * b, 1);
  const last = shape.length ? shape[shape.length - 1] : 1;
  const nval = values.length;
  const out = new Float32Array(numel);
  const fill = (cols: number, from: (row: number) => number) => {
    for (let r = 0, o = 0; o < numel; r++, o += cols) out.set(values.subarray(from(r), from(r) + cols), o);
  };
  if (ctx.expert !== undefined) {
    if (nval % last === 0 && (ctx.expert + 1) * last <= nval) {
      fill(last, () => ctx.expert! * last);
      return out;
    }
  } else if (nval === last) {
    fill(last, () => 0);
    return out;
  } else if (shape.length === 3 && nval === last * shape[0]) {
    const rowsPerExpert = shape[1];
    fill(last, (r) => Math.floor(r / rowsPerExpert) * last);
    return out;
  } else if (shape.length >= 2 && nval === numel / shape[0]) {
    fill(nval, () => 0);
    return out;
  }
  const want = ctx.expert !== undefined ? `its expert ${ctx.expert}'s ${last} columns` : `${last} (one per column)${shape.length === 3 ? ` or ${last * shape[0]} (per expert)` : ''}`;
  throw new FormatError(`imatrix entry "${ctx.entry}" has ${nval} values; tensor "${ctx.tensor}" [${shape.join(', ')}] needs ${want}`, { file: ctx.file, tensor: ctx.tensor });
}
