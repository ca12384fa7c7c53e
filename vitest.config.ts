import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Compiles the renderer's runes (.svelte.ts state classes) for test/renderer/.
  plugins: [svelte({ configFile: false })],
  test: {
    include: ['test/**/*.test.ts'],
    // Engine tests hold ONNX Runtime sessions and several hundred MB each; two workers fit the 2-core machines.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // What the UI shows after a call on a worker thread (a memory plan, a dataset preview) may take a thread start
    // on a busy 2-core machine: polls wait up to 10 s, not the default 1 s.
    expect: { poll: { timeout: 10_000 } },
    reporters: ['default', './test/support/summaryReporter.ts'],
    setupFiles: ['./test/support/setup.ts'],
    globalSetup: ['./test/support/globalSetup.ts'],
  },
});
