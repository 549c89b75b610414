/** The shape of what the native addon exports (native/addon/*.cpp). Loaded by load.ts. */

export interface NativeTensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface NativeFile {
  handle: unknown;
  path: string;
  size: number;
  dataOffset: number;
  writableViews: boolean;
  tensors: NativeTensorEntry[];
  metadata: Record<string, string>;
}

export interface NativeQuantizeStats {
  n: number;
  slices: number;
  sse: number;
  signal: number;
  maxAbsErr: number;
  levelsUsed: number;
  /** Where the bandwidth-bound passes ran: 'cpu' or 'cuda'. */
  backend: string;
}

export interface NativeSolverParams {
  k?: number;
  seed?: number;
  maxIter?: number;
  symmetric?: boolean;
  step?: 'mse' | 'minmax';
  /** sparse-*: penalty weight; ecsq: Lagrange multiplier. */
  lambda?: number;
  /** sparse-l1l2: l2 weight. */
  lambda2?: number;
  /** sparse-*: search the penalty until this many distinct values. */
  targetValues?: number;
  /** ecsq*: target entropy of the codes, bits per weight. */
  rate?: number;
  /** Algorithm switches for tests and benches (docs/SPARSE.md): sparse-l1/l1l2 jump weights, sparse-l0's DP, the DP's bound. */
  penalty?: 'standardized' | 'uniform';
  l0Algorithm?: 'monge' | 'pelt' | 'naive';
  dpBound?: boolean;
  /** CPU threads for the solve (0 = all). */
  threads?: number;
  /** qn: the level set Y (ascending) and the fit's schedule (native/core/qn/params.h). */
  levels?: number[];
  tStart?: number;
  tSlope?: number;
  epochs?: number;
  stepsPerEpoch?: number;
  learningRate?: number;
  learnBiases?: boolean;
}

/** A Quantization Networks function as the addon takes it (lib/qn.ts documents it: QnFunction). */
export interface NativeQnFunction {
  levels: ArrayLike<number>;
  alpha: number;
  beta: number;
  biases: ArrayLike<number>;
  offset?: number;
}

/** A fitted function as the addon returns it, with its hard quantizer (levels and thresholds, ascending). */
export interface NativeQnFitted {
  alpha: number;
  beta: number;
  offset: number;
  biases: Float64Array;
  quantizerLevels: Float64Array;
  quantizerThresholds: Float64Array;
}

/** One epoch of a qn fit: its temperature, the soft loss of its last step and the hard objective after it (relative). */
export interface QnEpoch {
  epoch: number;
  temperature: number;
  loss: number;
  objective: number;
}

export interface NativeQuantizeParams {
  /** The method's own options, for its solver (one nested object; native/addon/common.cpp, solver_params_of). */
  solverParams?: NativeSolverParams;
  /** Use this quantizer for every slice instead of solving (e.g. one codebook for the whole network). */
  fixedLevels?: Float64Array;
  fixedThresholds?: Float64Array;
  /** One quantizer per slice instead of solving: L levels and L - 1 thresholds per slice, concatenated. */
  fixedSlices?: { levels: Float64Array; thresholds: Float64Array };
  /** Bits per stored code: bits (default, packed) or 8 (one byte per code, what entropy coders take). */
  packBits?: number;
  method: string;
  bits: number;
  granularity: 'tensor' | 'row' | 'group';
  sliceSize: number;
  codebookDtype: 'F32' | 'F16';
  threads?: number;
  /** cpu, cuda, or auto (CUDA when a device answers; never fails for lack of one). */
  device?: 'auto' | 'cpu' | 'cuda';
}

export interface NativeEntropyStats {
  coder: 'huffman' | 'ans';
  n: number;
  alphabet: number;
  chunk: number;
  chunks: number;
  /** Entropy of the symbols, bits per symbol. */
  entropy: number;
  /** Average code length, bits per symbol. */
  avgCodeLength: number;
  tableBytes: number;
  payloadBytes: number;
  totalBytes: number;
}

export interface NativeBlockParams {
  bits?: number;
  blockSize?: number;
  scale?: 'absmax' | 'optimal';
  table?: 'tensor' | 'row';
  solver?: string;
  rounds?: number;
  /** The table solver's options (one nested object, as quantize takes them). */
  solverParams?: NativeSolverParams;
  tol?: number;
  doubleQuant?: { bits: number; superBlock: number; dtype?: 'F16' | 'F32' } | null;
  packBits?: number;
  threads?: number;
  scaleSteps?: number;
  scaleStepsLater?: number;
  scaleSpan?: number;
  lsIters?: number;
  dqSteps?: number;
  histBins?: number;
  lloydSteps?: number;
  fixedTable?: Float32Array | number[];
}

