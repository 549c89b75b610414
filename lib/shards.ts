/**
 * Sharded outputs, as Hugging Face writes them: "model-00001-of-00003.safetensors" ... beside
 * "model.safetensors.index.json" ({"metadata": {"total_size": bytes, ...}, "weight_map": {tensor: shard file}}).
 * Every shard is a complete safetensors file (a weightpress shard holds the scheme of its own tensors); nothing is
 * linked into place before every shard is written, and the index is written last.
 */
import { existsSync, mkdirSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { readFile, readdir, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { AtomicFile, checkOutputs, removeStaleTemps, writeFileAtomic } from './atomic.js';
import { Checkpoint } from './checkpoint.js';
import { ArgumentError, FormatError, IoError } from './errors.js';
import { FORMAT_KEY, FORMAT_VERSION, formatVersionFor, parseScheme, type FileScheme } from './format.js';
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

/**
 * Before a job's work starts: where `output` goes (outputTarget), with its main file (the single file, or the
 * index of shards) checked by checkOutputs against `inputs` (a directory, device node, FIFO, socket or an input
 * there is refused, the input only unless `force`), and the stale temporaries of dead runs removed from its
 * directory (removeStaleTemps). Throws ArgumentError.
 */
export function prepareOutput(output: string, inputs: string[], force: boolean): { dir: string; base: string; isDir: boolean } {
  const target = outputTarget(output);
  checkOutputs([join(target.dir, target.base), join(target.dir, indexName(target.base))], inputs, force);
  removeStaleTemps(target.dir);
  return target;
}

/**
 * Creates an output directory (and its parents) when it does not exist; returns the first directory it created
 * (for removeIfEmpty after a failure), or undefined. An IoError when it cannot.
 */
export function ensureDir(dir: string): string | undefined {
  try {
    return mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new IoError(`cannot create the output directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file: dir });
  }
}

/**
 * After a failed job: removes the directories ensureDir created for `dir` (from `dir` up to `created`), as long as
 * they are empty.
 */
export function removeIfEmpty(created: string | undefined, dir: string): void {
  if (!created) return;
  for (let d = resolve(dir); d.startsWith(created); d = dirname(d)) {
    try {
      rmdirSync(d);
    } catch {
      return; // not empty, or gone: leave it and its parents
    }
    if (d === created) return;
  }
}

export function indexName(base: string): string {
  return `${base}.index.json`;
}

/**
 * Splits items (in write order) into consecutive groups of at most `maxBytes` bytes each, the way Hugging Face's
 * save_pretrained shards: an item larger than the limit gets a group of its own. Always at least one group.
 */
export function groupBySize<T>(items: readonly T[], bytesOf: (item: T) => number, maxBytes: number): T[][] {
  const groups: T[][] = [[]];
  let size = 0;
  for (const item of items) {
    const bytes = bytesOf(item);
    if (size + bytes > maxBytes && groups[groups.length - 1].length) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1].push(item);
    size += bytes;
  }
  return groups;
}

/** The shard files of an output named `base` ("model.safetensors" -> "model-00001-of-00003.safetensors" ...). */
export function shardNames(base: string, count: number): string[] {
  if (count <= 1) return [base];
  const stem = base.replace(/\.safetensors$/, '');
  const n = String(count).padStart(5, '0');
  return Array.from({ length: count }, (_, k) => `${stem}-${String(k + 1).padStart(5, '0')}-of-${n}.safetensors`);
}

/** Parses "<stem>-00002-of-00005.safetensors" into its stem, k (1-based) and N; undefined for other names. */
export function parseShardName(file: string): { stem: string; k: number; n: number } | undefined {
  const m = /^(.*)-(\d{5})-of-(\d{5})\.safetensors$/.exec(file);
  return m ? { stem: m[1], k: Number(m[2]), n: Number(m[3]) } : undefined;
}

/**
 * The shard files of one output, each unnamed (lib/atomic.ts) until finish(), which links all of them (and the
 * index) into place only once every one is complete: a failure or an abort at any point leaves none of them, and
 * so does a killed process on Linux. `shards` gives each file's name (in `dir`) and the header bytes to reserve.
 */
export class ShardWriter {
  private readonly files: OutputFile[] = [];
  private readonly names: string[][] = [];
  private readonly bytes: number[] = [];
  private readonly placed: string[] = [];

  constructor(
    readonly dir: string,
    readonly shards: { file: string; reserve: number }[],
    /** The input's files: never replaced unless `force`, never removed as stale (checkOutputs). */
    private readonly protect: string[] = [],
    private readonly force = false,
  ) {
    const targets = checkOutputs(shards.map((s) => join(dir, s.file)), protect, force);
    try {
      for (const [k, s] of shards.entries()) {
        this.files.push(new OutputFile(targets[k], s.reserve));
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
   * Writes every shard's header (its metadata from `metadataOf(k)`) and, when there is more than one shard and
   * `indexFile` is given, the index with `indexMetadata`; then links them all into place, and removes the files
   * of an earlier output of the same name that this one does not replace (other shard counts, a stale index), as
   * Hugging Face's save_pretrained does. Returns the output's path: the single file, the index, or the directory
   * (shards without an index: merge() writes it later). Throws IoError; then nothing of this output is left.
   * `beforePlace` runs once everything is written, just before anything is placed (a last check of the input).
   */
  async finish(
    metadataOf: (k: number) => Record<string, string>,
    indexFile: string | undefined,
    indexMetadata: Record<string, unknown> = {},
    beforePlace: () => void = () => undefined,
  ): Promise<string> {
    const finals = this.shards.map((s) => s.file);
    for (let k = 0; k < this.files.length; k++) await this.files[k].finish(metadataOf(k));
    const writeIndex = this.files.length > 1 && indexFile !== undefined;
    let index: AtomicFile | undefined;
    try {
      if (writeIndex) {
        const weightMap: Record<string, string> = {};
        this.names.forEach((names, k) => names.forEach((n) => (weightMap[n] = finals[k])));
        const total = this.bytes.reduce((a, b) => a + b, 0);
        index = await AtomicFile.create(checkOutputs([join(this.dir, indexFile)], this.protect, this.force)[0]);
        await index.write(Buffer.from(JSON.stringify({ metadata: { total_size: total, ...indexMetadata }, weight_map: weightMap }, null, 2) + '\n', 'utf8'));
        finals.push(indexFile);
      }
      beforePlace();
      for (const f of this.files) {
        f.place();
        this.placed.push(f.path);
      }
      if (index) {
        await index.finish();
        this.placed.push(index.path);
      }
    } catch (e) {
      await index?.abort();
      this.abort();
      throw e;
    }
    await this.removeStale(finals);
    if (this.files.length === 1) return join(this.dir, finals[0]);
    return writeIndex ? join(this.dir, indexFile!) : this.dir;
  }


  /** Shards and the index of an earlier output with the same stem that this output did not write. */
  private async removeStale(written: string[]): Promise<void> {
    const base = this.shards.length === 1 ? this.shards[0].file : `${parseShardName(this.shards[0].file)!.stem}.safetensors`;
    const stem = base.replace(/\.safetensors$/, '');
    const partial = this.shards.length > 1 && !written.some((f) => f.endsWith('.index.json'));
    if (partial) return; // some shards of a larger output (a worker's share): the others are not stale
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch {
      return;
    }
    for (const f of entries) {
      const p = parseShardName(f);
      const stale = (p && p.stem === stem) || f === indexName(base);
      const path = join(this.dir, f);
      const input = this.protect.some((q) => resolve(q) === path);
      if (stale && !written.includes(f) && !input) await unlink(path).catch(() => undefined);
    }
  }

  /** Removes every unplaced file and whatever this output already placed; safe after finish(). */
  abort(): void {
    for (const f of this.files) f.abort();
    for (const p of this.placed) rmSync(p, { force: true });
    this.placed.length = 0;
  }
}

/** A scheme's entries re-keyed in the order of `order` (names not in it keep their order, after the others). */
function inOrder(tensors: FileScheme['tensors'], order: string[]): FileScheme['tensors'] {
  const rank = new Map(order.map((n, i) => [n, i]));
  const sorted = Object.keys(tensors).sort((a, b) => (rank.get(a) ?? Infinity) - (rank.get(b) ?? Infinity));
  return Object.fromEntries(sorted.map((n) => [n, tensors[n]]));
}

/**
 * The scheme of a weightpress checkpoint: one file's, or the union of its shards' (each shard holds its own
 * tensors' entries), in the order of the index's own scheme when it has one (the input's order). Throws
 * FormatError when a shard is not a weightpress file or two shards describe one tensor.
 */
export function readScheme(ckpt: Checkpoint): FileScheme {
  const shards = ckpt.shardMetadata();
  if (shards.length === 1 && !ckpt.indexMetadata) return parseScheme(shards[0].metadata, shards[0].file);
  const merged: FileScheme = { format: 'weightpress', version: FORMAT_VERSION, tensors: {} };
  for (const { file, metadata } of shards) {
    const s = parseScheme(metadata, file);
    for (const [name, t] of Object.entries(s.tensors)) {
      if (merged.tensors[name]) throw new FormatError('two shards describe the same tensor', { file, tensor: name });
      merged.tensors[name] = t;
    }
  }
  const own = ckpt.indexMetadata?.[FORMAT_KEY];
  if (typeof own === 'string') {
    let order: string[] = [];
    try {
      order = Object.keys((JSON.parse(own) as FileScheme).tensors ?? {});
    } catch {
      // the shards' schemes are authoritative; the index's copy only gives the order
    }
    merged.tensors = inOrder(merged.tensors, order);
  }
  return merged;
}

/**
 * Writes the index (default "model.safetensors.index.json") in `dir` for the weightpress shards there (every
 * "<stem>-NNNNN-of-NNNNN.safetensors" of the index's stem): the weight_map of every stored tensor, the total size,
 * and the merged scheme under metadata["weightpress"], its tensors in the order of `order` (the plan's tensor names,
 * so that a job written by several workers gives the index a single run gives). For outputs written shard by shard
 * (quantizeTasks with `shards`). Throws IoError when the directory cannot be read, a shard is missing or shards of
 * another shard count are there, FormatError for a shard that is not a weightpress file.
 */
export async function merge(dir: string, options: { index?: string; order?: string[] } = {}): Promise<string> {
  const d = resolve(dir);
  const index = options.index ?? indexName('model.safetensors');
  const stem = index.replace(/\.safetensors\.index\.json$/, '');
  let entries: string[];
  try {
    entries = await readdir(d);
  } catch (e) {
    throw new IoError(`cannot read the directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file: d });
  }
  const shards = entries.map((f) => ({ f, p: parseShardName(f) })).filter((x) => x.p && x.p.stem === stem);
  if (!shards.length) throw new IoError(`no shards named ${stem}-NNNNN-of-NNNNN.safetensors to merge`, { file: d });
  const counts = new Set(shards.map((x) => x.p!.n));
  if (counts.size > 1) throw new IoError(`shards of different counts (${[...counts].join(', ')}) are mixed in the directory`, { file: d });
  const n = shards[0].p!.n;
  const files = shardNames(`${stem}.safetensors`, n);
  const missing = files.filter((f) => !entries.includes(f));
  if (missing.length) throw new IoError(`${missing.length} of ${n} shards are missing: ${missing.join(', ')}`, { file: d });
  const weightMap: Record<string, string> = {};
  const merged: FileScheme = { format: 'weightpress', version: FORMAT_VERSION, tensors: {} };
  let total = 0;
  for (const f of files) {
    const ck = await Checkpoint.open(join(d, f));
    try {
      const s = parseScheme(ck.metadata, ck.path);
      for (const [name, t] of Object.entries(s.tensors)) {
        if (merged.tensors[name]) throw new FormatError('two shards describe the same tensor', { file: ck.path, tensor: name });
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
  if (options.order) {
    merged.tensors = inOrder(merged.tensors, options.order);
  }
  const path = join(d, index);
  merged.version = formatVersionFor(merged.tensors);
  await writeFileAtomic(path, JSON.stringify({ metadata: { total_size: total, [FORMAT_KEY]: JSON.stringify(merged) }, weight_map: weightMap }, null, 2) + '\n');
  return path;
}

/** Reads a shard index's JSON (for tools and tests). */
export async function readIndex(path: string): Promise<{ metadata: Record<string, unknown>; weight_map: Record<string, string> }> {
  return JSON.parse(await readFile(path, 'utf8'));
}
