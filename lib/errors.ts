/**
 * The one error type of weightpress. Every failure, native or not, reaches the caller as a WeightpressError
 * (or a subclass) with a stable `code`, and the file and tensor it concerns where known.
 */
export type ErrorCode =
  | 'E_ARGUMENT'
  | 'E_FORMAT'
  | 'E_DTYPE'
  | 'E_IO'
  | 'E_NONFINITE'
  | 'E_CANCELLED'
  | 'E_INTERNAL'
  | 'E_CUDA'
  | 'E_RANGE'
  | 'E_LOAD';

export interface ErrorContext {
  file?: string;
  tensor?: string;
  cause?: unknown;
}

export class WeightpressError extends Error {
  readonly code: ErrorCode;
  readonly file?: string;
  readonly tensor?: string;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = 'WeightpressError';
    this.code = code;
    if (context.file !== undefined) this.file = context.file;
    if (context.tensor !== undefined) this.tensor = context.tensor;
  }

  /** One line for a terminal: "E_FORMAT model.safetensors: tensor "w": problem". */
  describe(): string {
    const where = [this.file, this.tensor !== undefined ? `tensor "${this.tensor}"` : undefined].filter(Boolean).join(': ');
    return `${this.code} ${where ? where + ': ' : ''}${this.message}`;
  }
}

export class ArgumentError extends WeightpressError {
  constructor(message: string, context?: ErrorContext) {
    super('E_ARGUMENT', message, context);
    this.name = 'ArgumentError';
  }
}
export class FormatError extends WeightpressError {
  constructor(message: string, context?: ErrorContext) {
    super('E_FORMAT', message, context);
    this.name = 'FormatError';
  }
}
export class DtypeError extends WeightpressError {
  constructor(message: string, context?: ErrorContext) {
    super('E_DTYPE', message, context);
    this.name = 'DtypeError';
  }
}
export class IoError extends WeightpressError {
  constructor(message: string, context?: ErrorContext) {
    super('E_IO', message, context);
    this.name = 'IoError';
  }
}
export class NonFiniteError extends WeightpressError {
  constructor(message: string, context?: ErrorContext) {
    super('E_NONFINITE', message, context);
    this.name = 'NonFiniteError';
  }
}
export class CudaError extends WeightpressError {
  constructor(message: string, context?: ErrorContext) {
    super('E_CUDA', message, context);
    this.name = 'CudaError';
  }
}
/** A value outside the range of the dtype it must be stored in (an F16 codebook or scale, a decode to F16/BF16). */
export class OverflowError extends WeightpressError {
  constructor(message: string, context?: ErrorContext) {
    super('E_RANGE', message, context);
    this.name = 'OverflowError';
  }
}
export class CancelledError extends WeightpressError {
  constructor(message = 'operation cancelled', context?: ErrorContext) {
    super('E_CANCELLED', message, context);
    this.name = 'CancelledError';
  }
}

const byCode: Record<string, new (m: string, c?: ErrorContext) => WeightpressError> = {
  E_ARGUMENT: ArgumentError,
  E_FORMAT: FormatError,
  E_DTYPE: DtypeError,
  E_IO: IoError,
  E_NONFINITE: NonFiniteError,
  E_CANCELLED: CancelledError,
  E_CUDA: CudaError,
  E_RANGE: OverflowError,
};

/**
 * Turns whatever a native call threw into a WeightpressError, filling in the file and tensor the caller
 * knows when the native side did not. The JS stack of `at` (taken before the async call) is kept.
 */
export function fromNative(e: unknown, context: ErrorContext = {}, at?: Error): WeightpressError {
  if (e instanceof WeightpressError) {
    if ((e.file !== undefined || context.file === undefined) && (e.tensor !== undefined || context.tensor === undefined)) return e;
    const Cls = byCode[e.code];
    const ctx = { file: e.file ?? context.file, tensor: e.tensor ?? context.tensor, cause: e.cause };
    return Cls ? new Cls(e.message, ctx) : new WeightpressError(e.code, e.message, ctx);
  }
  const n = e as { code?: string; message?: string; file?: string; tensor?: string; weightpress?: boolean };
  if (n && typeof n === 'object' && n.weightpress) {
    const ctx = { file: n.file ?? context.file, tensor: n.tensor ?? context.tensor };
    const Cls = n.code ? byCode[n.code] : undefined;
    const err = Cls ? new Cls(n.message ?? 'native error', ctx) : new WeightpressError((n.code as ErrorCode) ?? 'E_INTERNAL', n.message ?? 'native error', ctx);
    if (at?.stack) err.stack = `${err.name}: ${err.message}\n${at.stack.split('\n').slice(1).join('\n')}`;
    return err;
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new WeightpressError('E_INTERNAL', msg, { ...context, cause: e });
}
