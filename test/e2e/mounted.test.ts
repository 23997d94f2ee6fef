// Attached means mounted, and one file has one loop device. A volume whose mount is lost while
// its pod lives is mounted again by the periodic pass (an event, a metric, the data there); a
// target holding another device is reported and left alone; and a loop device attached to a
// volume's file from inside a mount namespace that has since died (what a systemd unit with
// ProtectSystem= left behind) is found again by device and inode across restarts, never doubled.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { nodeTestBlocker } from '../helpers/host';
import { startDaemon, useTestDaemon } from '../helpers/daemon';
import { callDriver, mountOptions, podVolumeDir } from '../helpers/kubelet';
import { makeLeaf, makePodCgroup, newPodUid, ruleLines } from '../helpers/cgroup';
import { readMountinfo } from '../../src/host/mountinfo';
import { hostRoot } from '../../src/host/host-root';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

interface Vol { name: string; device: string; deviceNumber: string; backing: string }
const RIOPS = 'blkio.throttle.read_iops_device';
const mountsAt = (target: string) => readMountinfo(hostRoot()).filter((m) => m.mountPoint === target);
const loopsOf = (backing: string) => execFileSync('losetup', ['-j', backing], { encoding: 'utf8' }).split('\n').filter(Boolean).map((l) => l.split(':')[0]!);

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(blocker)(`attached means mounted${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  const t = useTestDaemon();
  const api = t.api;
  const metric = async (name: string) => {
    const text = (await api<string>('GET', '/metrics')).body;
    const line = text.split('\n').find((l) => l.startsWith(name));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  };

  function mountFor(name: string, user: Record<string, string> = {}) {
    const podUid = newPodUid();
    const podCgroup = makePodCgroup(t.node.cgroupRoot, podUid);
    const leaf = makeLeaf(podCgroup);
    const target = podVolumeDir(t.node.kubeletRoot, podUid, name);
    fs.mkdirSync(target, { recursive: true });
    return { podUid, podCgroup, leaf, target, args: ['mount', target, mountOptions({ podUid, volumeName: name, user: { size: '32Mi', ...user } })] };
  }

  it('remounts an attached volume whose mount was lost while its pod lives: data there, rules kept, event and metric', async () => {
    const p = mountFor('lost', { maxReadIops: '123' });
    expect((await callDriver(t.driver, p.args)).reply.status).toBe('Success');
    fs.writeFileSync(path.join(p.target, 'data.txt'), 'written before the mount was lost');
    // The mount goes away behind qosd's back (as when the namespace that held it died).
    execFileSync('umount', [p.target]);
    expect(fs.existsSync(path.join(p.target, 'data.txt'))).toBe(false);
    await until('the volume mounted again at its target', () => mountsAt(p.target).length === 1);
    const vol = (await api<Vol>('GET', '/v1/volumes/lost')).body;
    expect(mountsAt(p.target)[0]!.device).toBe(vol.deviceNumber);
    expect(fs.readFileSync(path.join(p.target, 'data.txt'), 'utf8')).toBe('written before the mount was lost');
    expect(ruleLines(p.leaf, RIOPS)).toBe(`${vol.deviceNumber} 123`);
    const events = (await api<{ events: { kind: string; source: string; detail: { target: string } }[] }>('GET', '/v1/volumes/lost/events')).body.events;
    expect(events.some((e) => e.kind === 'mount-repaired' && e.source === 'reconcile' && e.detail.target === p.target)).toBe(true);
    expect(await metric('qosd_mount_repairs_total{outcome="remounted"}')).toBeGreaterThanOrEqual(1);
    expect(await metric('qosd_attachments_not_mounted')).toBe(0);
    expect((await callDriver(t.driver, ['unmount', p.target])).reply.status).toBe('Success');
    expect(mountsAt(p.target)).toEqual([]);
  });

  it('reports a target that holds another device and leaves that mount alone', async () => {
    const p = mountFor('wrongdev');
    expect((await callDriver(t.driver, p.args)).reply.status).toBe('Success');
    execFileSync('umount', [p.target]);
    // Something else is mounted there now: a tmpfs, which is not the volume's device.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'intruder', p.target]);
    try {
      await until('the problem in the event log', async () =>
        (await api<{ events: { kind: string }[] }>('GET', '/v1/volumes/wrongdev/events')).body.events.some((e) => e.kind === 'mount-wrong-device'));
      expect(await metric('qosd_attachments_not_mounted')).toBe(1);
      expect(mountsAt(p.target).map((m) => m.fsType)).toEqual(['tmpfs']);
      // Reported once, not at every pass.
      await new Promise((r) => setTimeout(r, 2500));
      const events = (await api<{ events: { kind: string }[] }>('GET', '/v1/volumes/wrongdev/events')).body.events;
      expect(events.filter((e) => e.kind === 'mount-wrong-device')).toHaveLength(1);
    } finally {
      execFileSync('umount', [p.target]);
    }
    await until('the volume mounted again once the target is free', () => mountsAt(p.target).length === 1);
    expect((await callDriver(t.driver, ['unmount', p.target])).reply.status).toBe('Success');
  });

  it('finds a loop device attached from a dead mount namespace by inode, across restarts: never a second loop on one file', async () => {
    const p = mountFor('nsloop');
    expect((await callDriver(t.driver, p.args)).reply.status).toBe('Success');
    expect((await callDriver(t.driver, ['unmount', p.target])).reply.status).toBe('Success');
    const vol = (await api<Vol>('GET', '/v1/volumes/nsloop')).body;
    await t.daemon.stop();
    // The volume's loop is replaced by one attached from a private mount namespace that binds the
    // pool directory elsewhere, as a namespaced unit's view did; the namespace then dies, and the
    // loop's backing_file names a path that exists nowhere.
    execFileSync('losetup', ['-d', vol.device]);
    const alias = path.join(t.node.dir, 'alias');
    fs.mkdirSync(alias);
    const inNs = execFileSync('unshare', ['-m', 'sh', '-c', `mount --bind "$0" "$1" && losetup --direct-io=on -f --show "$1/${path.basename(vol.backing)}"`, t.node.poolDir, alias], { encoding: 'utf8' }).trim();
    const backingSeen = fs.readFileSync(`/sys/block/${path.basename(inNs)}/loop/backing_file`, 'utf8').trim();
    expect(backingSeen).not.toBe(vol.backing);
    for (let i = 0; i < 2; i++) {
      t.daemon = await startDaemon(t.node);
      expect(loopsOf(vol.backing)).toEqual([inNs]);
      expect((await api<Vol>('GET', '/v1/volumes/nsloop')).body.device).toBe(inNs);
      expect((await callDriver(t.driver, p.args)).reply.status).toBe('Success');
      expect(mountsAt(p.target).map((m) => m.source)).toEqual([inNs]);
      expect((await callDriver(t.driver, ['unmount', p.target])).reply.status).toBe('Success');
      expect(loopsOf(vol.backing)).toEqual([inNs]);
      await t.daemon.stop();
    }
    t.daemon = await startDaemon(t.node);
    // Deleting the volume detaches that loop too: nothing is left on the file.
    expect((await api('DELETE', '/v1/volumes/nsloop')).status).toBe(204);
    expect(execFileSync('losetup', ['-l', '-n', '-O', 'NAME'], { encoding: 'utf8' }).split('\n').map((l) => l.trim())).not.toContain(inNs);
  });
});
