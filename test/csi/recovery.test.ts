// qosd killed (SIGKILL, by its crash switch) at every step of NodePublishVolume and
// NodeUnpublishVolume, for a filesystem and a raw-block volume: after a restart kubelet's retry
// of the same call succeeds, the target holds the volume once (or not at all), the pod's rules
// are exactly the volume's, and nothing is left behind after the unpublish.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeTestBlocker } from '../helpers/host';
import { startDaemon, useTestDaemon } from '../helpers/daemon';
import { makeLeaf, makePodCgroup, newPodUid, ruleLines } from '../helpers/cgroup';
import { blockCapability, csiBlockTarget, csiClient, csiMountTarget, mountCapability, podInfo } from '../helpers/csi';
import { readMountinfo } from '../../src/host/mountinfo';
import { hostRoot } from '../../src/host/host-root';
import { CRASH_POINTS } from '../../src/service/crash-points';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

interface Vol { deviceNumber: string }
const RIOPS = 'blkio.throttle.read_iops_device';
const mountsAt = (target: string) => readMountinfo(hostRoot()).filter((m) => m.mountPoint === target);

describe.skipIf(blocker)(`CSI publish and unpublish killed at every step${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  const fx = useTestDaemon();

  /** Restarts the daemon with the crash switch set, makes the call (which the crash cuts off), restarts clean. */
  async function crashDuring(step: string, method: string, req: unknown): Promise<void> {
    await fx.daemon.stop();
    fx.daemon = await startDaemon(fx.node, [], { QOSD_CRASH_AT: step });
    const csi = csiClient(fx.node.csiSocket, 20_000);
    const code = await csi.code('Node', method, req);
    csi.close();
    await fx.daemon.exited;
    expect(fx.daemon.child.signalCode, `${step}: answered ${code}`).toBe('SIGKILL');
    expect(code).toBe('UNAVAILABLE');
    fx.daemon = await startDaemon(fx.node);
  }

  // Every step for a filesystem; for a raw-block volume the steps where its own code runs (the
  // bind mount made but not recorded; the bind mount gone and the rules cleared, the row not yet deleted).
  const STEPS = CRASH_POINTS.filter((s) => s.startsWith('attach:') || s.startsWith('detach:'));
  for (const [kind, steps] of [['mount', STEPS], ['block', ['attach:mounted', 'detach:cleared']]] as const) {
    for (const step of steps) {
      it(`${kind}: killed at ${step}, the retry succeeds with one mount and exact rules; nothing left after unpublish`, async () => {
        const podUid = newPodUid();
        const podCgroup = makePodCgroup(fx.node.cgroupRoot, podUid);
        const leaf = makeLeaf(podCgroup);
        const name = `r-${kind}-${step.replace(':', '-')}`;
        const vol = (await fx.api<Vol>('POST', '/v1/volumes', { name, size: '16Mi', qos: { max: { readIops: 300 } } })).body;
        const target = kind === 'mount' ? csiMountTarget(fx.node.kubeletRoot, podUid, `pv-${name}`) : csiBlockTarget(fx.node.kubeletRoot, podUid, `pv-${name}`);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        const publish = { volume_id: name, target_path: target, volume_capability: kind === 'mount' ? mountCapability() : blockCapability(), readonly: false, volume_context: podInfo(podUid) };
        const unpublish = { volume_id: name, target_path: target };
        const csi = () => csiClient(fx.node.csiSocket);

        if (step.startsWith('attach:')) await crashDuring(step, 'NodePublishVolume', publish);
        let c = csi();
        expect(await c.code('Node', 'NodePublishVolume', publish)).toBe('OK');
        c.close();
        expect(mountsAt(target)).toHaveLength(1);
        expect(ruleLines(leaf, RIOPS)).toBe(`${vol.deviceNumber} 300`);

        if (step.startsWith('detach:')) await crashDuring(step, 'NodeUnpublishVolume', unpublish);
        c = csi();
        expect(await c.code('Node', 'NodeUnpublishVolume', unpublish)).toBe('OK');
        c.close();
        expect(mountsAt(target)).toHaveLength(0);
        expect(fs.existsSync(target)).toBe(false);
        expect(ruleLines(leaf, RIOPS)).toBe('');
        expect(ruleLines(podCgroup, RIOPS)).toBe('');
        const atts = (await fx.api<{ attachments: { volume: string }[] }>('GET', '/v1/attachments')).body.attachments;
        expect(atts.filter((a) => a.volume === name)).toEqual([]);
      });
    }
  }
});
