/**
 * Checkpoints: one safetensors file, or a sharded one through model.safetensors.index.json (or a directory
 * holding either). Files are memory-mapped and validated in native code; tensors come out as zero-copy views.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { FormatError, IoError, WeightpressError, fromNative } from './errors.js';
import { loadNative } from './load.js';
import type { NativeFile } from './native.js';
import { DTYPE_SIZE, numel } from './dtype.js';

export interface TensorRef {
  name: string;
  dtype: string;
  shape: number[];
  numel: number;
  byteLength: number;
  /** The file (shard) holding it. */
  file: string;
}

interface Entry extends TensorRef {
  shard: NativeFile;
  index: number;
}

export class Checkpoint {
  /** The path the checkpoint was opened from. */
  readonly path: string;
  /** The shard files, in index order. */
  readonly files: string[];
  /** `__metadata__` of the first shard (or the index's "metadata", stringified). */
  readonly metadata: Record<string, string>;
  /** A shard index's own "metadata" object (undefined for a single file). */
  indexMetadata?: Record<string, unknown>;
  private readonly entries: Map<string, Entry>;
  private readonly shards: NativeFile[];
  private closed = false;

  private constructor(path: string, shards: NativeFile[], entries: Map<string, Entry>, metadata: Record<string, string>) {
    this.path = path;
    this.shards = shards;
    this.files = shards.map((s) => s.path);
    this.entries = entries;
    this.metadata = metadata;
  }

