#!/usr/bin/env node
/** The weightpress command line: quantize, decode, inspect, backends. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

import { mkdtempSync, rmSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';

import { abortAllOutputs } from './atomic.js';
import { decode, inspect } from './decode.js';
import { exportGguf, type GgufExportReport, type GgufQuantType } from './gguf.js';
import { exportCompressedTensors } from './compressed-tensors.js';
import { ArgumentError, WeightpressError } from './errors.js';
import { loadNative } from './load.js';
import { CODECS } from './codecs/registry.js';
import { defaultText, type OptionSpec } from './methods/options.js';
import { METHOD_OPTIONS, METHODS } from './methods/registry.js';
import { quantize } from './quantize.js';
import { runWorker, status, submit } from './distributed.js';
import { formatTable, toJson } from './report.js';
import { CODEC, CODEC_OPTIONS, JOB_OPTIONS, METHOD, QUANTIZE_OPTIONS, type ImportanceKind, type Progress, type QuantizeOptions } from './validate.js';

/** The quantize flags that are no option of quantize(): where the output goes and what is printed. */
const QUANTIZE_FLAGS = [
  ['-o, --output FILE', 'output file, or a directory (an existing one, or a path ending in "/"); written unnamed and linked into place at the end, so that a failed or killed job leaves nothing; a symlink is written through; a device node, FIFO, socket or the input itself (without --force) is refused'],
  ['--json', 'print one JSON object {tensors:[...], total:{...}} on stdout (see docs/FORMAT.md)'],
  ['--quiet', 'no progress bar and no table'],
  ['--progress', 'a progress bar on stderr even when it is not a terminal'],
  ['--report FILE', 'also write a report: FILE.html, one self-contained page (no network) with per-tensor SQNR and bits per weight, the rate-distortion points, weight histograms with the learned levels, and the settings; FILE.json, the same data (docs/REPORT.md)'],
  ['--report-tensors PATTERN', 'tensors whose histograms the report draws (glob * ? or /regex/; repeatable; default the 4 largest quantized tensors)'],
] as const;

const COL = 27;
const WIDTH = 118;

/** `head` padded to the doc column (or followed by a space when longer), then `text` wrapped to the width with continuation lines indented. */
function helpLine(head: string, text: string, indent = COL): string {
  const lines: string[] = [];
  const inline = head.length >= indent - 1;
  let line = inline ? head + ' ' : head.padEnd(indent);
  let width = line.length;
  for (const word of text.split(' ')) {
    if (width + word.length > WIDTH && width > indent) {
      lines.push(line.trimEnd());
      line = ' '.repeat(indent);
      width = indent;
    }
    line += word + ' ';
    width += word.length + 1;
  }
  lines.push(line.trimEnd());
  return lines.join('\n');
}

/** An option's --help entry: its flag, doc, values or range, default and note (and the methods that take it). */
function optionHelp(spec: OptionSpec, extra = ''): string {
  let text = spec.doc;
  if (spec.type === 'enum') text += `: ${spec.values!.join(' | ')}`;
  if ((spec.type === 'int' || spec.type === 'intOrAuto') && spec.max! <= 65536) text += `, ${spec.min} to ${spec.max}${spec.type === 'intOrAuto' ? ', or auto' : ''}`;
  if (spec.type === 'number') text += `, ${spec.min !== undefined ? `at least ${spec.min}` : 'positive'}${spec.max !== undefined ? `, at most ${spec.max}` : ''}`;
  if (spec.type === 'number' && spec.unit) text += ` ${spec.unit}`;
  const d = defaultText(spec);
  if (d !== undefined) text += ` (default ${d})`;
  if (spec.note) text += `; ${spec.note}`;
  if (extra) text += ` ${extra}`;
  const lines = [helpLine(`  ${spec.flag}${spec.metavar ? ` ${spec.metavar}` : ''}`, text)];
  for (const a of spec.aliases ?? []) lines.push(helpLine(`  ${a.flag}`, a.doc));
  if (spec === METHOD) for (const m of METHODS) lines.push(helpLine(`${' '.repeat(COL + 2)}${m.name}:`, m.summary, COL + 4));
  if (spec === CODEC) for (const c of CODECS.filter((x) => x.phase === 'quantize')) lines.push(helpLine(`${' '.repeat(COL + 2)}${c.name}:`, c.summary, COL + 4));
  return lines.join('\n');
}

