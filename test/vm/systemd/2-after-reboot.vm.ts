// Phase 2 of the systemd-mode VM, after `systemctl reboot`: qosd is up again (enabled at boot),
// every volume of phase 1 is there with its data, each file volume's loop device was attached
// again (one per file), and kubelet's retry of each pod's mount succeeds with nothing mounted
// twice. Then phase.sh pulls the plug in the middle of a create (pull-plug.mjs).
import { describe, it } from 'vitest';
import { checkNodeCameBack } from './came-back';

describe('after an orderly reboot', () => {
  it('comes back with every volume intact, loops re-attached and kubelet retries succeeding', async () => {
    await checkNodeCameBack();
  });
});
