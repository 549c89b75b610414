/**
 * Recipes: ordered rules that give different tensors different methods, codecs, bits and options in one run
 * (`--recipe FILE`, `--preset NAME`; the API's `recipe` and `preset` options). Each rule is a tensor-name pattern
 * (or a list of them: glob with * and ?, or /regex/) with options; the first rule whose pattern matches a tensor
 * quantizes it, and tensors no rule matches take the recipe's `default` (or the job's options). Rules apply to
 * the tensors the job quantizes (include/exclude and the size rule choose those); `keep: true` keeps a tensor as
 * it is. A rule's options are layered over the job's options (the command line's, or the API call's), so a preset
 * that sets only bits keeps the method and codec the job asks for. Format and presets: docs/RECIPES.md.
 *
 * Every rule is resolved with the job's own option checks (lib/validate.ts) before any tensor is read; a bad rule
 * is an ArgumentError naming the recipe file, the rule's number and the problem.
 */
import { readFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';

import { parse as parseYaml } from 'yaml';

import { ArgumentError, IoError } from './errors.js';
import type { OptionSpec } from './methods/options.js';
import type { QuantizeOptions, ResolvedQuantizeOptions } from './validate.js';

/** One rule as written: `match` (a pattern or a list), `keep`, and quantize options (API names or flag names). */
export interface RecipeRule {
  match: string | string[];
  /** Keep the matched tensors as they are. */
  keep?: boolean;
  [option: string]: unknown;
}

/** A recipe as written (JSON or YAML): the ordered rules and the options of the tensors no rule matches. */
export interface Recipe {
  rules: RecipeRule[];
  default?: Omit<RecipeRule, 'match'>;
}

/** What the scheme records for a tensor a recipe chose: the recipe, the rule's number (1-based; null: the default) and its patterns. */
export interface RuleRef {
  recipe: string;
  index: number | null;
  match: string[];
}

/** A rule ready to apply: its record, its compiled patterns, and the job's options with the rule's layered over. */
export interface ResolvedRule {
  ref: RuleRef;
  patterns: RegExp[];
  keep: boolean;
  options: ResolvedQuantizeOptions;
  /** The rule sets bits itself (a size budget then leaves them as they are). */
  pinnedBits: boolean;
}

export interface ResolvedRecipe {
  /** The recipe's name: "preset q4_k_m", or the file's path, or "recipe" for an object given to the API. */
  source: string;
  rules: ResolvedRule[];
  default: ResolvedRule;
}

/**
 * Options that belong to the job, not to a rule: which tensors are quantized, where the work runs, the output,
 * the importance and calibration files (one per job), the budget, and the recipe itself.
 */
export const JOB_ONLY = [
  'include',
  'exclude',
  'minDims',
  'minElements',
  'maxShardSize',
  'threads',
  'device',
  'force',
  'importance',
  'imatrix',
  'importanceKind',
  'importanceMap',
  'calibration',
  'calibrationMap',
  'recipe',
  'preset',
  'maxBpw',
  'targetSize',
  'signal',
  'onProgress',
] as const;

// Tensor-name patterns shared by the presets: Hugging Face names (Llama, Mistral, Qwen, Gemma, GPT-2, GPT-NeoX,
// BLOOM) and llama.cpp's GGUF names.
const EMBEDDINGS = '/(^|\\.)(embed_tokens|wte|word_embeddings|tok_embeddings|token_embd|embed_in)(\\.weight)?$/';
const OUTPUT = '/(^|\\.)(lm_head|output|embed_out)(\\.weight)?$/';
const V_PROJ = '/(^|\\.)(v_proj|attn_v)(\\.weight)?$/';
const DOWN_PROJ = '/(^|\\.)(down_proj|ffn_down|dense_4h_to_h|c_proj_mlp)(\\.weight)?$/';

/** A preset: a recipe with one line of --help and the llama.cpp type mix it follows. */
export interface Preset {
  summary: string;
  recipe: Recipe;
}

const mix = (base: number, vDown: number): Recipe => ({
  rules: [
    { match: [EMBEDDINGS, OUTPUT], bits: 8 },
    { match: [V_PROJ, DOWN_PROJ], bits: vDown },
  ],
  default: { bits: base },
});

/**
 * The presets. They set bits only: the job's method and codec (default kmeans-optimal, scalar) apply. llama.cpp's
 * K-quant mixes (llama-quant.cpp) give attn_v / ffn_down more bits on about half the layers (its use_more_bits:
 * the first and last eighth and every third layer between); these give them to every layer (docs/RECIPES.md).
 */
export const PRESETS: Record<string, Preset> = {
  q3_k_m: { summary: 'embeddings and output layer 8 bits, v_proj and down_proj 5 bits, the rest 3 bits (like llama.cpp Q3_K_M)', recipe: mix(3, 5) },
  q4_k_m: { summary: 'embeddings and output layer 8 bits, v_proj and down_proj 6 bits, the rest 4 bits (like llama.cpp Q4_K_M)', recipe: mix(4, 6) },
  q5_k_m: { summary: 'embeddings and output layer 8 bits, v_proj and down_proj 6 bits, the rest 5 bits (like llama.cpp Q5_K_M)', recipe: mix(5, 6) },
  q6_k: {
    summary: 'embeddings and output layer 8 bits, the rest 6 bits (like llama.cpp Q6_K)',
    recipe: { rules: [{ match: [EMBEDDINGS, OUTPUT], bits: 8 }], default: { bits: 6 } },
  },
};

/** Reads a recipe file: JSON (.json) or YAML (anything else; YAML is a superset of JSON). IoError/ArgumentError name the file. */
export function readRecipe(file: string): Recipe {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new IoError(`cannot read the recipe: ${(e as Error).message}`, { file });
  }
  try {
    return (extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text)) as Recipe;
  } catch (e) {
    throw new ArgumentError(`recipe is not valid ${extname(file).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`, {
      file,
    });
  }
}

