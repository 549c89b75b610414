/**
 * Outputs that appear complete or not at all, and never hurt an input.
 *
 * - Every output file is created by the native OutputFile (native/core/io/output_file.h): on Linux unnamed
 *   (O_TMPFILE) in the target's directory and linked into place at the end, so that even SIGKILL leaves nothing;
 *   elsewhere a hidden temporary file ".<name>.wp-<pid>@<host>.<8 hex>.tmp", which removeStaleTemps() deletes at
 *   a later run once its process is gone.
 * - checkOutputs() refuses, before any work, an output that is a directory, a device node, a FIFO or a socket,
 *   or the same file as an input (through symlinks and hard links too) unless `force`.
 * - A symlink output is written through: the file it points to is replaced, the link stays (finalPath()).
 * - The live outputs of this process are listed, so that a signal handler can remove them synchronously
 *   (abortAllOutputs(), used by the CLI on a second Ctrl-C, SIGTERM, SIGHUP or SIGQUIT).
 */
import { lstatSync, readdirSync, realpathSync, statSync, unlinkSync, type Stats } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';

import { ArgumentError, fromNative } from './errors.js';
import { loadNative } from './load.js';

// ---- live outputs --------------------------------------------------------------------------------------------

const live = new Set<() => void>();

/** Lists a synchronous abort of an output being written; returns the function that unlists it. */
export function registerOutput(abort: () => void): () => void {
  live.add(abort);
  return () => live.delete(abort);
}

/** Removes every output this process is writing (synchronous: safe in a signal handler before exiting). */
export function abortAllOutputs(): void {
  for (const abort of [...live]) {
    try {
      abort();
    } catch {
      // keep going: the others must go too
    }
  }
  live.clear();
}

// ---- where an output goes ------------------------------------------------------------------------------------

function kindOf(st: Stats): string | undefined {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return undefined;
}

/**
 * The file an output path writes: the path itself, or, for a symlink, the file it points to (written through).
 * Throws ArgumentError for a dangling symlink, and for a path that is a directory, a device node, a FIFO or a
 * socket (weightpress replaces regular files only).
 */
export function finalPath(path: string): string {
  let p = resolve(path);
  let l: Stats | undefined;
  try {
    l = lstatSync(p);
  } catch {
    return p; // nothing there yet
  }
  if (l.isSymbolicLink()) {
    try {
      p = realpathSync(p);
    } catch {
      throw new ArgumentError(`option output: ${p} is a symlink to nothing; remove it or write elsewhere`, { file: p });
    }
  }
  const kind = kindOf(statSync(p));
  if (kind) throw new ArgumentError(`option output: ${p} is ${kind}; weightpress writes regular files only`, { file: p });
  return p;
}

function sameFile(a: string, b: string): boolean {
  try {
    const x = statSync(a), y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/**
 * Checks the files an output will write (`finals`, absolute) before any work starts: each must be writable as a
 * regular file (finalPath), and none may be one of `inputs` (same device and inode) unless `force`. Returns the
 * paths to write (symlinks resolved). Throws ArgumentError naming the output.
 */
export function checkOutputs(finals: string[], inputs: string[], force = false): string[] {
  return finals.map((f) => {
    const p = finalPath(f);
    const hit = inputs.find((i) => sameFile(i, p));
    if (hit && !force)
      throw new ArgumentError(`option output: ${f} is the input ${hit}; write the output elsewhere, or pass --force (force: true) to replace the input`, { file: f });
    return p;
  });
}

// ---- stale temporaries -----------------------------------------------------------------------------------------

/** This host's name as the native OutputFile writes it into temporary names. */
function hostTag(): string {
  return (hostname() || 'host').replace(/[/.]/g, '_');
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporary files that processes of this host which are no longer running left in `dir` (killed where
 * O_TMPFILE is unsupported), by their names: ours (".x.wp-<pid>@<host>.<hex>.tmp") and those of earlier versions
 * (".x.wp-<pid>-<time>.tmp", ".x.wp-staged-<pid>"). Never fails; returns the names removed.
 */
export function removeStaleTemps(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const host = hostTag();
  const removed: string[] = [];
  for (const f of entries) {
    const m =
      /^\..+\.wp-(\d+)@([^.]+)\.[0-9a-f]{8}\.tmp$/.exec(f) ??
      /^\..+\.wp-(\d+)-[0-9a-z]+\.tmp$/.exec(f) ??
      /^\..+\.wp-staged-(\d+)$/.exec(f);
    if (!m) continue;
    if (m[2] !== undefined && m[2] !== host) continue; // another machine's (a shared file system): not ours to judge
    if (alive(Number(m[1]))) continue;
    try {
      unlinkSync(join(dir, f));
      removed.push(f);
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}

// ---- atomic files written from TypeScript -----------------------------------------------------------------------

/** An output file (GGUF exports, shard indexes, plans) written through the native OutputFile; see the top. */
export class AtomicFile {
  readonly path: string;
  private readonly native = loadNative();
  private handle: unknown;
  private unlist: () => void = () => undefined;
  /** Bytes written so far. */
  position = 0;

  private constructor(path: string) {
    this.path = path;
  }

  /** Creates the temporary file for `path` (symlinks written through); an IoError names the target when it cannot. */
  static async create(path: string): Promise<AtomicFile> {
    const f = new AtomicFile(finalPath(path));
    try {
      f.handle = f.native.outputOpen(f.path);
    } catch (e) {
      throw fromNative(e, { file: f.path });
    }
    f.unlist = registerOutput(() => f.native.outputAbort(f.handle));
    return f;
  }

  /** Appends bytes. */
  async write(b: Uint8Array): Promise<void> {
    try {
      await this.native.outputWrite(this.handle, b, this.position);
    } catch (e) {
      throw fromNative(e, { file: this.path });
    }
    this.position += b.byteLength;
  }

  /** Flushes and links the file into place. */
  async finish(): Promise<void> {
    try {
      await this.native.outputPlace(this.handle);
    } catch (e) {
      await this.abort();
      throw fromNative(e, { file: this.path });
    } finally {
      this.unlist();
    }
  }

  /** Removes the temporary file; safe to call at any time, and after finish(). */
  async abort(): Promise<void> {
    this.native.outputAbort(this.handle);
    this.unlist();
  }
}

/** Writes a whole file atomically. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const f = await AtomicFile.create(path);
  try {
    await f.write(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    await f.finish();
  } catch (e) {
    await f.abort();
    throw e;
  }
}
