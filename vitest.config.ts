import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Prefer the fresh local build over any prebuilt binary, so a stale prebuild cannot hide it.
    env: { WEIGHTPRESS_PREFER_LOCAL: '1' },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
