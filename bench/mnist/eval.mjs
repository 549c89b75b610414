#!/usr/bin/env node
// Test accuracy of the MNIST MLP stored in a dense safetensors file (F32, F16 or BF16; a weightpress file must be
// decoded first).   node bench/mnist/eval.mjs CHECKPOINT.safetensors [...] [--json]
import { parseArgs } from 'node:util';
import { loadMnist, loadSafetensors, accuracy } from './mlp.mjs';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { json: { type: 'boolean', default: false } } });
if (positionals.length < 1) {
  console.error('usage: node bench/mnist/eval.mjs CHECKPOINT.safetensors [...] [--json]');
  process.exit(2);
}
const data = loadMnist();
for (const path of positionals) {
  const acc = accuracy(loadSafetensors(path), data.testX, data.testY);
  const correct = Math.round(acc * data.testX.length);
  if (values.json) console.log(JSON.stringify({ checkpoint: path, accuracy: acc, correct, total: data.testX.length }));
  else console.log(`${path}: test accuracy ${(acc * 100).toFixed(2)} % (${correct}/${data.testX.length})`);
}
