/**
 * Size budgets (`maxBpw`, `targetSize`): each quantized tensor's bits are chosen among the rate–distortion points it
 * can reach (bits 2 to 8 of its method and codec, each measured by encoding the tensor) so that the output lands
 * at or under the budget with the least total distortion (squared error; with importance weights, each tensor's
 * squared error times its mean importance). The choice is a multiple-choice knapsack: solved exactly over the
 * Pareto front of (bytes, distortion) partial sums (Bellman's dynamic program with dominated states dropped); when
 * that front grows past FRONT_CAP states, by the Lagrangian greedy over each tensor's lower convex hull (Shoham &
 * Gersho 1988), which meets the budget but may leave a little distortion on the table. docs/RECIPES.md.
 */
import type { Checkpoint } from './checkpoint.js';
import type { TensorTask } from './codecs/codec.js';
import { findCodec } from './codecs/registry.js';
import { preservesMean, rowOffsetBytes } from './codecs/rowmean.js';
import { openAuxiliary } from './auxiliary.js';
import { ArgumentError, fromNative } from './errors.js';
import { Cancel, ProgressClock, reportProgress, type TensorSink } from './job.js';
import { findMethod } from './methods/registry.js';
import type { ResolvedQuantizeOptions } from './validate.js';

/** The bits a budget chooses among (when a recipe rule pins bits, that tensor has its one point). */
export const BUDGET_BITS = [2, 3, 4, 5, 6, 7, 8] as const;

/** States of the exact dynamic program at most; past it the Lagrangian greedy decides. */
export const FRONT_CAP = 200_000;

/** One reachable point of a tensor: data bytes written and distortion, with the task that writes it. */
export interface RdPoint {
  bytes: number;
  distortion: number;
}

/**
 * The choice (an index into each item's points) with the least total distortion whose total bytes are at most
 * `budget`, or undefined when even the smallest choice exceeds it. Exact (Pareto-front dynamic program) while the
 * front stays under `cap` states, else the Lagrangian greedy; `exact` says which decided.
 */
export function allocate(
  items: RdPoint[][],
  budget: number,
  cap = FRONT_CAP,
): { choice: number[]; bytes: number; distortion: number; exact: boolean } | undefined {
  const min = items.reduce((a, pts) => a + Math.min(...pts.map((p) => p.bytes)), 0);
  if (!(min <= budget)) return undefined;
  return pareto(items, budget, cap) ?? { ...greedy(items, budget), exact: false };
}

/** The exact multiple-choice knapsack over the Pareto front; undefined when the front passes `cap`. */
function pareto(items: RdPoint[][], budget: number, cap: number): { choice: number[]; bytes: number; distortion: number; exact: boolean } | undefined {
  // Each state: total bytes, total distortion, and how it was reached (the previous layer's state and the point).
  type State = { bytes: number; dist: number; prev: number; pick: number };
  const layers: State[][] = [[{ bytes: 0, dist: 0, prev: -1, pick: -1 }]];
  for (const pts of items) {
    const last = layers[layers.length - 1];
    const next: State[] = [];
    for (let s = 0; s < last.length; s++)
      for (let j = 0; j < pts.length; j++) {
        const bytes = last[s].bytes + pts[j].bytes;
        if (bytes <= budget) next.push({ bytes, dist: last[s].dist + pts[j].distortion, prev: s, pick: j });
      }
    // Keep the states no other state beats in both bytes and distortion.
    next.sort((a, b) => a.bytes - b.bytes || a.dist - b.dist);
    const front: State[] = [];
    for (const st of next) if (!front.length || st.dist < front[front.length - 1].dist) front.push(st);
    if (front.length > cap) return undefined;
    layers.push(front);
  }
  const end = layers[layers.length - 1];
  // The front's distortion falls with bytes: its last state is the least distortion within the budget.
  let k = end.length - 1;
  const best = end[k];
  const choice = new Array<number>(items.length);
  for (let i = items.length; i > 0; i--) {
    const st = layers[i][k];
    choice[i - 1] = st.pick;
    k = st.prev;
  }
  return { choice, bytes: best.bytes, distortion: best.dist, exact: true };
}