/** quantize --help, generated from the options' declarations: the job's, each codec's, the methods'. */
function quantizeHelp(): string {
  const out = ['usage: weightpress quantize <input> -o <output> [options]', ''];
  for (const [flag, doc] of QUANTIZE_FLAGS) out.push(helpLine(`  ${flag}`, doc));
  out.push('', 'job options:');
  for (const spec of JOB_OPTIONS) out.push(optionHelp(spec));
  for (const c of CODECS.filter((x) => x.options?.length)) {
    out.push('', `codec options, ${c.name} (--codec ${c.name}):`);
    for (const r of CODEC_OPTIONS.filter((x) => x.codecs.includes(c.name))) out.push(optionHelp(r.spec));
  }
  out.push('', 'method options (the methods that take each in brackets):');
  for (const r of METHOD_OPTIONS) out.push(optionHelp(r.spec, `[${r.methods.map((m) => m.name).join(', ')}]`));
  return out.join('\n');
}

/** The parseArgs declaration of the quantize flags, from the options' declarations. */
function quantizeFlags() {
  const flags: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {
    output: { type: 'string', short: 'o' }, json: { type: 'boolean' }, quiet: { type: 'boolean' }, progress: { type: 'boolean' },
  };
  for (const spec of QUANTIZE_OPTIONS) {
    flags[spec.flag.slice(2)] = spec.metavar ? { type: 'string', ...(spec.type === 'strings' ? { multiple: true } : {}) } : { type: 'boolean' };
    for (const a of spec.aliases ?? []) flags[a.flag.slice(2)] = { type: 'boolean' };
  }
  return flags;
}

/** The options of quantize() the flags give (only those given). */
function quantizeOptionsOf(values: Record<string, string | boolean | (string | boolean)[] | undefined>): QuantizeOptions {
  const opts: Record<string, unknown> = {};
  for (const spec of QUANTIZE_OPTIONS) {
    const name = spec.flag.slice(2);
    const v = values[name];
    let value: unknown;
    if (v === undefined) value = spec.aliases?.find((a) => values[a.flag.slice(2)])?.sets;
    else if (!spec.metavar) value = v ? (spec.flagSets ?? true) : undefined;
    else if (typeof v !== 'string') value = v;
    else if (spec.parseFlag) value = spec.parseFlag(v);
    else if (spec.type === 'int' || (spec.type === 'intOrAuto' && v !== 'auto')) value = int(name, v);
    else if (spec.type === 'number') value = num(name, v);
    else value = v;
    if (value !== undefined) opts[spec.name] = value;
  }
  return opts as QuantizeOptions;
}

