import { defineConfig } from 'vitest/config';

// The Kubernetes suite (test/kube/*.kube.ts): run by test/kube/run.sh (npm run test:kube) against
// the real kubelet, API server and scheduler it starts, never on its own.
export default defineConfig({
  test: {
    include: ['test/kube/*.kube.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
    reporters: ['verbose'],
  },
});