export interface NativeBlockStats {
  n: number;
  blocks: number;
  tables: number;
  sse: number;
  signal: number;
  maxAbsErr: number;
  weightedDistortion: number;
  rounds: number;
  history: number[];
  historySteps: ('init' | 'scale' | 'table')[];
  codeEntropy: number;
  levelsUsed: number;
  bits: number;
  bitsPerWeight: number;
}

export interface NativeBlockSizes {
  codesBytes: number;
  scalesBytes: number;
  tableBytes: number;
  superBytes: number;
  rows: number;
  blocks: number;
  superBlocks: number;
  tables: number;
  bits: number;
  bitsPerWeight: number;
}

/** Integer group quantization (native/addon/intq.cpp; docs/FORMAT.md "Integer group tensors"). */
export interface NativeIntParams {
  /** 2-8. */
  bits: number;
  /** Weights per group along a row (>= 1; at least the row: one scale per row). */
  groupSize: number;
  symmetric: boolean;
  /** 'mse' (least-squared-error scale search, the default) or 'minmax'. */
  step?: 'mse' | 'minmax';
  scaleDtype: 'F16' | 'BF16' | 'F32';
  /** F32 scales rounded to F16's 11 significant bits (the F16 scales' range fallback). */
  f16Precision?: boolean;
  /** MSE search: shrink factors tried per group (default 32). */
  grid?: number;
  /** MSE search: least-squares refits after the grid (default 2). */
  refits?: number;
  /** Bits per stored code: 0 (= bits, packed) or 8 (one byte per code). */
  packBits?: number;
  threads?: number;
}

export interface NativeIntStats {
  n: number;
  groups: number;
  sse: number;
  signal: number;
  maxAbsErr: number;
  weightedDistortion: number;
  zeroGroups: number;
  bits: number;
  bitsPerWeight: number;
}

export interface NativeIntSizes {
  codesBytes: number;
  scalesBytes: number;
  zerosBytes: number;
  rows: number;
  cols: number;
  groupsPerRow: number;
  groups: number;
  bits: number;
  bitsPerWeight: number;
}

export interface NativeBackend {
  name: 'cpu' | 'cuda';
  available: boolean;
  compiled?: boolean;
  threads?: number;
  devices?: number;
  device?: string;
  computeCapability?: string;
  memory?: number;
  runtimeVersion?: number;
  driverVersion?: number;
  reason?: string;
}

export interface NativeAddon {
  versions(): { weightpress: string; napi: number; cudaCompiled: boolean; compiler: string };
  backends(): NativeBackend[];
  methods(): string;

  open(path: string): Promise<NativeFile>;
  openSync(path: string): NativeFile;
  view(handle: unknown, index: number): ArrayBuffer;
  close(handle: unknown): void;
  advise(handle: unknown, index: number, what: 'willneed' | 'dontneed'): void;
  /** Throws E_IO naming the file when it shrank while mapped (a read past its new end gave zeros). */
  check(handle: unknown): void;

  writerOpen(path: string, reserveHeaderBytes: number): unknown;
  writerAdd(writer: unknown, name: string, dtype: string, shape: number[], data: ArrayBufferView): Promise<void>;
  /** Writes the header and flushes; the file is complete but not yet at its path. */
  writerFinish(writer: unknown, metadata: Record<string, string>): Promise<void>;
  /** Links the finished file into place at its path. */
  writerPlace(writer: unknown): void;
  writerAbort(writer: unknown): void;

  /** An output file that appears complete or not at all (O_TMPFILE + linkat on Linux; native/core/io/output_file.h). */
  outputOpen(path: string): unknown;
  outputWrite(out: unknown, data: ArrayBufferView, offset: number): Promise<void>;
  /** fsync, then link (or rename) into place. */
  outputPlace(out: unknown): Promise<void>;
  outputAbort(out: unknown): void;