/** What resolveRecipe needs from lib/validate.ts (passed in, so that the two modules do not import each other). */
export interface RecipeContext {
  resolve: (o: QuantizeOptions) => ResolvedQuantizeOptions;
  compile: (option: string, p: string) => RegExp;
  /** Every declared option (names and flags). */
  specs: readonly OptionSpec[];
}

/**
 * Resolves a recipe (a file path, a Recipe object, or a preset's name) against the job's options `job` (as given):
 * every rule's options are checked as quantize() checks them, before any work. Throws ArgumentError naming the
 * file (or preset), the rule's number and the problem; IoError when the file cannot be read.
 */
export function resolveRecipe(recipe: string | Recipe | undefined, preset: string | undefined, job: QuantizeOptions, ctx: RecipeContext): ResolvedRecipe {
  let raw: Recipe;
  let source: string;
  let file: string | undefined;
  if (preset !== undefined) {
    raw = PRESETS[preset].recipe;
    source = `preset ${preset}`;
  } else if (typeof recipe === 'string') {
    file = resolve(recipe);
    raw = readRecipe(file);
    source = recipe;
  } else {
    raw = recipe!;
    source = 'recipe';
  }
  const where = (rule: string, problem: string) => new ArgumentError(`${file ? '' : `${source}: `}${rule}: ${problem}`, file ? { file } : {});
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw where('recipe', 'must be an object with "rules" (a list) and optionally "default"');
  for (const k of Object.keys(raw)) if (k !== 'rules' && k !== 'default') throw where('recipe', `unknown key ${JSON.stringify(k)} (known: rules, default)`);
  if (!Array.isArray(raw.rules)) throw where('recipe', '"rules" must be a list of rules');
  const base: Record<string, unknown> = { ...job };
  for (const k of ['recipe', 'preset', 'signal', 'onProgress', 'maxBpw', 'targetSize'] as const) delete base[k];
  const byFlag = new Map(ctx.specs.map((s) => [s.flag.slice(2), s.name as string]));
  const known = new Set(ctx.specs.map((s) => s.name as string));

  const one = (r: unknown, index: number | null): ResolvedRule => {
    const label = index === null ? 'default' : `rule ${index}`;
    if (!r || typeof r !== 'object' || Array.isArray(r)) throw where(label, 'must be an object (match, and options such as method, codec, bits)');
    const rule = r as Record<string, unknown>;
    let match: string[] = [];
    if (index !== null) {
      const m = rule.match;
      match = typeof m === 'string' ? [m] : Array.isArray(m) && m.length && m.every((p) => typeof p === 'string' && p) ? (m as string[]) : [];
      if (!match.length || match.some((p) => !p))
        throw where(label, 'needs "match": a tensor-name pattern (glob with * and ?, or /regex/) or a non-empty list of them');
    } else if (rule.match !== undefined) throw where(label, 'takes no "match" (it applies to the tensors no rule matches)');
    let patterns: RegExp[];
    try {
      patterns = match.map((p) => ctx.compile('match', p));
    } catch (e) {
      throw where(label, (e as Error).message);
    }
    if (rule.keep !== undefined && typeof rule.keep !== 'boolean') throw where(label, `keep must be true or false, got ${JSON.stringify(rule.keep)}`);
    const keep = rule.keep === true;
    const opts: Record<string, unknown> = {};
    for (const [k0, v] of Object.entries(rule)) {
      if (k0 === 'match' || k0 === 'keep') continue;
      const k = known.has(k0) ? k0 : (byFlag.get(k0) ?? k0);
      if ((JOB_ONLY as readonly string[]).includes(k))
        throw where(label, `option ${k0} belongs to the job, not to a rule (give it on the command line or in the options)`);
      if (!known.has(k)) throw where(label, `unknown option ${JSON.stringify(k0)}`);
      if (keep) throw where(label, `keep: true takes no options (got ${k0})`);
      opts[k] = v;
    }
    if (opts.granularity === 'network')
      throw where(label, "granularity 'network' (one codebook for every tensor) cannot be one rule's: give it to the whole job");
    let options: ResolvedQuantizeOptions;
    try {
      options = ctx.resolve({ ...base, ...opts } as QuantizeOptions);
    } catch (e) {
      if (e instanceof ArgumentError) throw where(label, e.message);
      throw e;
    }
    return { ref: { recipe: source, index, match }, patterns, keep, options, pinnedBits: opts.bits !== undefined };
  };

  const rules = raw.rules.map((r, k) => one(r, k + 1));
  const def = one(raw.default ?? {}, null);
  return { source, rules, default: def };
}

/** The rule that takes a tensor: the first whose pattern matches its name, else the default. */
export function ruleFor(recipe: ResolvedRecipe, name: string): ResolvedRule {
  return recipe.rules.find((r) => r.patterns.some((p) => p.test(name))) ?? recipe.default;
}

/** A rule's record as one short string: "preset q4_k_m #2", "recipe.yaml default". */
export function ruleLabel(r: RuleRef): string {
  return `${r.recipe} ${r.index === null ? 'default' : `#${r.index}`}`;
}
