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
}

export interface NativeQuantizeParams {
  /** The method's own options, for its solver (one nested object; native/addon/common.cpp, solver_params_of). */
  solverParams?: NativeSolverParams;
  /** Use this quantizer for every slice instead of solving (e.g. one codebook for the whole network). */
  fixedLevels?: Float64Array;
  fixedThresholds?: Float64Array;
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

  writerOpen(path: string, reserveHeaderBytes: number): unknown;
  writerAdd(writer: unknown, name: string, dtype: string, shape: number[], data: ArrayBufferView): Promise<void>;
  writerFinish(writer: unknown, metadata: Record<string, string>): Promise<void>;
  writerAbort(writer: unknown): void;

  quantize(
    tensor: { data: Uint8Array; dtype: string; numel: number; name?: string; importance?: Float32Array | null },
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

  summaryNew(): unknown;
  summaryAdd(summary: unknown, tensor: { data: Uint8Array; dtype: string; numel: number; name?: string; importance?: Float32Array | null }): Promise<void>;
  summarySolve(summary: unknown, method: string, params: NativeSolverParams): Promise<{ levels: Float64Array; thresholds: Float64Array; points: number }>;

  cudaHistogram16?(raw: Uint16Array): BigUint64Array;
}
