#!/usr/bin/env node
// Train the seeded MNIST MLP and write OUTDIR/mlp.safetensors (F32) and OUTDIR/calibration.safetensors (the
// layer-input Gram matrices for --calibration).
//   node bench/mnist/make.mjs OUTDIR [--hidden N] [--epochs N] [--seed N] [--lr X]
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadMnist, train, accuracy, grams, saveSafetensors, loadSafetensors, saveGrams } from './mlp.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    hidden: { type: 'string', default: '256' },
    epochs: { type: 'string', default: '8' },
    seed: { type: 'string', default: '1' },
    lr: { type: 'string', default: '0.002' },
    quiet: { type: 'boolean', default: false },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node bench/mnist/make.mjs OUTDIR [--hidden N] [--epochs N] [--seed N] [--lr X] [--quiet]');
  process.exit(2);
}
const out = positionals[0];
const opts = { hidden: +values.hidden, epochs: +values.epochs, seed: +values.seed, lr: +values.lr };
for (const [k, v] of Object.entries(opts)) if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k}: ${v} is not a positive number`);
mkdirSync(out, { recursive: true });

let t = performance.now();
const data = loadMnist();
console.log(`data: ${data.trainX.length} training, ${data.testX.length} test images (${((performance.now() - t) / 1000).toFixed(1)} s)`);

t = performance.now();
const mlp = train({ ...opts, data, log: values.quiet ? null : (s) => console.log(`  ${s}`) });
const trainS = (performance.now() - t) / 1000;
const acc = accuracy(mlp, data.testX, data.testY);
console.log(`trained 784 → ${opts.hidden} → 10 (seed ${opts.seed}, ${opts.epochs} epochs) in ${trainS.toFixed(1)} s`);
console.log(`full-precision test accuracy: ${(acc * 100).toFixed(2)} %`);

const mlpPath = join(out, 'mlp.safetensors');
saveSafetensors(mlpPath, mlp);
const back = accuracy(loadSafetensors(mlpPath), data.testX, data.testY);
if (back !== acc) throw new Error(`${mlpPath}: reloaded accuracy ${back} differs from ${acc}`);
console.log(`wrote ${mlpPath} (reloaded: ${(back * 100).toFixed(2)} %)`);

t = performance.now();
const calPath = join(out, 'calibration.safetensors');
saveGrams(calPath, grams(mlp, data.trainX));
console.log(`wrote ${calPath}: Gram matrices of fc1 [784, 784] and fc2 [${opts.hidden}, ${opts.hidden}] over the ${data.trainX.length} training images (${((performance.now() - t) / 1000).toFixed(1)} s)`);
