// A device's identity before its rules are touched, on real loop devices and the real cgroup v1
// throttle: a volume whose loop device was detached under the daemon, its number then given by
// the kernel to another file that another pod's throttle names. Before, the reconcile pass took
// the recorded number for the volume's and cleared the other pod's rule as a stray of its own.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { nodeTestBlocker } from '../helpers/host';
import { useTestDaemon } from '../helpers/daemon';
import { callDriver, mountOptions, podVolumeDir } from '../helpers/kubelet';
import { makeLeaf, makePodCgroup, newPodUid, ruleLines } from '../helpers/cgroup';
import { request } from '../../src/cli/client';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

interface Vol { name: string; device: string; deviceNumber: string; backing: string }
type Events = { events: { kind: string; detail: Record<string, unknown> }[] };
const RIOPS = 'blkio.throttle.read_iops_device';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const backingOf = (loop: string) => execFileSync('losetup', ['--noheadings', '-O', 'BACK-FILE', loop], { encoding: 'utf8' }).trim();

describe.skipIf(blocker)(`device identity before rules${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  const fx = useTestDaemon();
  const api = <T>(method: string, url: string, body?: unknown) => request<T>(fx.node.socket, method, url, body);

  async function eventsOf(name: string, kind: string) {
    return (await api<Events>('GET', `/v1/volumes/${name}/events`)).body.events.filter((e) => e.kind === kind);
  }

  it("a volume whose loop number went to another file: the other pod's rule is kept, the mismatch recorded, the volume's loop attached again", async () => {
    const created = await api<Vol>('POST', '/v1/volumes', { name: 'moved', size: '16Mi', qos: { max: { readIops: 123 } } });
    expect(created.status).toBe(201);
    const vol = created.body;
    // The loop device goes (an operator's losetup -d), and the kernel's next attach of another
    // file gets the same device and number.
    execFileSync('losetup', ['-d', vol.device]);
    const foreign = path.join(fx.node.dir, 'foreign.img');
    fs.writeFileSync(foreign, Buffer.alloc(1 << 20));
    execFileSync('losetup', ['--direct-io=on', vol.device, foreign]);
    try {
      expect(backingOf(vol.device)).toBe(foreign);
      // Another pod throttled on that device by whoever manages it now.
      const podCgroup = makePodCgroup(fx.node.cgroupRoot, newPodUid());
      const leaf = makeLeaf(podCgroup);
      fs.writeFileSync(path.join(leaf, RIOPS), `${vol.deviceNumber} 55`);

      // Passes run every 2 s: wait for the daemon to notice, then one more pass.
      const until = Date.now() + 30_000;
      while (Date.now() < until && (await eventsOf('moved', 'device-refound')).length === 0) await sleep(200);
      await sleep(2500);

      expect(ruleLines(leaf, RIOPS)).toBe(`${vol.deviceNumber} 55`);
      expect(backingOf(vol.device)).toBe(foreign);
      const mismatch = await eventsOf('moved', 'device-mismatch');
      expect(mismatch).toEqual([expect.objectContaining({ detail: { device: vol.deviceNumber, found: 'other', why: expect.stringContaining(`is backed by ${foreign}`) } })]);
      const now = (await api<Vol>('GET', '/v1/volumes/moved')).body;
      expect(now.deviceNumber).not.toBe(vol.deviceNumber);
      expect(backingOf(now.device)).toBe(vol.backing);
      expect(await eventsOf('moved', 'device-refound')).toEqual([expect.objectContaining({ detail: { from: vol.deviceNumber, to: now.deviceNumber, device: now.device } })]);
      const metrics = (await api<string>('GET', '/metrics')).body;
      expect(metrics).toMatch(/^qosd_device_mismatches_total\{found="other"\} 1$/m);

      // The volume works on its new device: mounted for a pod, throttled there.
      const podUid = newPodUid();
      const own = makeLeaf(makePodCgroup(fx.node.cgroupRoot, podUid));
      const target = podVolumeDir(fx.node.kubeletRoot, podUid, 'moved');
      fs.mkdirSync(target, { recursive: true });
      const m = await callDriver(fx.driver, ['mount', target, mountOptions({ podUid, volumeName: 'moved', user: { maxReadIops: '123' } })]);
      expect(m.reply.status, m.reply.message).toBe('Success');
      expect(ruleLines(own, RIOPS)).toBe(`${now.deviceNumber} 123`);
      expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
      fs.writeFileSync(path.join(leaf, RIOPS), `${vol.deviceNumber} 0`);
    } finally {
      execFileSync('losetup', ['-d', vol.device]);
    }
  }, 60_000);
});