  /** Opens a .safetensors file, a model.safetensors.index.json, or a directory with either. */
  static async open(path: string): Promise<Checkpoint> {
    const native = loadNative();
    let p = resolve(path);
    let st;
    try {
      st = await stat(p);
    } catch (e) {
      throw new IoError(`cannot open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file: p });
    }
    if (st.isDirectory()) {
      const idx = join(p, 'model.safetensors.index.json');
      const single = join(p, 'model.safetensors');
      if (await exists(idx)) p = idx;
      else if (await exists(single)) p = single;
      else throw new IoError('directory holds neither model.safetensors nor model.safetensors.index.json', { file: p });
    }
    if (p.endsWith('.json')) return Checkpoint.openIndex(p);
    const at = new Error();
    let f: NativeFile;
    try {
      f = await native.open(p);
    } catch (e) {
      throw fromNative(e, { file: p }, at);
    }
    const entries = new Map<string, Entry>();
    f.tensors.forEach((t, i) => entries.set(t.name, toEntry(f, t, i)));
    return new Checkpoint(p, [f], entries, { ...f.metadata });
  }

  private static async openIndex(indexPath: string): Promise<Checkpoint> {
    const native = loadNative();
    let idx: { metadata?: Record<string, unknown>; weight_map?: Record<string, string> };
    try {
      idx = JSON.parse(await readFile(indexPath, 'utf8'));
    } catch (e) {
      throw new FormatError(`cannot read the shard index: ${(e as Error).message}`, { file: indexPath });
    }
    if (!idx || typeof idx !== 'object' || !idx.weight_map || typeof idx.weight_map !== 'object')
      throw new FormatError('shard index has no "weight_map" object', { file: indexPath });
    const dir = dirname(indexPath);
    const shardNames: string[] = [];
    for (const [name, file] of Object.entries(idx.weight_map)) {
      if (typeof file !== 'string') throw new FormatError('weight_map value is not a file name', { file: indexPath, tensor: name });
      if (basename(file) !== file) throw new FormatError(`shard "${file}" must be a file name in the index's directory`, { file: indexPath, tensor: name });
      if (!shardNames.includes(file)) shardNames.push(file);
    }
    const shards: NativeFile[] = [];
    const opened: NativeFile[] = [];
    try {
      for (const s of shardNames) {
        const at = new Error();
        try {
          const f = await native.open(join(dir, s));
          shards.push(f);
          opened.push(f);
        } catch (e) {
          throw fromNative(e, { file: join(dir, s) }, at);
        }
      }
    } catch (e) {
      for (const f of opened) native.close(f.handle);
      throw e;
    }
    try {
      const ck = Checkpoint.fromShards(indexPath, dir, idx.weight_map, shards);
      ck.indexMetadata = idx.metadata && typeof idx.metadata === 'object' ? { ...idx.metadata } : {};
      return ck;
    } catch (e) {
      for (const f of shards) native.close(f.handle);
      throw e;
    }
  }

  private static fromShards(indexPath: string, dir: string, weightMap: Record<string, string>, shards: NativeFile[]): Checkpoint {
    const idx = { weight_map: weightMap };
    const entries = new Map<string, Entry>();
    for (const f of shards) {
      f.tensors.forEach((t, i) => {
        const expected = idx.weight_map![t.name];
        if (expected === undefined) throw new FormatError('tensor is in a shard but not in the index', { file: f.path, tensor: t.name });
        if (join(dir, expected) !== f.path) throw new FormatError(`index places the tensor in ${expected}`, { file: f.path, tensor: t.name });
        if (entries.has(t.name)) throw new FormatError('tensor appears in two shards', { file: f.path, tensor: t.name });
        entries.set(t.name, toEntry(f, t, i));
      });
    }
    for (const name of Object.keys(idx.weight_map)) {
      if (!entries.has(name)) throw new FormatError(`index lists the tensor in ${idx.weight_map[name]}, which does not hold it`, { file: indexPath, tensor: name });
    }
    const metadata: Record<string, string> = { ...shards[0]?.metadata };
    return new Checkpoint(indexPath, shards, entries, metadata);
  }

  /** Each file's path and its own __metadata__ (one entry for a single file, one per shard). */
  shardMetadata(): { file: string; metadata: Record<string, string> }[] {
    return this.shards.map((s) => ({ file: s.path, metadata: { ...s.metadata } }));
  }

  /** Every tensor, in file order (shard by shard). */
  tensors(): TensorRef[] {
    const out: TensorRef[] = [];
    for (const e of this.entries.values()) out.push(refOf(e));
    return out;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorRef {
    return refOf(this.entry(name));
  }

  /**
   * The raw bytes of a tensor, zero-copy over the mapped file. Treat it as read-only: a write changes only
   * this process's copy-on-write page, or crashes the process when the file was mapped read-only (files larger
   * than memory).
   */
  bytes(name: string): Uint8Array {
    const e = this.entry(name);
    this.checkShard(e.shard);
    return new Uint8Array(loadNative().view(e.shard.handle, e.index));
  }

  /**
   * Throws an IoError naming the file when a file of this checkpoint shrank since it was opened (truncated or
   * rewritten in place while mapped): a read past its new end gave zeros, not the data (native/core/io/
   * mapped_file.h). Jobs call it after each tensor and before placing any output.
   */
  check(): void {
    for (const s of this.shards) this.checkShard(s);
  }

  /** The IoError check() would throw, or undefined. */
  failure(): WeightpressError | undefined {
    try {
      if (!this.closed) this.check();
    } catch (e) {
      return e as WeightpressError;
    }
    return undefined;
  }

  private checkShard(s: NativeFile): void {
    try {
      loadNative().check(s.handle);
    } catch (e) {
      throw fromNative(e, { file: s.path });
    }
  }

  /** Hints the kernel that a tensor will be read soon, or that its pages can be dropped. */
  advise(name: string, what: 'willneed' | 'dontneed'): void {
    const e = this.entry(name);
    loadNative().advise(e.shard.handle, e.index, what);
  }

  /** Drops this checkpoint's mappings (views taken from it stay valid until collected). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.shards) loadNative().close(s.handle);
  }

  private entry(name: string): Entry {
    if (this.closed) throw new WeightpressError('E_ARGUMENT', 'checkpoint is closed', { file: this.path });
    const e = this.entries.get(name);
    if (!e) throw new WeightpressError('E_ARGUMENT', 'no such tensor', { file: this.path, tensor: name });
    return e;
  }
}

function toEntry(f: NativeFile, t: NativeFile['tensors'][number], index: number): Entry {
  return {
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    numel: numel(t.shape),
    byteLength: t.end - t.begin,
    file: f.path,
    shard: f,
    index,
  };
}

/** The public fields of an entry (an object literal: faster than a rest spread over 10^5 entries). */
function refOf(e: Entry): TensorRef {
  return { name: e.name, dtype: e.dtype, shape: e.shape, numel: e.numel, byteLength: e.byteLength, file: e.file };
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

export { DTYPE_SIZE };
