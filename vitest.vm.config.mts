import { defineConfig } from 'vitest/config';

// The VM suite (test/vm/*.vm.ts): run inside the VM by test/vm/run.sh, never on the host.
export default defineConfig({
  test: {
    include: ['test/vm/**/*.vm.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
    reporters: ['verbose'],
    // The VM's root is an overlay on the host's, which vitest's cache must not write into.
    cacheDir: '/tmp/vitest-cache',
  },
});