const HELP: Record<string, string> = {
  main: `weightpress: quantize and compress safetensors checkpoints

usage: weightpress <command> [options]

commands:
  quantize <input> -o <output>   quantize a checkpoint (file, shard index or directory)
  decode <input> -o <output>     turn a weightpress file back into dense safetensors
  inspect <file>                 print the scheme and metrics stored in a weightpress file
  export-gguf <input> -o <out>   write GGUF (Q4_K, Q5_K, Q6_K, Q8_0, IQ4_NL, ...) for llama.cpp, and the SQNR it costs
  export-compressed-tensors <input> <outdir>   INT4/INT8 per group in compressed-tensors' pack-quantized
                                 layout (vLLM, transformers), with config.json and the model's other files
  backends                       show the CPU/CUDA backends of this build
  submit <input> -o <dir> --redis URL   plan a job and enqueue it on BullMQ (Redis) for workers; prints its id
  worker --redis URL             serve the queue: quantize work units (any number of machines)
  status <job-id> --redis URL    units done/running/failed, bytes, throughput, workers

Run 'weightpress <command> --help' for its options. --version prints the version.`,
  quantize: quantizeHelp(),
  submit: `usage: weightpress submit <input> -o <outdir> --redis URL [--unit-size SIZE] [quantize options]

  Plans the job as quantize would (every quantize option applies; see 'weightpress quantize --help'), writes the
  plan into <outdir> (a directory every worker reaches: local disk, NFS or another shared file system), and
  enqueues a BullMQ flow: one job per work unit and a merge job. Prints the job id. The finished output is
  byte-identical to 'weightpress quantize <input> -o <outdir>/' with the same options. docs/DISTRIBUTED.md.

  --redis URL              redis://host:port[/db] (required)
  --unit-size SIZE         input bytes per work unit, about (default 2GB); a unit is one or more whole shards
  --queue NAME             queue name (default weightpress)
  --attempts N             attempts per unit for transient failures (default 5, exponential backoff)`,
  worker: `usage: weightpress worker --redis URL [--concurrency N] [--threads T]

  Serves the queue until SIGINT/SIGTERM (then finishes the units it holds and exits 0).

  --redis URL              redis://host:port[/db] (required)
  --concurrency N          units at once (default 1)
  --threads T              CPU threads per unit (default: all cores)
  --lock-duration MS       how long a unit stays held by a worker that stops answering before another takes it
                           (default 30000)
  --queue NAME             queue name (default weightpress)
  --name NAME              this worker's name in status (default host:pid)`,
  status: `usage: weightpress status <job-id> --redis URL [--json]

  Units done / running / waiting / failed, bytes done, throughput, the workers holding units, and the error of a
  failed job (code, file, tensor). --json prints the same as one object.`,
  decode: `usage: weightpress decode <input> -o <output> [options]

  -o, --output FILE        dense safetensors output, or a directory
  --max-shard-size SIZE    data bytes per output file at most (default 5GB); larger outputs are sharded as
                           quantize does
  --dtype D                f32 | f16 | bf16 | f64: dtype of float tensors (default: each tensor's original dtype)
  --allow-overflow         store values beyond --dtype's range (f16: 65504) as its largest finite value and say how
                           many (default: fail with E_RANGE naming the tensor)
  --threads N              CPU threads (default: all cores)
  --force                  let the output replace the input (refused otherwise)
  --json                   print a JSON summary on stdout
  --quiet                  no progress bar`,
  inspect: `usage: weightpress inspect <file> [--json]

  Prints every tensor's method, bits, granularity and stored metrics (MSE, SQNR, max error, bits per weight
  including codebooks, bytes, seconds) and the totals. --json prints the same fields as 'quantize --json'.`,
  backends: `usage: weightpress backends [--json]`,
  'export-gguf': `usage: weightpress export-gguf <input> -o <output.gguf> [options]

  Writes a GGUF v3 file for llama.cpp: float tensors with >= 2 dims and >= 4096 elements as --type, the rest as
  they are. Q4_K, Q5_K, Q6_K, Q8_0, Q5_0 and Q5_1 run llama.cpp's own quantizers (with --imatrix, as
  llama-quantize --imatrix does); IQ4_NL and Q4_0 an MSE-optimal scale search. Rows that are not a multiple of the
  block fall back as llama.cpp does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; then F16). Prints the SQNR of the
  export and, unless --no-compare, the SQNR of weightpress's learned-table block format on the same tensors: the
  difference is what the fixed-format export costs.

  -o, --output FILE        output .gguf, or a directory (an existing one, or ending in "/": <dir>/<input name>.gguf)
  --type T                 Q4_K | Q5_K | Q6_K | Q8_0 | Q5_0 | Q5_1 | IQ4_NL | Q4_0 (default IQ4_NL)
  --imatrix FILE           llama.cpp importance matrix (imatrix.gguf or legacy .dat from llama-imatrix)
  --importance FILE        or a safetensors importance file (see quantize --help)
  --importance-kind K      hessian | fisher | adam-v: how to read --importance (default hessian)
  --importance-map RULE    FROM=>TO regex rule from a tensor name to its importance/imatrix name; repeatable
  --no-flatten             keep tensors whose innermost dimension is not a multiple of 32 (conv kernels) unquantized
  --no-compare             skip the learned-table comparison
  --threads N              CPU threads
  --strict                 refuse tensors GGUF has no type for (F8, BOOL, U8, ...) instead of dropping them (each
                           dropped tensor is named on stderr)
  --force                  let the output replace the input (refused otherwise)
  --json                   print the report as JSON`,
  'export-compressed-tensors': `usage: weightpress export-compressed-tensors <input> <outdir> [options]

  Quantizes every 2-D "*.weight" of at least 4096 weights (not embeddings or lm_head) to INT4/INT8 codes with a
  scale (and zero point) per group, round to nearest with an MSE-optimal scale per group, and writes <outdir> in
  compressed-tensors' pack-quantized layout: model.safetensors (or shards and an index), config.json with its
  quantization_config when the input's directory has a config.json, and a copy of that directory's other files
  (tokenizer, generation config, ...). Weights left dense are listed in the config's ignore. docs/COMPRESSED-TENSORS.md
  says what loaders (vLLM, transformers) need.

  --bits B                 4 (default) or 8
  --group-size N|channel   weights per group along a row, 32-256, a multiple of 8 (default 128; vLLM's kernels
                           take 32, 64, 128), or 'channel' (one scale per row). Rows that groups do not tile are
                           left dense (listed in ignore), as vLLM needs whole groups
  --asymmetric             a zero point per group (default symmetric, the W4A16 schemes')
  --step S                 mse (least squared error per group, default) | minmax
  --scale-dtype D          f16 | bf16 | f32 (default: the weight's dtype; F32 for F32 weights)
  --include PAT            quantize only tensors matching (glob * ?, or /regex/; repeatable)
  --exclude PAT            keep these dense too (repeatable)
  --max-shard-size SIZE    bytes per safetensors file (default 5GB)
  --threads N              CPU threads
  --force                  let an output replace an input file
  --quiet                  no progress bar
  --json                   print the report as JSON`,
};