/** Lagrangian greedy: from the smallest point of each item, take the upgrade of best distortion saved per byte that fits. */
function greedy(items: RdPoint[][], budget: number): { choice: number[]; bytes: number; distortion: number } {
  // Each item's lower convex hull in (bytes, distortion), smallest first.
  const hulls = items.map((pts) => {
    const order = pts.map((_, j) => j).sort((a, b) => pts[a].bytes - pts[b].bytes || pts[a].distortion - pts[b].distortion);
    const h: number[] = [];
    for (const j of order) {
      if (h.length && pts[j].distortion >= pts[h[h.length - 1]].distortion) continue;
      while (h.length >= 2) {
        const a = pts[h[h.length - 2]],
          b = pts[h[h.length - 1]],
          c = pts[j];
        // b lies on or above the segment a–c: drop it.
        if ((b.distortion - a.distortion) * (c.bytes - a.bytes) >= (c.distortion - a.distortion) * (b.bytes - a.bytes)) h.pop();
        else break;
      }
      h.push(j);
    }
    return h;
  });
  const at = hulls.map(() => 0);
  let bytes = items.reduce((a, pts, i) => a + pts[hulls[i][0]].bytes, 0);
  for (;;) {
    let best = -1,
      ratio = 0;
    for (let i = 0; i < items.length; i++) {
      const h = hulls[i];
      if (at[i] + 1 >= h.length) continue;
      const p = items[i][h[at[i]]],
        q = items[i][h[at[i] + 1]];
      const db = q.bytes - p.bytes;
      if (bytes + db > budget) continue;
      const r = (p.distortion - q.distortion) / Math.max(db, 1e-9);
      if (r > ratio) {
        best = i;
        ratio = r;
      }
    }
    if (best < 0) break;
    const h = hulls[best];
    bytes += items[best][h[at[best] + 1]].bytes - items[best][h[at[best]]].bytes;
    at[best]++;
  }
  const choice = hulls.map((h, i) => h[at[i]]);
  return { choice, bytes, distortion: choice.reduce((a, j, i) => a + items[i][j].distortion, 0) };
}

/** A sink that keeps nothing and counts the data bytes a codec writes. */
class CountingSink implements TensorSink {
  bytes = 0;
  async add(_name: string, _dtype: string, _shape: number[], data: Uint8Array): Promise<void> {
    this.bytes += data.byteLength;
  }
}

/** Why a method (with this granularity) cannot take a budget (its bits are not what sets its size), or undefined. */
export function budgetRefusal(method: string, granularity: string): string | undefined {
  const m = findMethod(method);
  if (!m) return undefined;
  if (m.codec !== undefined) return `method ${m.name} sizes its codes by subvector and centroids, not bits`;
  const own = m.options.map((s) => s.name as string).find((n) => ['rate', 'compressionRatio', 'targetValues', 'lambda', 'levels'].includes(n));
  if (own) return `method ${m.name} sets its size by ${own}, not bits`;
  if (granularity === 'network') return "granularity 'network' shares one codebook between tensors";
  return undefined;
}

function refusal(t: TensorTask): string | undefined {
  return budgetRefusal(t.method, t.options.granularity as string);
}

/**
 * Chooses the bits of every quantized task for the budget in `o` (maxBpw or targetSize) and re-plans the tasks with
 * them, in place. `planOne` plans one tensor with given options (lib/plan.ts, with the codecs' fallbacks);
 * `headerBytes` is the output's header bytes at most for these tasks. Reads each quantized tensor once per
 * candidate (progress phase 'allocate'). Throws ArgumentError for a method a budget cannot drive and for a budget
 * no choice meets (naming the smallest reachable size), CancelledError on abort, the codecs' errors.
 */
