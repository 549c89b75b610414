/** What every long job shares: cancellation through an AbortSignal, progress, and the atomic writer. */
import { registerOutput } from './atomic.js';
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

/**
 * A safetensors output file (native SafetensorsWriter over an OutputFile, lib/atomic.ts): unnamed until place()
 * links it at `path`; abort() (or the death of the process, on Linux) leaves nothing.
 */
export class OutputFile implements TensorSink {
  private readonly native = loadNative();
  private readonly handle: unknown;
  private open = true;
  private readonly unlist: () => void;

  /** `path` is where place() puts the file; errors name it. */
  constructor(
    readonly path: string,
    reserveHeaderBytes: number,
  ) {
    try {
      this.handle = this.native.writerOpen(path, reserveHeaderBytes);
    } catch (e) {
      throw fromNative(e, { file: path });
    }
    this.unlist = registerOutput(() => this.abort());
  }

  async add(name: string, dtype: string, shape: number[], data: Uint8Array): Promise<void> {
    const at = new Error();
    try {
      await this.native.writerAdd(this.handle, name, dtype, shape, data);
    } catch (e) {
      throw fromNative(e, { file: this.path, tensor: name }, at);
    }
  }

  /** Writes the header (with `metadata`) and flushes: the file is complete, not yet in place. */
  async finish(metadata: Record<string, string>): Promise<void> {
    const at = new Error();
    try {
      await this.native.writerFinish(this.handle, metadata);
    } catch (e) {
      throw fromNative(e, { file: this.path }, at);
    }
  }

  /** Links the finished file into place at `path`. */
  place(): void {
    try {
      this.native.writerPlace(this.handle);
    } catch (e) {
      throw fromNative(e, { file: this.path });
    } finally {
      this.open = false;
      this.unlist();
    }
  }

  /** Removes the temporary file; safe to call after place(). */
  abort(): void {
    if (this.open) this.native.writerAbort(this.handle);
    this.open = false;
    this.unlist();
  }
}

/** A progress event as a job reports it; the clock adds the timing (elapsedSeconds, bytesPerSecond, etaSeconds). */
export type ProgressEvent = Omit<Progress, 'elapsedSeconds' | 'bytesPerSecond' | 'etaSeconds'>;

/**
 * The timing of one job's progress (one phase): seconds since it started, input bytes per second so far, and the
 * seconds left at that rate. bytesDone is reported monotone (never below an earlier event's, never above bytesTotal),
 * so that a bar or an ETA never runs backwards when native threads report slices out of order.
 */
export class ProgressClock {
  private readonly t0 = performance.now();
  private most = 0;
  stamp(p: ProgressEvent): Progress {
    const bytesDone = Math.max(this.most, Math.min(p.bytesDone, p.bytesTotal));
    this.most = bytesDone;
    const elapsedSeconds = (performance.now() - this.t0) / 1000;
    const bytesPerSecond = elapsedSeconds > 0 && bytesDone > 0 ? bytesDone / elapsedSeconds : 0;
    const left = p.bytesTotal - bytesDone;
    const etaSeconds = left <= 0 ? 0 : bytesPerSecond > 0 ? left / bytesPerSecond : null;
    return { ...p, bytesDone, elapsedSeconds, bytesPerSecond, etaSeconds };
  }
}

// Callers that keep no clock of their own get one per callback, restarted when a new job's bytes start over.
const clocks = new WeakMap<(p: Progress) => void, { clock: ProgressClock; last: number }>();

/**
 * Calls `cb` with the event and its timing (`clock`, or one kept for the callback); a throwing callback does not
 * break the job.
 */
export function reportProgress(cb: ((p: Progress) => void) | undefined, p: ProgressEvent, clock?: ProgressClock): void {
  if (!cb) return;
  if (!clock) {
    let c = clocks.get(cb);
    if (!c || p.bytesDone < c.last) clocks.set(cb, (c = { clock: new ProgressClock(), last: 0 }));
    c.last = p.bytesDone;
    clock = c.clock;
  }
  try {
    cb(clock.stamp(p));
  } catch {
    // A throwing progress callback must not break the job.
  }
}