class UsageError extends Error {}

/** ' (3 fell back: 2 Q5_0, 1 F16)' when tensors took llama.cpp's fallback types, else ''. */
function fellBack(r: GgufExportReport): string {
  const by = new Map<string, number>();
  for (const t of r.tensors) if (t.fallback) by.set(t.type, (by.get(t.type) ?? 0) + 1);
  const n = [...by.values()].reduce((a, b) => a + b, 0);
  return n ? ` (${n} fell back: ${[...by].map(([k, v]) => `${v} ${k}`).join(', ')})` : '';
}

/** parseArgs, with an unknown flag's error listing the command's valid flags. */
function parseFlags<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const flags = Object.entries(config.options ?? {}).map(([k, v]) => `--${k}${v.short ? `/-${v.short}` : ''}`);
      throw new UsageError(`${(e as Error).message.split('.')[0]}; valid: ${flags.join(', ')}`);
    }
    throw e;
  }
}

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v.trim())) throw new ArgumentError(`option --${name}: expected an integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x)) throw new ArgumentError(`option --${name}: expected a number, got ${JSON.stringify(v)}`);
  return x;
}

/** Seconds as "1h02m", "3m05s" or "12s". */
function duration(s: number): string {
  const t = Math.round(s);
  if (t >= 3600) return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
  if (t >= 60) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${t}s`;
}

