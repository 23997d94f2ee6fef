// Phase 3 of the systemd-mode VM, after the power was pulled (sysrq b: no sync, no unmount) while
// qosd was creating a volume for a pod: everything phase 2 checked holds again, and kubelet's
// retry of the interrupted mount succeeds, formatted once and mounted once.
import { describe, it } from 'vitest';
import { checkNodeCameBack } from './came-back';

describe('after a hard power-off in the middle of a create', () => {
  it('comes back with every volume intact, and the interrupted mount retried to success', async () => {
    await checkNodeCameBack();
  });
});