  quantize(
    /** assignFrom: F32 values the codes are assigned from (the error is measured against data). */
    tensor: { data: Uint8Array; dtype: string; numel: number; name?: string; importance?: Float32Array | null; assignFrom?: Float32Array },
    params: NativeQuantizeParams,
    codes: Uint8Array,
    codebook: Uint8Array,
    cancel?: Int32Array | null,
    /** Called on the main thread as slices are done (done, total), at most every ~50 ms. */
    onProgress?: (done: number, total: number) => void,
  ): Promise<NativeQuantizeStats>;
  dequantize(
    source: { codes: Uint8Array; codebook: Uint8Array; codebookDtype: string; numel: number; bits: number; sliceSize: number; packBits?: number; name?: string; allowOverflow?: boolean },
    outDtype: string,
    out: Uint8Array,
    threads?: number,
    cancel?: Int32Array | null,
  ): Promise<number>;
  /** Float dtype conversion; resolves to the count of saturated values (allowOverflow), else E_RANGE on overflow. */
  convert(src: Uint8Array, from: string, to: string, dst: Uint8Array, name?: string, allowOverflow?: boolean): Promise<number>;
  solve(method: string, x: Float64Array, w: Float64Array | null, params: NativeSolverParams): Promise<Float64Array>;
  solveSync(method: string, x: Float64Array, w: Float64Array | null, params: NativeSolverParams): Float64Array;
  /** Like solveSync, with the decision thresholds (empty: midpoints between adjacent levels). */
  quantizer(method: string, x: Float64Array, w: Float64Array | null, params: NativeSolverParams): { levels: Float64Array; thresholds: Float64Array };

  entropyEncode(
    symbols: Uint8Array,
    params: { coder: 'huffman' | 'ans'; alphabet: number; chunk?: number; maxLen?: number; probBits?: number; threads?: number },
    cancel?: Int32Array | null,
  ): Promise<NativeEntropyStats & { blob: Uint8Array }>;
  entropyDecode(blob: Uint8Array, out: Uint8Array, threads?: number, cancel?: Int32Array | null): Promise<void>;
  entropyInfo(blob: Uint8Array): NativeEntropyStats & { codeLengths?: number[]; frequencies?: number[] };

  // Vector quantization (native/addon/vq.cpp; native/core/vq/).
  /** Weighted k-means in d dims: x, w [n, d] row-major (w null: all 1). */
  kmeansNd(
    x: Float32Array,
    w: Float32Array | null,
    n: number,
    d: number,
    params: { k: number; maxIter?: number; seed?: number; seedSample?: number; threads?: number },
    cancel?: Int32Array | null,
  ): Promise<{ centroids: Float32Array; assign: Uint32Array; iterations: number; sse: number; history: number[]; reseeded: number }>;
  /** PQ (rank 0) or LR²VQ (rank dk, or -1: estimated) of a matrix [rows, cols] (native/core/vq/product.h). */
  vqEncode(
    tensor: { w: Float32Array; rows: number; cols: number; importance?: Float32Array; gram?: Float32Array; name?: string },
    params: { m: number; k: number; rank: number; rowScale: boolean; groupRows: number; maxIter: number; seed: number; f16: boolean; refineRounds?: number; threads?: number; rate?: number },
    cancel?: Int32Array | null,
    onProgress?: (done: number, total: number) => void,
  ): Promise<NativeVqResult>;
  vqDecode(
    parts: { rows: number; cols: number; m: number; k: number; dk: number; groupRows: number; codes: Uint32Array; codebooks: Float32Array; projection?: Float32Array; scales?: Float32Array },
    out: Float32Array,
    threads?: number,
    cancel?: Int32Array | null,
  ): Promise<void>;
  packIndices(codes: Uint32Array, bits: number): Uint8Array;
  /** The k-means distance kernel's instruction set on this CPU: 'avx2+fma' or 'baseline'. */
  vqKernelIsa: string;
  unpackIndices(bytes: Uint8Array, n: number, bits: number): Uint32Array;

  // Block-scaled formats with a learned table (native/addon/block.cpp; docs/BLOCK.md).
  blockSizes(numel: number, cols: number, params: NativeBlockParams): NativeBlockSizes;
  blockQuantize(
    tensor: { data: Uint8Array; dtype: string; numel: number; cols: number; importance?: Float32Array | null; name?: string },
    params: NativeBlockParams,
    codes: Uint8Array,
    scales: Uint8Array,
    table: Uint8Array,
    cancel?: Int32Array | null,
    /** Called on the main thread as refinement rounds are done (done, total). */
    onProgress?: (done: number, total: number) => void,
  ): Promise<NativeBlockStats>;
  blockDequantize(
    source: { codes: Uint8Array; scales: Uint8Array; table: Uint8Array; numel: number; cols: number; name?: string; allowOverflow?: boolean },
    params: NativeBlockParams,
    outDtype: string,
    out: Uint8Array,
    threads?: number,
    cancel?: Int32Array | null,
  ): Promise<number>;