/** Bytes as MB or GB (decimal, as rates are usually given). */
function mb(b: number): string {
  return b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`;
}

/** A progress bar on stderr: the fraction of input bytes done, bytes done of all, the rate, the ETA and the tensor. */
function progressBar(enabled: boolean): ((p: Progress) => void) | undefined {
  if (!enabled) return undefined;
  let last = 0;
  let phase = '';
  return (p) => {
    const now = Date.now();
    const end = p.index === p.count && !p.within;
    const shown = p.phase === 'copy' ? 'quantize' : p.phase; // kept tensors are copied in the same pass
    if (now - last < 100 && !end && shown === phase) return;
    if (phase && shown !== phase) process.stderr.write('\n');
    phase = shown;
    last = now;
    const frac = p.bytesTotal ? p.bytesDone / p.bytesTotal : p.index / Math.max(1, p.count);
    const width = 24;
    const fill = Math.round(frac * width);
    const name = p.tensor.length > 32 ? '…' + p.tensor.slice(-31) : p.tensor;
    const eta = p.etaSeconds === null ? 'ETA --' : end ? `in ${duration(p.elapsedSeconds)}` : `ETA ${duration(p.etaSeconds)}`;
    const rate = p.bytesPerSecond > 0 ? `${mb(p.bytesPerSecond)}/s` : '-- MB/s';
    const line = `\r${shown === 'quantize' ? '' : shown + ' '}[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${mb(p.bytesDone)}/${mb(p.bytesTotal)} ${rate} ${eta} ${p.index}/${p.count} ${name}`;
    process.stderr.write(line.padEnd(120));
    if (end) process.stderr.write('\n');
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
  if (!HELP[cmd] || cmd === 'main') throw new UsageError(`unknown command "${cmd}" (quantize, decode, inspect, export-gguf, export-compressed-tensors, backends, submit, worker, status)`);
  const rest = argv.slice(1);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(HELP[cmd] + '\n');
    return 0;
  }
  const ac = new AbortController();
  // The first SIGINT/SIGTERM/SIGHUP/SIGQUIT cancels the job, which removes its outputs and exits 128 + the
  // signal's number (130, 143, 129, 131); a second one removes them synchronously and exits at once.
  const onSig = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) {
      abortAllOutputs();
      process.exit(128 + (osConstants.signals[sig] ?? 2));
    }
    received = sig;
    ac.abort();
  };
  // The handlers stay until the process exits: a signal after cleanup exits at once with its code, rather than
  // by the signal's default action.
  for (const sig of SIGNALS) process.on(sig, onSig);
  if (cmd === 'quantize') {
    const flags: ReturnType<typeof quantizeFlags> = { ...quantizeFlags(), report: { type: 'string' }, 'report-tensors': { type: 'string', multiple: true } };
    const { values, positionals } = parseFlags({ args: rest, allowPositionals: true, strict: true, options: flags });
    if (positionals.length !== 1) throw new UsageError('quantize takes one input path (see --help)');
    if (typeof values.output !== 'string' || !values.output) throw new UsageError('quantize needs -o <output>');
    const reportTensors = values['report-tensors'];
    const opts: QuantizeOptions = {
      ...quantizeOptionsOf(values),
      ...(typeof values.report === 'string' ? { report: values.report } : {}),
      ...(Array.isArray(reportTensors) ? { reportTensors: reportTensors as string[] } : {}),
      signal: ac.signal,
      // Not with --json (a script reads stdout and may capture stderr too), unless --progress asks for it.
      onProgress: progressBar(!values.quiet && (values.progress === true || (process.stderr.isTTY === true && !values.json))),
    };
    const report = await quantize(positionals[0], values.output, opts);
    for (const w of report.warnings ?? []) process.stderr.write(`weightpress: warning: ${w}\n`);
    if (values.json) process.stdout.write(JSON.stringify(toJson(report)) + '\n');
    else if (!values.quiet) process.stdout.write(formatTable(report) + `\nwrote ${report.output}\n`);
    return 0;
  }
  if (cmd === 'submit') {
    const flags: ReturnType<typeof quantizeFlags> = { ...quantizeFlags(), redis: { type: 'string' }, 'unit-size': { type: 'string' }, queue: { type: 'string' }, attempts: { type: 'string' } };
    const { values, positionals } = parseFlags({ args: rest, allowPositionals: true, strict: true, options: flags });
    if (positionals.length !== 1) throw new UsageError('submit takes one input path (see --help)');
    if (typeof values.output !== 'string' || !values.output) throw new UsageError('submit needs -o <outdir>');
    if (typeof values.redis !== 'string') throw new UsageError('submit needs --redis URL');
    const id = await submit(positionals[0], values.output, {
      ...quantizeOptionsOf(values),
      redis: values.redis,
      ...(typeof values['unit-size'] === 'string' ? { unitSize: values['unit-size'] } : {}),
      ...(typeof values.queue === 'string' ? { queue: values.queue } : {}),
      ...(typeof values.attempts === 'string' ? { attempts: int('attempts', values.attempts) } : {}),
    });
    process.stdout.write(values.json ? JSON.stringify({ id }) + '\n' : id + '\n');
    return 0;
  }
  if (cmd === 'worker') {
    const { values } = parseFlags({
      args: rest, strict: true,
      options: { redis: { type: 'string' }, concurrency: { type: 'string' }, threads: { type: 'string' }, 'lock-duration': { type: 'string' }, queue: { type: 'string' }, name: { type: 'string' } },
    });
    if (typeof values.redis !== 'string') throw new UsageError('worker needs --redis URL');
    const w = await runWorker({
      redis: values.redis,
      ...(values.concurrency ? { concurrency: int('concurrency', values.concurrency) } : {}),
      ...(values.threads ? { threads: int('threads', values.threads) } : {}),
      ...(values['lock-duration'] ? { lockDuration: int('lock-duration', values['lock-duration']) } : {}),
      ...(values.queue ? { queue: values.queue } : {}),
      ...(values.name ? { name: values.name } : {}),
    });
    process.stderr.write(`weightpress worker ${w.name}: serving (Ctrl-C or SIGTERM to stop)\n`);
    await new Promise<void>((done) => ac.signal.addEventListener('abort', () => done(), { once: true }));
    await w.close();
    return 0;
  }
  if (cmd === 'status') {
    const { values, positionals } = parseFlags({ args: rest, allowPositionals: true, strict: true, options: { redis: { type: 'string' }, queue: { type: 'string' }, json: { type: 'boolean' } } });
    if (positionals.length !== 1) throw new UsageError('status takes one job id (see --help)');
    if (typeof values.redis !== 'string') throw new UsageError('status needs --redis URL');
    const s = await status(positionals[0], { redis: values.redis, ...(values.queue ? { queue: values.queue } : {}) });
    if (values.json) process.stdout.write(JSON.stringify(s) + '\n');
    else {
      const u = s.units;
      process.stdout.write(
        `job ${s.id}: ${s.state}; units ${u.done}/${u.total} done, ${u.running} running, ${u.waiting} waiting, ${u.failed} failed; ` +
          `${(s.bytesDone / 1e9).toFixed(2)} of ${(s.bytesTotal / 1e9).toFixed(2)} GB, ${(s.throughput / 1e6).toFixed(1)} MB/s` +
          (s.workers.length ? `; workers: ${s.workers.join(', ')}` : '') +
          (s.output ? `; output ${s.output}` : '') +
          (s.error ? `; error ${s.error.code}${s.error.file ? ` (${s.error.file}${s.error.tensor ? `, tensor "${s.error.tensor}"` : ''})` : ''}: ${s.error.message}` : '') +
          '\n',
      );
    }
    return s.state === 'failed' ? 1 : 0;
  }
  if (cmd === 'decode') {
    const { values, positionals } = parseFlags({
      args: rest, allowPositionals: true, strict: true,
      options: {
        output: { type: 'string', short: 'o' }, dtype: { type: 'string' }, threads: { type: 'string' },
        'max-shard-size': { type: 'string' }, device: { type: 'string' }, json: { type: 'boolean' }, quiet: { type: 'boolean' }, progress: { type: 'boolean' },
        force: { type: 'boolean' }, 'allow-overflow': { type: 'boolean' },
      },
    });
    if (positionals.length !== 1) throw new UsageError('decode takes one input path (see --help)');
    if (!values.output) throw new UsageError('decode needs -o <output>');
    const r = await decode(positionals[0], values.output, {
      ...(values.dtype ? { dtype: values.dtype.toUpperCase() as 'F32' } : {}),
      ...(values.threads ? { threads: int('threads', values.threads) } : {}),
      ...(values.device ? { device: values.device as 'auto' } : {}),
      ...(values['max-shard-size'] ? { maxShardSize: values['max-shard-size'] } : {}),
      ...(values.force ? { force: true } : {}),
      ...(values['allow-overflow'] ? { allowOverflow: true } : {}),
      signal: ac.signal,
      onProgress: progressBar(!values.quiet && (values.progress === true || (process.stderr.isTTY === true && !values.json))),
    });
    for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
    if (values.json) process.stdout.write(JSON.stringify(r) + '\n');
    else if (!values.quiet) process.stdout.write(`decoded ${r.tensors} tensors (${(r.bytesOut / 2 ** 20).toFixed(2)} MiB) in ${r.seconds.toFixed(2)} s to ${r.output}\n`);
    return 0;
  }
  if (cmd === 'inspect') {
    const { values, positionals } = parseFlags({ args: rest, allowPositionals: true, strict: true, options: { json: { type: 'boolean' } } });
    if (positionals.length !== 1) throw new UsageError('inspect takes one file (see --help)');
    const report = await inspect(positionals[0]);
    process.stdout.write((values.json ? JSON.stringify(toJson(report)) : formatTable(report, 1000)) + '\n');
    return 0;
  }
  if (cmd === 'export-gguf') {
    const { values, positionals } = parseFlags({
      args: rest, allowPositionals: true, strict: true,
      options: {
        output: { type: 'string', short: 'o' }, type: { type: 'string' }, 'no-flatten': { type: 'boolean' },
        imatrix: { type: 'string' }, importance: { type: 'string' }, 'importance-kind': { type: 'string' }, 'importance-map': { type: 'string', multiple: true },
        'no-compare': { type: 'boolean' }, threads: { type: 'string' }, json: { type: 'boolean' }, strict: { type: 'boolean' }, force: { type: 'boolean' },
      },
    });
    if (positionals.length !== 1) throw new UsageError('export-gguf takes one input path (see --help)');
    if (!values.output) throw new UsageError('export-gguf needs -o <output.gguf>');
    const type = (values.type ?? 'IQ4_NL').toUpperCase() as GgufQuantType;
    const threads = int('threads', values.threads);
    const r = await exportGguf(positionals[0], values.output, {
      type, flatten: !values['no-flatten'], threads, signal: ac.signal, strict: values.strict === true, force: values.force === true,
      ...(values.imatrix !== undefined ? { imatrix: values.imatrix } : {}), ...(values.importance !== undefined ? { importance: values.importance } : {}),
      ...(values['importance-kind'] !== undefined ? { importanceKind: values['importance-kind'] as ImportanceKind } : {}), ...(values['importance-map'] ? { importanceMap: values['importance-map'] } : {}),
    });
    for (const s of r.skipped) process.stderr.write(`weightpress: warning: dropped tensor "${s.name}" (${s.dtype}): ${s.reason}\n`);
    for (const w of r.warnings) process.stderr.write(`weightpress: warning: ${w}\n`);
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
      const dropped = r.skipped.length ? `, ${r.skipped.length} dropped (no GGUF type; --strict refuses)` : '';
      process.stdout.write(
        `wrote ${r.output}: ${T.quantizedTensors} of ${T.tensors + r.skipped.length} tensors as ${type}${fellBack(r)}, ${T.tensors - T.quantizedTensors} kept${dropped}; ${T.bitsPerWeight.toFixed(3)} bits/weight (whole file)\n`,
      );
      process.stdout.write(`SQNR of the ${type} export (quantized tensors): ${T.sqnrDb === null ? 'exact' : T.sqnrDb.toFixed(2) + ' dB'}\n`);
      if (learned !== undefined && learned !== null && T.sqnrDb !== null)
        process.stdout.write(`weightpress learned-table block format on the same tensors: ${learned.toFixed(2)} dB; the export loses ${(learned - T.sqnrDb).toFixed(2)} dB\n`);
    }
    return 0;
  }
  if (cmd === 'export-compressed-tensors') {
    const { values, positionals } = parseFlags({
      args: rest, allowPositionals: true, strict: true,
      options: {
        bits: { type: 'string' }, 'group-size': { type: 'string' }, asymmetric: { type: 'boolean' }, step: { type: 'string' },
        'scale-dtype': { type: 'string' }, include: { type: 'string', multiple: true }, exclude: { type: 'string', multiple: true },
        'max-shard-size': { type: 'string' }, threads: { type: 'string' }, force: { type: 'boolean' }, quiet: { type: 'boolean' }, json: { type: 'boolean' },
      },
    });
    if (positionals.length !== 2) throw new UsageError('export-compressed-tensors takes an input path and an output directory (see --help)');
    const gs = values['group-size'];
    const r = await exportCompressedTensors(positionals[0], positionals[1], {
      bits: int('bits', values.bits),
      groupSize: gs === 'channel' ? 'channel' : int('group-size', gs),
      symmetric: !values.asymmetric,
      step: values.step as 'mse' | 'minmax' | undefined,
      scaleDtype: values['scale-dtype']?.toUpperCase() as 'F16' | 'BF16' | 'F32' | undefined,
      include: values.include, exclude: values.exclude,
      maxShardSize: values['max-shard-size'],
      threads: int('threads', values.threads), signal: ac.signal, force: values.force === true,
      onProgress: progressBar(!values.quiet && !values.json && process.stderr.isTTY === true),
    });
    for (const w of r.warnings) process.stderr.write(`weightpress: warning: ${w}\n`);
    if (values.json) process.stdout.write(JSON.stringify(r) + '\n');
    else {
      const T = r.total;
      const q = r.tensors.filter((t) => t.quantized);
      const qBytes = q.reduce((a, t) => a + t.bytes, 0);
      process.stdout.write(
        `wrote ${r.output}: ${q.length} of ${r.tensors.length} tensors as INT${int('bits', values.bits) ?? 4} (${T.quantizedNumel ? ((8 * qBytes) / T.quantizedNumel).toFixed(3) : '-'} bits/weight over them), ${r.tensors.length - q.length} kept; ${T.bitsPerWeight.toFixed(3)} bits/weight (whole model)${r.config ? '; config.json with quantization_config' : '; no config.json in the input directory'}\n`,
      );
      process.stdout.write(`SQNR of the quantized tensors: ${T.sqnrDb === null ? 'exact' : T.sqnrDb.toFixed(2) + ' dB'}\n`);
    }
    return 0;
  }
  // backends
  const { values } = parseFlags({ args: rest, strict: true, options: { json: { type: 'boolean' } } });
  const b = loadNative().backends();
  if (values.json) process.stdout.write(JSON.stringify(b) + '\n');
  else for (const x of b) process.stdout.write(`${x.name}: ${x.available ? 'available' : 'unavailable'}${x.device ? ` (${x.device})` : ''}${x.reason ? ` — ${x.reason}` : ''}\n`);
  return 0;
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
/** The signal that cancelled the job, if one did. */
let received: NodeJS.Signals | undefined;

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof WeightpressError) {
      process.stderr.write(`\nweightpress: ${e.describe()}\n`.replace(/^\n/, process.stderr.isTTY ? '\n' : ''));
      process.exitCode = e.code === 'E_CANCELLED' ? 128 + (osConstants.signals[received ?? 'SIGINT'] ?? 2) : e.code === 'E_ARGUMENT' ? 2 : 1;
    } else if (e instanceof UsageError || (e as { code?: string })?.code?.startsWith?.('ERR_PARSE_ARGS')) {
      process.stderr.write(`weightpress: ${(e as Error).message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`weightpress: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 70;
    }
  },
);
