#!/usr/bin/env node
// npm run fuzz -- [--count N] [--seed S]: the mutation fuzzer of test/fuzz.ts with more variants than npm test runs.
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { count: { type: 'string', default: '20000' }, seed: { type: 'string', default: String(Date.now() % 2 ** 31) } } });
const r = spawnSync('npx', ['vitest', 'run', 'test/fuzz.test.ts'], {
  stdio: 'inherit',
  env: { ...process.env, WP_FUZZ_COUNT: values.count, WP_FUZZ_SEED: values.seed },
});
process.exit(r.status ?? 1);
