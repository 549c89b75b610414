/**
 * Sharded outputs, as Hugging Face writes them: "model-00001-of-00003.safetensors" ... beside
 * "model.safetensors.index.json" ({"metadata": {"total_size": bytes, ...}, "weight_map": {tensor: shard file}}).
 * Every shard is a complete safetensors file (a weightpress shard holds the scheme of its own tensors); nothing is
 * renamed into place before every shard is written, and the index is written last.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { writeFileAtomic } from './atomic.js';
import { Checkpoint } from './checkpoint.js';
import { ArgumentError, IoError } from './errors.js';
import { FORMAT_KEY, FORMAT_VERSION, parseScheme, type FileScheme } from './format.js';
import { OutputFile, type TensorSink } from './job.js';

/** Hugging Face's default shard size (save_pretrained's max_shard_size="5GB"). */
export const DEFAULT_MAX_SHARD_SIZE = 5e9;

/** Parses a size: a number of bytes, or "500MB", "5GB", "1.5GiB" (KB/MB/GB decimal, KiB/MiB/GiB binary). */
export function parseSize(option: string, v: string | number): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v <= 0) throw new ArgumentError(`option ${option}: must be a positive number of bytes, got ${v}`);
    return Math.floor(v);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?\s*$/i.exec(v);
  if (!m) throw new ArgumentError(`option ${option}: expected a size such as 5GB, 500MB or 1048576, got ${JSON.stringify(v)}`);
  const unit = (m[2] ?? 'B').toUpperCase();
  const mult: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 };
  const bytes = Math.floor(Number(m[1]) * mult[unit]);
  if (bytes <= 0) throw new ArgumentError(`option ${option}: must be positive, got ${JSON.stringify(v)}`);
  return bytes;
}

/**
 * Where an output goes: a directory (an existing one, or a path ending in "/") gets "model.safetensors" or shards
 * of it; a file path "x.safetensors" is the single file, or names the shards "x-00001-of-0000N.safetensors" and the
 * index "x.safetensors.index.json" beside it.
 */
export function outputTarget(output: string): { dir: string; base: string; isDir: boolean } {
  const abs = resolve(output);
  if (/[\\/]$/.test(output) || (existsSync(abs) && statSync(abs).isDirectory())) return { dir: abs, base: 'model.safetensors', isDir: true };
  return { dir: dirname(abs), base: basename(abs), isDir: false };
}

/** Creates an output directory (and its parents) when it does not exist; an IoError when it cannot. */
export function ensureDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new IoError(`cannot create the output directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file: dir });
  }
}

export function indexName(base: string): string {
  return `${base}.index.json`;
}

/**
 * The shard files of one output, open as temporary files until finish(). `shards` gives each file's name (in
 * `dir`) and the header bytes to reserve.
 */
export class ShardWriter {
  private readonly files: OutputFile[] = [];
  private readonly names: string[][] = [];
  private readonly bytes: number[] = [];

  constructor(
    readonly dir: string,
    readonly shards: { file: string; reserve: number }[],
  ) {
    try {
      for (const s of shards) {
        this.files.push(new OutputFile(join(dir, s.file), s.reserve));
        this.names.push([]);
        this.bytes.push(0);
      }
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** The sink of shard k: what is added there is recorded in the index's weight_map. */
  sink(k: number): TensorSink {
    return {
      add: async (name, dtype, shape, data) => {
        await this.files[k].add(name, dtype, shape, data);
        this.names[k].push(name);
        this.bytes[k] += data.byteLength;
      },
    };
  }

  /**
   * Writes every shard's header (its metadata from `metadataOf(k)`), renames them into place, then, when there
   * is more than one shard and `indexFile` is given, writes that index with `indexMetadata`. Returns the output's
   * path: the single file, the index, or the directory (shards without an index: merge() writes it later).
   */
  async finish(metadataOf: (k: number) => Record<string, string>, indexFile: string | undefined, indexMetadata: Record<string, unknown> = {}): Promise<string> {
    for (let k = 0; k < this.files.length; k++) await this.files[k].finish(metadataOf(k));
    if (this.files.length === 1) return this.files[0].path;
    if (!indexFile) return this.dir;
    const weightMap: Record<string, string> = {};
    this.names.forEach((names, k) => names.forEach((n) => (weightMap[n] = this.shards[k].file)));
    const total = this.bytes.reduce((a, b) => a + b, 0);
    const path = join(this.dir, indexFile);
    await writeFileAtomic(path, JSON.stringify({ metadata: { total_size: total, ...indexMetadata }, weight_map: weightMap }, null, 2) + '\n');
    return path;
  }

  /** Removes every temporary file; safe after finish(). */
  abort(): void {
    for (const f of this.files) f.abort();
  }
}

/**
 * The scheme of a weightpress checkpoint: one file's, or the union of its shards' (each shard holds its own
 * tensors' entries). Throws FormatError when a shard is not a weightpress file or two shards describe one tensor.
 */
export function readScheme(ckpt: Checkpoint): FileScheme {
  const shards = ckpt.shardMetadata();
  if (shards.length === 1) return parseScheme(shards[0].metadata, shards[0].file);
  const merged: FileScheme = { format: 'weightpress', version: FORMAT_VERSION, tensors: {} };
  for (const { file, metadata } of shards) {
    const s = parseScheme(metadata, file);
    for (const [name, t] of Object.entries(s.tensors)) {
      if (merged.tensors[name]) throw new IoError('two shards describe the same tensor', { file, tensor: name });
      merged.tensors[name] = t;
    }
  }
  return merged;
}

/**
 * Writes `index` (default "model.safetensors.index.json") in `dir` for the weightpress shards `files` (file names
 * in `dir`; default: every "*-NNNNN-of-NNNNN.safetensors" there): the weight_map of every stored tensor, the total
 * size, and the merged scheme under metadata["weightpress"]. For outputs written by several workers
 * (quantizeTasks with `shards`). Throws FormatError for a shard that is not a weightpress file, IoError when a
 * shard is missing or the index cannot be written.
 */
export async function merge(dir: string, options: { files?: string[]; index?: string } = {}): Promise<string> {
  const { readdir } = await import('node:fs/promises');
  const d = resolve(dir);
  const files = options.files ?? (await readdir(d)).filter((f) => /-\d{5}-of-\d{5}\.safetensors$/.test(f)).sort();
  if (!files.length) throw new IoError('no shards to merge', { file: d });
  const weightMap: Record<string, string> = {};
  const merged: FileScheme = { format: 'weightpress', version: FORMAT_VERSION, tensors: {} };
  let total = 0;
  for (const f of files) {
    const ck = await Checkpoint.open(join(d, f));
    try {
      const s = parseScheme(ck.metadata, ck.path);
      for (const [name, t] of Object.entries(s.tensors)) {
        if (merged.tensors[name]) throw new IoError('two shards describe the same tensor', { file: ck.path, tensor: name });
        merged.tensors[name] = t;
      }
      for (const t of ck.tensors()) {
        weightMap[t.name] = f;
        total += t.byteLength;
      }
    } finally {
      ck.close();
    }
  }
  const path = join(d, options.index ?? indexName('model.safetensors'));
  await writeFileAtomic(path, JSON.stringify({ metadata: { total_size: total, [FORMAT_KEY]: JSON.stringify(merged) }, weight_map: weightMap }, null, 2) + '\n');
  return path;
}

/** Reads a shard index's JSON (for tools and tests). */
export async function readIndex(path: string): Promise<{ metadata: Record<string, unknown>; weight_map: Record<string, string> }> {
  return JSON.parse(await readFile(path, 'utf8'));
}