export async function allocateBits(
  ckpt: Checkpoint,
  tasks: TensorTask[],
  o: ResolvedQuantizeOptions,
  cancel: Cancel,
  warnings: string[],
  planOne: (task: TensorTask, bits: number, warnings: string[]) => TensorTask,
  headerBytes: (tasks: TensorTask[]) => number,
  pinned: (task: TensorTask) => boolean,
): Promise<void> {
  const which = o.maxBpw !== undefined ? `maxBpw ${o.maxBpw}` : `targetSize ${o.targetSize}`;
  const quantized = tasks.map((t, i) => i).filter((i) => tasks[i].codec !== 'keep');
  for (const i of quantized) {
    const why = refusal(tasks[i]);
    if (why)
      throw new ArgumentError(
        `option ${o.maxBpw !== undefined ? 'maxBpw' : 'targetSize'}: tensor "${tasks[i].tensor.name}": ${why}; a budget chooses bits (methods: uniform, kmeans, kmeans-optimal, hessian-kmeans, normal-float)`,
      );
  }
  // Candidates: each quantized task at every budget bits its codec accepts (a pinned task at its own bits).
  const candidates: TensorTask[][] = quantized.map((i) => {
    const t = tasks[i];
    const bits = pinned(t) ? [t.options.bits] : BUDGET_BITS.filter((b) => !findCodec(t.codec)?.checkOptions?.({ ...t.options, bits: b }));
    return bits.map((b) => planOne(t, b, []));
  });
  const keptBytes = tasks.reduce((a, t) => a + (t.codec === 'keep' ? t.tensor.byteLength : 0), 0);
  const numel = tasks.reduce((a, t) => a + t.tensor.numel, 0);
  const budget = o.maxBpw !== undefined ? Math.floor((o.maxBpw * numel) / 8) - keptBytes : (o.targetSize as number) - keptBytes - headerBytes(tasks);
  const points: RdPoint[][] = [];
  const aux = await openAuxiliary(tasks[quantized[0]]?.options);
  const clock = new ProgressClock();
  const bytesTotal = candidates.reduce((a, c, k) => a + c.length * tasks[quantized[k]].tensor.byteLength, 0);
  let bytesDone = 0;
  try {
    for (const [k, cands] of candidates.entries()) {
      const t = tasks[quantized[k]].tensor;
      let weight = 1;
      if (aux.importance) {
        const w = await aux.importance.weightsFor(t);
        if (w && w.length) weight = w.reduce((a, v) => a + v, 0) / w.length;
      }
      const pts: RdPoint[] = [];
      for (const [j, c] of cands.entries()) {
        cancel.check(ckpt.path);
        const codec = findCodec(c.codec)!;
        if (codec.name === 'keep') pts.push({ bytes: t.byteLength, distortion: 0 });
        else {
          const sink = new CountingSink();
          const quiet: string[] = [];
          const r = await codec
            .encode(
              c,
              { ckpt, out: sink, cancel, threads: o.threads, device: o.device, importance: aux.importance, calibration: aux.calibration, warnings: quiet },
              findMethod(c.method)!,
            )
            .catch((e: unknown) => {
              throw fromNative(e, { file: t.file, tensor: t.name });
            });
          // Row offsets (--preserve-mean) are added after the codec's data: counted at their largest (F32).
          const offsets = preservesMean(c) ? rowOffsetBytes(t).data : 0;
          pts.push({ bytes: sink.bytes + offsets, distortion: r.metrics.mse * t.numel * weight });
        }
        bytesDone += t.byteLength;
        // Within the tensor: its candidates done; after its last one, the tensor itself.
        const last = j + 1 === cands.length;
        reportProgress(
          o.onProgress,
          {
            phase: 'allocate',
            tensor: t.name,
            index: k + (last ? 1 : 0),
            count: candidates.length,
            bytesDone,
            bytesTotal,
            ...(last ? {} : { within: { done: j + 1, total: cands.length } }),
          },
          clock,
        );
      }
      points.push(pts);
    }
  } finally {
    aux.close();
  }
  const got = allocate(points, budget);
  if (!got) {
    const least = points.reduce((a, pts) => a + Math.min(...pts.map((p) => p.bytes)), 0);
    const reach =
      o.maxBpw !== undefined
        ? `${(((least + keptBytes) * 8) / Math.max(1, numel)).toFixed(3)} bits per weight`
        : `${least + keptBytes + headerBytes(tasks)} bytes`;
    throw new ArgumentError(
      `option ${o.maxBpw !== undefined ? 'maxBpw' : 'targetSize'}: ${which} cannot be met: the smallest choice (${BUDGET_BITS[0]} bits wherever a rule does not pin them; kept tensors as they are) writes ${reach}`,
      { file: ckpt.path },
    );
  }
  if (!got.exact)
    warnings.push(
      `${which}: the bit allocation's exact search passed ${FRONT_CAP} states; the Lagrangian greedy chose the bits (within the budget, perhaps not the least distortion)`,
    );
  for (const [k, i] of quantized.entries()) {
    const chosen = candidates[k][got.choice[k]];
    const w: string[] = [];
    tasks[i] = planOne(tasks[i], chosen.options.bits, w); // the chosen task again, with its plan's warnings this time
    warnings.push(...w);
  }
}
