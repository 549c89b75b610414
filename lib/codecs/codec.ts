/**
 * The codec interface: one storage scheme per codec (how a tensor is split, what is stored, how it is encoded and
 * decoded, its exact size). quantize.ts, decode.ts and plan.ts drive codecs through this interface only; each
 * codec's scheme JSON, sizes and decode live in its own file under lib/codecs/ (docs/ARCHITECTURE.md).
 */
import type { Calibration } from '../calibration.js';
import type { Checkpoint, TensorRef } from '../checkpoint.js';
import type { StoredMetrics, TensorScheme } from '../format.js';
import type { Importance } from '../importance.js';
import type { Cancel, TensorSink } from '../job.js';
import type { MethodEntry } from '../methods/registry.js';
import type { OptionName, OptionSpec } from '../methods/options.js';
import type { RuleRef } from '../recipe.js';
import type { TensorReport } from '../report.js';
import type { ResolvedQuantizeOptions } from '../validate.js';

/** A registered codec's name (derived from the registry, lib/codecs/registry.ts). */
export type { CodecName, QuantizingCodecName } from './registry.js';

/**
 * The options of one task as plain JSON: the resolved quantize options without the run's callbacks and runtime
 * settings (signal, onProgress, threads, device), which quantizeTasks() takes separately.
 */
export type TaskOptions = Omit<ResolvedQuantizeOptions, 'signal' | 'onProgress' | 'force' | 'threads' | 'device' | 'warnings' | 'maxShardSize' | 'recipe' | 'preset' | 'rules' | 'maxBpw' | 'targetSize'>;

/**
 * One tensor's work: JSON-serializable, so that a plan can be written down, split and run elsewhere.
 * `layout` is the codec's own (sizes, slicing; for network granularity the solved codebook).
 */
export interface TensorTask {
  tensor: TensorRef;
  /** A registered codec's name (CodecName); checked against the registry when a plan is run. */
  codec: string;
  method: string;
  options: TaskOptions;
  layout: Record<string, unknown>;
  /** The recipe rule that chose the task's codec and options (lib/recipe.ts); recorded in the scheme. */
  rule?: RuleRef;
}

/** What a codec's encode needs from the job that runs it. */
export interface EncodeJob {
  ckpt: Checkpoint;
  /** Where the codec writes its stored tensors (one output file, or one shard). */
  out: TensorSink;
  cancel: Cancel;
  /** CPU threads (0 = all) and where bandwidth-bound passes run. */
  threads: number;
  device: 'auto' | 'cpu' | 'cuda';
  importance?: Importance;
  /** Layer-input Gram matrices, for methods that read them (MethodEntry.calibration). */
  calibration?: Calibration;
  /** Things the caller should know; a codec appends to it. */
  warnings: string[];
  /** Within-tensor progress: done out of total units (slices, blocks), for the progress bar. */
  onTensorProgress?: (done: number, total: number) => void;
  /** Quantizers the caller already has, by tensor name (fromTfjs: learned in training); the scalar codec stores them. */
  given?: ReadonlyMap<string, GivenQuantizers>;
}

/**
 * A tensor's quantizers from elsewhere (trained end to end, or a calibrated fit): one scalar quantizer per slice
 * (L ascending levels and L − 1 thresholds each, concatenated over slices), the values the codes are assigned from
 * (default the tensor itself; the error is still measured against the tensor), and what to record in the scheme's
 * params under `key`.
 */
export interface GivenQuantizers {
  levels: Float64Array;
  thresholds: Float64Array;
  assignFrom?: Float32Array;
  key: string;
  recorded: Record<string, unknown>;
}

/** What encoding one tensor gives: its scheme entry, its metrics, and its report row. */
export interface EncodeResult {
  scheme: TensorScheme;
  metrics: StoredMetrics;
  report: (m: StoredMetrics) => TensorReport;
}

/** What decoding reads the stored tensors from: a weightpress file, or (lib/report.ts) the parts a codec just wrote. */
export type TensorSource = Pick<Checkpoint, 'path' | 'has' | 'info' | 'bytes'>;

export interface DecodeJob {
  ckpt: TensorSource;
  threads: number;
  cancel: Cancel;
  /** Values beyond the output dtype's range: saturate (and add their count to `saturated`), or E_RANGE. */
  allowOverflow: boolean;
  /** Values saturated so far (allowOverflow). */
  saturated: number;
}

/** How a codec plans a tensor: a layout, or a hand-over to another codec with the reason (a warning). */
export type PlanResult = { layout: Record<string, unknown> } | { fallback: { codec: string; options: Partial<TaskOptions> }; warning: string };

export interface Codec {
  /** Its name in the API, the CLI (--codec) and the file format. */
  name: string;
  /** One line for --help. */
  summary: string;
  /**
   * Its levels always include 0 (the int codec: zero points within the code range, as compressed-tensors and
   * GPTQ/AWQ kernels store them), so its min-max peer spans [min(x, 0), max(x, 0)].
   */
  zeroLevel?: boolean;
  /** The options of quantize() the codec reads (declared once, in the codec's file). */
  options?: readonly OptionSpec[];
  /** Progress phase of its tensors. */
  phase: 'quantize' | 'copy';
  /**
   * Where its tensors go in the file: 'first' (each tensor's stored parts end 8-byte aligned), or 'last' (stored
   * as they are, ordered by descending element size so that every tensor is aligned for its dtype).
   */
  placement: 'first' | 'last';
  /** The codec's own defaults of shared options it reads, where they differ from the option's (vector: F32 codebooks). */
  defaults?: Partial<Record<OptionName, unknown>>;
  /** A problem with the resolved options for this codec (checked when options are resolved), or undefined. */
  checkOptions?(o: TaskOptions): string | undefined;
  /** Names of the tensors it writes for tensor `name` (checked against the input's names before any work). */
  storedNames(name: string): string[];
  /** Sizes and slicing of a tensor, or a hand-over to another codec. */
  plan(t: TensorRef, o: TaskOptions): PlanResult;
  /** Work that needs every task of this codec before any is encoded (e.g. one codebook for the whole network). */
  prepare?(tasks: TensorTask[], job: Omit<EncodeJob, 'out'>, method: MethodEntry): Promise<void>;
  /** Header bytes to reserve for the task's entries (scheme, metrics, tensor entries). */
  headerBytes(task: TensorTask): number;
  /** Data bytes the task writes at most (exact for fixed-length codes; entropy-coded streams are smaller). */
  outputBytes(task: TensorTask): number;
  encode(task: TensorTask, job: EncodeJob, method: MethodEntry): Promise<EncodeResult>;
  /** Checks the codec's fields of a stored scheme entry; `bad` makes the FormatError. */
  parse(s: TensorScheme, bad: (problem: string) => Error): void;
  /** Checks the stored tensors of an entry against its scheme (names, dtypes, sizes), before any decoding. */
  check(ckpt: Checkpoint, name: string, s: TensorScheme): void;
  /** The dense tensor in `dtype` (a view of the file when nothing changes). */
  decode(name: string, s: TensorScheme, dtype: string, job: DecodeJob): Promise<Uint8Array>;
  /** The report's granularity column for a stored entry. */
  granularity(s: TensorScheme): TensorReport['granularity'];
}

/** Header bytes of one safetensors entry for `name` with this shape (a generous estimate). */
export function entryBytes(t: TensorRef): number {
  return 160 + t.name.length * 2 + t.shape.length * 21;
}
