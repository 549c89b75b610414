#!/usr/bin/env node
/** The weightpress command line: quantize, decode, inspect, backends. */
import { parseArgs } from 'node:util';

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { decode, inspect } from './decode.js';
import { exportGguf } from './gguf.js';
import { ArgumentError, WeightpressError } from './errors.js';
import { loadNative } from './load.js';
import { CODECS } from './codecs/registry.js';
import { METHODS, type MethodName } from './methods/registry.js';
import { quantize } from './quantize.js';
import { formatTable, toJson } from './report.js';
import type { Progress, QuantizeOptions } from './validate.js';

const HELP: Record<string, string> = {
  main: `weightpress: quantize and compress safetensors checkpoints

usage: weightpress <command> [options]

commands:
  quantize <input> -o <output>   quantize a checkpoint (file, shard index or directory)
  decode <input> -o <output>     turn a weightpress file back into dense safetensors
  inspect <file>                 print the scheme and metrics stored in a weightpress file
  export-gguf <input> -o <out>   write GGUF (IQ4_NL or Q4_0) for llama.cpp, and the SQNR the export costs
  backends                       show the CPU/CUDA backends of this build

Run 'weightpress <command> --help' for its options. --version prints the version.`,
  quantize: `usage: weightpress quantize <input> -o <output> [options]

  -o, --output FILE        output file, or a directory (written to temporary files, renamed into place at the end)
  --max-shard-size SIZE    largest output file (default 5GB); a larger output is written as shards
                           x-00001-of-0000N.safetensors and the index x.safetensors.index.json
  --method NAME            ${METHODS.map((m) => m.name).join(' | ')} (default kmeans-optimal)
${METHODS.map((m) => `                             ${m.name}: ${m.summary}`).join('\n')}
  --bits N                 bits per code, 1-8 (default 4)
  --codec C                ${CODECS.filter((c) => c.phase === 'quantize').map((c) => c.name).join(' | ')} (default scalar): the storage scheme
${CODECS.filter((c) => c.phase === 'quantize').map((c) => `                             ${c.name}: ${c.summary}`).join('\n')}
  --granularity G          scalar codec: tensor | row | group | network (default row): one codebook per tensor, per
                           output row, per group, or one for all quantized tensors together (Choi et al.'s all-layers
                           mode). 'block' is the deprecated spelling of --codec block
  --block-size B           block: weights per block (default 16)
  --scale S                block: optimal | absmax scales (default optimal)
  --table T                block: one learned table per tensor | row (default tensor)
  --double-quant Q/S       block: scales as Q-bit codes under an F16 super-scale per S weights (default 6/256),
                           or none (F16 scales)
  --rounds N               block: alternating scale/table refinement rounds at most (default 4)
  --group-size N           weights per group with --granularity group (default 128)
  --include PATTERN        quantize tensors whose name matches (glob * ? or /regex/); repeatable.
                           Without it: float tensors with >= 2 dims and >= 4096 elements
  --exclude PATTERN        keep tensors whose name matches; repeatable
  --min-elements N         size rule: quantize tensors with at least N elements (default 4096)
  --seed N                 seed of kmeans' k-means++ (default 0)
  --max-iter N             Lloyd iterations at most (default 1000)
  --symmetric              uniform: levels symmetric about zero
  --step mse|minmax        uniform: MSE-optimal step or min-max range (default mse)
  --codebook-dtype D       f32 | f16 (default f32)
  --importance FILE        safetensors of importance weights (same tensor names and shapes); see docs/IMPORTANCE
  --importance-kind K      hessian | fisher | adam-v (default hessian; adam-v uses sqrt(v))
  --importance-map RULE    FROM=>TO regex rule mapping a tensor name to its importance name; repeatable
  --lloyd                  hessian-kmeans: Lloyd's instead of the exact DP
  --rate BITS              ecsq methods: target average bits per weight after entropy coding
  --compression-ratio C    ecsq methods, instead of --rate: each tensor's rate is its dtype's bits / C
  --lambda X               sparse methods: penalty weight; ecsq: Lagrange multiplier
  --lambda2 X              sparse-l1l2: l2 weight
  --target-values K        sparse methods: search the penalty until K distinct values per slice
  --entropy C              none | huffman | ans: entropy-code the codes (default: huffman for ecsq methods)
  --huffman                short for --entropy huffman
  --threads N              CPU threads (default: all cores)
  --device D               auto | cpu | cuda (default auto)
  --json                   print one JSON object {tensors:[...], total:{...}} on stdout (see docs/FORMAT.md)
  --quiet                  no progress bar and no table`,
  decode: `usage: weightpress decode <input> -o <output> [options]

  -o, --output FILE        dense safetensors output, or a directory
  --max-shard-size SIZE    largest output file (default 5GB); larger outputs are sharded as quantize does
  --dtype D                f32 | f16 | bf16 | f64: dtype of float tensors (default: each tensor's original dtype)
  --threads N              CPU threads (default: all cores)
  --json                   print a JSON summary on stdout
  --quiet                  no progress bar`,
  inspect: `usage: weightpress inspect <file> [--json]

  Prints every tensor's method, bits, granularity and stored metrics (MSE, SQNR, max error, bits per weight
  including codebooks, bytes, seconds) and the totals. --json prints the same fields as 'quantize --json'.`,
  backends: `usage: weightpress backends [--json]`,
  'export-gguf': `usage: weightpress export-gguf <input> -o <output.gguf> [options]

  Writes a GGUF v3 file for llama.cpp: float tensors with >= 2 dims and >= 4096 elements whose rows are a multiple
  of 32 as IQ4_NL (fixed table) or Q4_0, the rest as they are. Prints the SQNR of the export and, unless
  --no-compare, the SQNR of weightpress's learned-table block format on the same tensors: the difference is what
  the fixed-table export costs.

  -o, --output FILE        output .gguf (temporary file, renamed into place)
  --type T                 IQ4_NL | Q4_0 (default IQ4_NL)
  --no-flatten             keep tensors whose innermost dimension is not a multiple of 32 (conv kernels) unquantized
  --no-compare             skip the learned-table comparison
  --threads N              CPU threads
  --json                   print the report as JSON`,
};

