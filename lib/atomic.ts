/**
 * Atomic output for files weightpress writes from TypeScript (GGUF exports, shard indexes): a temporary file in
 * the target's directory, renamed into place by finish(); abort() removes it. (Safetensors outputs use the native
 * writer, which follows the same rule: OutputFile in job.ts.)
 */
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { IoError } from './errors.js';

function ioError(e: unknown, file: string): IoError {
  return new IoError(`cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file, cause: e });
}

export class AtomicFile {
  readonly path: string;
  private readonly tmp: string;
  private fh: Awaited<ReturnType<typeof open>> | undefined;
  /** Bytes written so far. */
  position = 0;

  private constructor(path: string) {
    this.path = resolve(path);
    this.tmp = join(dirname(this.path), `.${basename(this.path)}.wp-${process.pid}-${Date.now().toString(36)}.tmp`);
  }

  /** Creates the temporary file; an IoError names the target when it cannot. */
  static async create(path: string): Promise<AtomicFile> {
    const f = new AtomicFile(path);
    try {
      f.fh = await open(f.tmp, 'wx');
    } catch (e) {
      throw ioError(e, f.path);
    }
    return f;
  }

  /** Appends bytes. */
  async write(b: Uint8Array): Promise<void> {
    try {
      let done = 0;
      while (done < b.byteLength) {
        const { bytesWritten } = await this.fh!.write(b, done, b.byteLength - done, this.position);
        done += bytesWritten;
        this.position += bytesWritten;
      }
    } catch (e) {
      throw ioError(e, this.path);
    }
  }

  /** Flushes, closes and renames the file into place. */
  async finish(): Promise<void> {
    try {
      await this.fh!.sync();
      await this.fh!.close();
      this.fh = undefined;
      await rename(this.tmp, this.path);
    } catch (e) {
      await this.abort();
      throw ioError(e, this.path);
    }
  }

  /** Removes the temporary file; safe to call at any time, and after finish(). */
  async abort(): Promise<void> {
    if (this.fh) await this.fh.close().catch(() => undefined);
    this.fh = undefined;
    await unlink(this.tmp).catch(() => undefined);
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
