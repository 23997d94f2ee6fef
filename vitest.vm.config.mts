import { defineConfig } from 'vitest/config';

// The VM suite (test/vm/*.vm.ts): run inside the VM by test/vm/run.sh, never on the host. In the
// systemd mode (test/vm/run-systemd.sh, QOSD_VM_SYSTEMD=1) the phase files of test/vm/systemd/.
export default defineConfig({
  test: {
    include: process.env.QOSD_VM_SYSTEMD === '1' ? ['test/vm/systemd/*.vm.ts'] : ['test/vm/*.vm.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
    reporters: ['verbose'],
    // The VM's root is an overlay on the host's, which vitest's cache must not write into.
    cacheDir: '/tmp/vitest-cache',
  },
});