  // llama.cpp's block formats for the GGUF export (native/addon/gguf.cpp, native/core/kquants.h). type: a ggml_type
  // id (Q5_0 6, Q5_1 7, Q8_0 8, Q4_K 12, Q5_K 13, Q6_K 14).
  ggufBlock(type: number): { weights: number; bytes: number };
  ggufQuantize(
    tensor: { data: Uint8Array; dtype: string; numel: number; cols: number; importance?: Float32Array | null; name?: string },
    type: number,
    out: Uint8Array,
    threads?: number,
    cancel?: Int32Array | null,
    /** Called on the main thread as rows are done (done, total). */
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ sse: number; signal: number; maxAbsErr: number }>;
  ggufDequantize(type: number, data: Uint8Array, numel: number, out: Float32Array, threads?: number, cancel?: Int32Array | null): Promise<void>;
  // Integer group quantization (native/addon/intq.cpp).
  intSizes(numel: number, cols: number, params: NativeIntParams): NativeIntSizes;
  intQuantize(
    tensor: { data: Uint8Array; dtype: string; numel: number; cols: number; importance?: Float32Array | null; name?: string },
    params: NativeIntParams,
    codes: Uint8Array,
    scales: Uint8Array,
    zeros: Uint8Array,
    cancel?: Int32Array | null,
    onProgress?: (done: number, total: number) => void,
  ): Promise<NativeIntStats>;
  intDequantize(
    source: { codes: Uint8Array; scales: Uint8Array; zeros?: Uint8Array | null; numel: number; cols: number; name?: string; allowOverflow?: boolean },
    params: NativeIntParams,
    outDtype: string,
    out: Uint8Array,
    threads?: number,
    cancel?: Int32Array | null,
  ): Promise<number>;

  summaryNew(): unknown;
  summaryAdd(summary: unknown, tensor: { data: Uint8Array; dtype: string; numel: number; name?: string; importance?: Float32Array | null }): Promise<void>;
  summarySolve(summary: unknown, method: string, params: NativeSolverParams): Promise<{ levels: Float64Array; thresholds: Float64Array; points: number }>;

  cudaHistogram16?(raw: Uint16Array): BigUint64Array;

  // Quantization Networks (native/addon/qn.cpp; lib/qn.ts).
  qnForward(x: Float32Array, fn: NativeQnFunction, temperature: number, y: Float32Array, threads?: number): void;
  qnBackward(
    x: Float32Array,
    gy: Float32Array,
    fn: NativeQnFunction,
    temperature: number,
    gx: Float32Array | null,
    threads?: number,
  ): { alpha: number; beta: number; biases: Float64Array };
  qnInit(x: Float64Array, levels: number[]): NativeQnFitted;
  qnQuantizer(fn: NativeQnFunction): NativeQnFitted;
  qnFitCalibrated(
    w: Float32Array,
    gram: Float32Array,
    params: NativeSolverParams & { rows: number; inFeatures: number; rowsPerSlice: number; threads?: number; name?: string },
    latent: Float32Array,
    cancel?: Int32Array | null,
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ functions: NativeQnFitted[]; history: QnEpoch[]; initObjective: number; objective: number }>;
}

export interface NativeVqResult {
  /** [rows, P] indices. */
  codes: Uint32Array;
  /** [groups, k, rank] codewords, as stored (F16-rounded with f16). */
  codebooks: Float32Array;
  /** [rank, m] (LR²VQ). */
  projection?: Float32Array;
  /** [rows] (rowScale). */
  scales?: Float32Array;
  rank: number;
  estimate: { rank: number; lowRank: number; clustering: number }[];
  scalesF32: boolean;
  iterations: number;
  reseeded: number;
  /** Bits per weight: the indices' empirical entropy / m. */
  indexEntropy: number;
  outputErrorInitial?: number;
  outputError?: number;
  refineRounds?: number;
}