class UsageError extends Error {}

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v.trim())) throw new ArgumentError(`option --${name}: expected an integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

function doubleQuantArg(v: string | undefined): QuantizeOptions['doubleQuant'] {
  if (v === undefined) return undefined;
  if (v === 'none' || v === 'off') return false;
  const m = /^(\d+)\/(\d+)$/.exec(v.trim());
  if (!m) throw new ArgumentError(`option --double-quant: expected BITS/SUPERBLOCK (e.g. 6/256) or none, got ${JSON.stringify(v)}`);
  return { bits: Number(m[1]), superBlock: Number(m[2]) };
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x)) throw new ArgumentError(`option --${name}: expected a number, got ${JSON.stringify(v)}`);
  return x;
}

function progressBar(enabled: boolean): ((p: Progress) => void) | undefined {
  if (!enabled) return undefined;
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (now - last < 100 && p.index < p.count) return;
    last = now;
    const frac = p.bytesTotal ? p.bytesDone / p.bytesTotal : p.index / p.count;
    const width = 30;
    const fill = Math.round(frac * width);
    const name = p.tensor.length > 40 ? '…' + p.tensor.slice(-39) : p.tensor;
    process.stderr.write(`\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${p.index}/${p.count} ${name}`.padEnd(100));
    if (p.index === p.count) process.stderr.write('\n');
  };
}

async function main(argv: string[]): Promise<number> {
  const cmd = argv[0];
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP.main + '\n');
    return cmd ? 0 : 2;
  }
  if (cmd === '--version' || cmd === '-v') {
    process.stdout.write(loadNative().versions().weightpress + '\n');
    return 0;
  }
  if (!HELP[cmd] || cmd === 'main') throw new UsageError(`unknown command "${cmd}" (quantize, decode, inspect, export-gguf, backends)`);
  const rest = argv.slice(1);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(HELP[cmd] + '\n');
    return 0;
  }
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  try {
    if (cmd === 'quantize') {
      const { values, positionals } = parseArgs({
        args: rest, allowPositionals: true, strict: true,
        options: {
          output: { type: 'string', short: 'o' }, method: { type: 'string' }, bits: { type: 'string' },
          codec: { type: 'string' }, 'max-shard-size': { type: 'string' },
          granularity: { type: 'string' }, 'group-size': { type: 'string' }, include: { type: 'string', multiple: true },
          exclude: { type: 'string', multiple: true }, 'min-elements': { type: 'string' }, seed: { type: 'string' },
          'max-iter': { type: 'string' }, symmetric: { type: 'boolean' }, step: { type: 'string' },
          'codebook-dtype': { type: 'string' }, threads: { type: 'string' }, device: { type: 'string' },
          json: { type: 'boolean' }, quiet: { type: 'boolean' }, progress: { type: 'boolean' },
          importance: { type: 'string' }, 'importance-kind': { type: 'string' }, 'importance-map': { type: 'string', multiple: true },
          lloyd: { type: 'boolean' }, rate: { type: 'string' }, 'compression-ratio': { type: 'string' }, lambda: { type: 'string' }, lambda2: { type: 'string' },
          'target-values': { type: 'string' }, entropy: { type: 'string' }, huffman: { type: 'boolean' },
          'block-size': { type: 'string' }, scale: { type: 'string' }, table: { type: 'string' },
          'double-quant': { type: 'string' }, rounds: { type: 'string' },
        },
      });
      if (positionals.length !== 1) throw new UsageError('quantize takes one input path (see --help)');
      if (!values.output) throw new UsageError('quantize needs -o <output>');
      const opts: QuantizeOptions = {
        method: values.method as MethodName | undefined,
        codec: values.codec as QuantizeOptions['codec'],
        maxShardSize: values['max-shard-size'],
        bits: int('bits', values.bits),
        granularity: values.granularity as QuantizeOptions['granularity'],
        groupSize: int('group-size', values['group-size']),
        include: values.include,
        exclude: values.exclude,
        minElements: int('min-elements', values['min-elements']),
        seed: int('seed', values.seed),
        maxIter: int('max-iter', values['max-iter']),
        symmetric: values.symmetric,
        step: values.step as QuantizeOptions['step'],
        codebookDtype: values['codebook-dtype']?.toUpperCase() as QuantizeOptions['codebookDtype'],
        threads: int('threads', values.threads),
        device: values.device as QuantizeOptions['device'],
        importance: values.importance,
        importanceKind: values['importance-kind'] as QuantizeOptions['importanceKind'],
        importanceMap: values['importance-map'],
        exact: values.lloyd ? false : undefined,
        rate: num('rate', values.rate),
        compressionRatio: num('compression-ratio', values['compression-ratio']),
        lambda: num('lambda', values.lambda),
        lambda2: num('lambda2', values.lambda2),
        targetValues: int('target-values', values['target-values']),
        entropy: (values.entropy ?? (values.huffman ? 'huffman' : undefined)) as QuantizeOptions['entropy'],
        blockSize: int('block-size', values['block-size']),
        scale: values.scale as QuantizeOptions['scale'],
        table: values.table as QuantizeOptions['table'],
        doubleQuant: doubleQuantArg(values['double-quant']),
        rounds: int('rounds', values.rounds),
        signal: ac.signal,
        onProgress: progressBar(!values.quiet && (values.progress || process.stderr.isTTY === true)),
      };
      for (const k of Object.keys(opts) as (keyof QuantizeOptions)[]) if (opts[k] === undefined) delete opts[k];
      const report = await quantize(positionals[0], values.output, opts);
      for (const w of report.warnings ?? []) process.stderr.write(`weightpress: warning: ${w}\n`);
      if (values.json) process.stdout.write(JSON.stringify(toJson(report)) + '\n');
      else if (!values.quiet) process.stdout.write(formatTable(report) + `\nwrote ${report.output}\n`);
      return 0;
    }
    if (cmd === 'decode') {
      const { values, positionals } = parseArgs({
        args: rest, allowPositionals: true, strict: true,
        options: {
          output: { type: 'string', short: 'o' }, dtype: { type: 'string' }, threads: { type: 'string' },
          'max-shard-size': { type: 'string' }, device: { type: 'string' }, json: { type: 'boolean' }, quiet: { type: 'boolean' }, progress: { type: 'boolean' },
        },
      });
      if (positionals.length !== 1) throw new UsageError('decode takes one input path (see --help)');
      if (!values.output) throw new UsageError('decode needs -o <output>');
      const r = await decode(positionals[0], values.output, {
        ...(values.dtype ? { dtype: values.dtype.toUpperCase() as 'F32' } : {}),
        ...(values.threads ? { threads: int('threads', values.threads) } : {}),
        ...(values.device ? { device: values.device as 'auto' } : {}),
        ...(values['max-shard-size'] ? { maxShardSize: values['max-shard-size'] } : {}),
        signal: ac.signal,
        onProgress: progressBar(!values.quiet && (values.progress || process.stderr.isTTY === true)),
      });
      if (values.json) process.stdout.write(JSON.stringify(r) + '\n');
      else if (!values.quiet) process.stdout.write(`decoded ${r.tensors} tensors (${(r.bytesOut / 2 ** 20).toFixed(2)} MiB) in ${r.seconds.toFixed(2)} s to ${r.output}\n`);
      return 0;
    }
    if (cmd === 'inspect') {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, strict: true, options: { json: { type: 'boolean' } } });
      if (positionals.length !== 1) throw new UsageError('inspect takes one file (see --help)');
      const report = await inspect(positionals[0]);
      process.stdout.write((values.json ? JSON.stringify(toJson(report)) : formatTable(report, 1000)) + '\n');
      return 0;
    }
    if (cmd === 'export-gguf') {
      const { values, positionals } = parseArgs({
        args: rest, allowPositionals: true, strict: true,
        options: {
          output: { type: 'string', short: 'o' }, type: { type: 'string' }, 'no-flatten': { type: 'boolean' },
          'no-compare': { type: 'boolean' }, threads: { type: 'string' }, json: { type: 'boolean' },
        },
      });
      if (positionals.length !== 1) throw new UsageError('export-gguf takes one input path (see --help)');
      if (!values.output) throw new UsageError('export-gguf needs -o <output.gguf>');
      const type = (values.type ?? 'IQ4_NL').toUpperCase() as 'IQ4_NL' | 'Q4_0';
      const threads = int('threads', values.threads);
      const r = await exportGguf(positionals[0], values.output, { type, flatten: !values['no-flatten'], threads, signal: ac.signal });
      let learned: number | null | undefined;
      if (!values['no-compare']) {
        const names = r.tensors.filter((t) => t.quantized).map((t) => t.name);
        if (names.length) {
          const dir = mkdtempSync(join(tmpdir(), 'wp-gguf-'));
          try {
            const esc = names.map((n) => n.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|');
            const q = await quantize(positionals[0], join(dir, 'learned.safetensors'), { codec: 'block', include: [`/^(${esc})$/`], threads, signal: ac.signal });
            learned = q.total.quantizedSqnrDb;
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        }
      }
      if (values.json) process.stdout.write(JSON.stringify({ ...r, ...(learned !== undefined ? { learnedBlockSqnrDb: learned } : {}) }) + '\n');
      else {
        const T = r.total;
        process.stdout.write(`wrote ${r.output}: ${T.quantizedTensors} of ${T.tensors} tensors as ${type}, ${T.bitsPerWeight.toFixed(3)} bits/weight (whole file)\n`);
        process.stdout.write(`SQNR of the ${type} export (quantized tensors): ${T.sqnrDb === null ? 'exact' : T.sqnrDb.toFixed(2) + ' dB'}\n`);
        if (learned !== undefined && learned !== null && T.sqnrDb !== null)
          process.stdout.write(`weightpress learned-table block format on the same tensors: ${learned.toFixed(2)} dB; the export loses ${(learned - T.sqnrDb).toFixed(2)} dB\n`);
      }
      return 0;
    }
    // backends
    const { values } = parseArgs({ args: rest, strict: true, options: { json: { type: 'boolean' } } });
    const b = loadNative().backends();
    if (values.json) process.stdout.write(JSON.stringify(b) + '\n');
    else for (const x of b) process.stdout.write(`${x.name}: ${x.available ? 'available' : 'unavailable'}${x.device ? ` (${x.device})` : ''}${x.reason ? ` — ${x.reason}` : ''}\n`);
    return 0;
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof WeightpressError) {
      process.stderr.write(`\nweightpress: ${e.describe()}\n`.replace(/^\n/, process.stderr.isTTY ? '\n' : ''));
      process.exitCode = e.code === 'E_CANCELLED' ? 130 : e.code === 'E_ARGUMENT' ? 2 : 1;
    } else if (e instanceof UsageError || (e as { code?: string })?.code?.startsWith?.('ERR_PARSE_ARGS')) {
      process.stderr.write(`weightpress: ${(e as Error).message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`weightpress: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 70;
    }
  },
);
