/** What every long job shares: cancellation through an AbortSignal, progress, and the atomic writer. */
import { CancelledError, fromNative } from './errors.js';
import { loadNative } from './load.js';
import type { Progress } from './validate.js';

/** Bridges an AbortSignal to the Int32Array flag that native workers poll. */
export class Cancel {
  readonly flag = new Int32Array(1);
  private readonly off?: () => void;
  constructor(private readonly signal?: AbortSignal) {
    if (signal) {
      const on = () => {
        this.flag[0] = 1;
      };
      if (signal.aborted) on();
      signal.addEventListener('abort', on, { once: true });
      this.off = () => signal.removeEventListener('abort', on);
    }
  }
  check(file?: string): void {
    if (this.signal?.aborted || this.flag[0]) throw new CancelledError('operation cancelled', { file });
  }
  dispose(): void {
    this.off?.();
  }
}

/** Where a codec writes the tensors it stores. */
export interface TensorSink {
  add(name: string, dtype: string, shape: number[], data: Uint8Array): Promise<void>;
}

/** The output file, written to a temporary file next to it and renamed into place by finish(). */
export class OutputFile implements TensorSink {
  private readonly native = loadNative();
  private readonly handle: unknown;
  private open = true;

  /**
   * `path` is where the file is written (a temporary file beside it until finish()); errors name `shownAs` (the
   * file the user asked for, when `path` is a staged name for it; default `path`).
   */
  constructor(
    readonly path: string,
    reserveHeaderBytes: number,
    private readonly shownAs = path,
  ) {
    try {
      this.handle = this.native.writerOpen(path, reserveHeaderBytes);
    } catch (e) {
      throw this.error(e);
    }
  }

  /** A native error about `path`, told about `shownAs` instead. */
  private error(e: unknown, tensor?: string, at?: Error) {
    const n = e as { file?: string; message?: string };
    if (this.shownAs !== this.path && n && typeof n === 'object') {
      if (n.file === this.path) n.file = this.shownAs;
      if (typeof n.message === 'string') n.message = n.message.split(this.path).join(this.shownAs);
    }
    return fromNative(e, { file: this.shownAs, tensor }, at);
  }

  async add(name: string, dtype: string, shape: number[], data: Uint8Array): Promise<void> {
    const at = new Error();
    try {
      await this.native.writerAdd(this.handle, name, dtype, shape, data);
    } catch (e) {
      throw this.error(e, name, at);
    }
  }

  async finish(metadata: Record<string, string>): Promise<void> {
    const at = new Error();
    try {
      await this.native.writerFinish(this.handle, metadata);
      this.open = false;
    } catch (e) {
      throw this.error(e, undefined, at);
    }
  }

  /** Removes the temporary file; safe to call after finish(). */
  abort(): void {
    if (this.open) this.native.writerAbort(this.handle);
    this.open = false;
  }
}

export function reportProgress(cb: ((p: Progress) => void) | undefined, p: Progress): void {
  if (!cb) return;
  try {
    cb(p);
  } catch {
    // A throwing progress callback must not break the job.
  }
}
