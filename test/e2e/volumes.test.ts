// Volume lifecycle through the API on a real daemon and real loop devices: create, refuse what is
// not ours, grow (unmounted and mounted, ext4 and xfs), live QoS changes reaching the pod's
// cgroups, delete refused while attached, drift repaired by the periodic pass, rules kept across a
// daemon restart.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasXfs, nodeTestBlocker } from '../helpers/host';
import { QOSD, makeTestNode, removeTestNode, startDaemon, useTestDaemon, type RunningDaemon, type TestNode } from '../helpers/daemon';
import { callDriver, mountOptions, podVolumeDir } from '../helpers/kubelet';
import { makeLeaf, makePodCgroup, newPodUid, ruleLines } from '../helpers/cgroup';
import { request } from '../../src/cli/client';
import { readMountinfo } from '../../src/host/mountinfo';
import { hostRoot } from '../../src/host/host-root';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

interface Vol { name: string; sizeBytes: number; device: string; deviceNumber: string; backing: string; state: string; qos: { min: Record<string, number>; max: Record<string, number> } }
type Err = { error: { code: string; message: string } };

async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

describe.skipIf(blocker)(`volumes through the API${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  const fx = useTestDaemon();
  const api = <T>(method: string, url: string, body?: unknown) => request<T>(fx.node.socket, method, url, body);

  async function mountForPod(name: string, user: Record<string, string>, fsType = '') {
    const podUid = newPodUid();
    const podCgroup = makePodCgroup(fx.node.cgroupRoot, podUid);
    const leaf = makeLeaf(podCgroup);
    const target = podVolumeDir(fx.node.kubeletRoot, podUid, name);
    fs.mkdirSync(target, { recursive: true });
    const r = await callDriver(fx.driver, ['mount', target, mountOptions({ podUid, volumeName: name, fsType, user })]);
    expect(r.reply.status, r.reply.message).toBe('Success');
    return { podUid, podCgroup, leaf, target };
  }

  it('creates a sparse, formatted volume on a direct-IO loop device', async () => {
    const r = await api<Vol>('POST', '/v1/volumes', { name: 'alpha', size: '256Mi', qos: { max: { writeIops: 300 } } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'alpha', sizeBytes: 256 * 2 ** 20, state: 'ready', qos: { min: {}, max: { writeIops: 300 } } });
    const st = fs.statSync(r.body.backing);
    expect(st.size).toBe(256 * 2 ** 20);
    expect(st.blocks * 512).toBeLessThan(st.size / 4); // sparse
    // A thin pool leaves ext4's inode tables to the kernel: written now they would take their space.
    const groups = execFileSync('dumpe2fs', [r.body.device], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter((l) => /^Group \d+:/.test(l));
    expect(groups.length).toBeGreaterThan(1);
    expect(groups.filter((l) => !l.includes('ITABLE_ZEROED')).length).toBeGreaterThan(0);
    expect(execFileSync('blkid', ['-p', '-o', 'value', '-s', 'TYPE', r.body.device], { encoding: 'utf8' }).trim()).toBe('ext4');
    const loop = path.basename(r.body.device);
    expect(fs.readFileSync(`/sys/block/${loop}/loop/dio`, 'utf8').trim()).toBe('1');
    expect(fs.readFileSync(`/sys/block/${loop}/dev`, 'utf8').trim()).toBe(r.body.deviceNumber);
  });

  it('refuses a second volume of the same name (409) and changes nothing', async () => {
    const r = await api<Err>('POST', '/v1/volumes', { name: 'alpha', size: '1Gi' });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('AlreadyExists');
    expect((await api<Vol>('GET', '/v1/volumes/alpha')).body.sizeBytes).toBe(256 * 2 ** 20);
  });

  it('never formats or removes a backing file it did not create', async () => {
    const foreign = path.join(fx.node.poolDir, 'precious.img');
    fs.writeFileSync(foreign, 'data that belongs to someone else');
    const r = await api<Err>('POST', '/v1/volumes', { name: 'precious', size: '16Mi' });
    expect(r.status).toBe(412);
    expect(r.body.error.message).toContain('refusing to use or remove it');
    expect(fs.readFileSync(foreign, 'utf8')).toBe('data that belongs to someone else');
    expect((await api('GET', '/v1/volumes/precious')).status).toBe(404);
    fs.rmSync(foreign);
  });

  it('grows an unmounted ext4 volume, filesystem included', async () => {
    const r = await api<Vol>('PATCH', '/v1/volumes/alpha', { size: '512Mi' });
    expect(r.status).toBe(200);
    expect(r.body.sizeBytes).toBe(512 * 2 ** 20);
    const { target } = await mountForPod('alpha', {});
    const fsBytes = fs.statfsSync(target).blocks * fs.statfsSync(target).bsize;
    expect(fsBytes).toBeGreaterThan(450 * 2 ** 20);
    expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
  });

  it('grows a mounted ext4 volume online, or says it needs CAP_SYS_RESOURCE and keeps the old size', async () => {
    const { target } = await mountForPod('alpha', {});
    const capSysResource = (BigInt(`0x${/CapEff:\s*([0-9a-f]+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]}`) >> 24n) & 1n;
    const r = await api<Vol & Err>('PATCH', '/v1/volumes/alpha', { size: '768Mi' });
    if (capSysResource) {
      expect(r.status).toBe(200);
      expect(fs.statfsSync(target).blocks * fs.statfsSync(target).bsize).toBeGreaterThan(700 * 2 ** 20);
    } else {
      expect(r.status).toBe(412);
      expect(r.body.error.message).toContain('CAP_SYS_RESOURCE');
      expect((await api<Vol>('GET', '/v1/volumes/alpha')).body.sizeBytes).toBe(512 * 2 ** 20);
    }
    expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
    // Unmounted, the grow goes through either way.
    const again = await api<Vol>('PATCH', '/v1/volumes/alpha', { size: '768Mi' });
    expect(again.status).toBe(200);
    expect(again.body.sizeBytes).toBe(768 * 2 ** 20);
  });

  it('refuses to shrink', async () => {
    const r = await api<Err>('PATCH', '/v1/volumes/alpha', { size: '128Mi' });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('cannot shrink');
  });

  it.skipIf(!hasXfs)(`mounts an xfs volume for a pod and grows it while mounted${hasXfs ? '' : ' (skipped: needs mkfs.xfs, Debian package xfsprogs)'}`, async () => {
    const { target } = await mountForPod('xfsvol', { size: '300Mi' }, 'xfs');
    const vol = (await api<Vol>('GET', '/v1/volumes/xfsvol')).body;
    expect(readMountinfo(hostRoot()).find((m) => m.mountPoint === target)?.fsType).toBe('xfs');
    const before = fs.statfsSync(target).blocks * fs.statfsSync(target).bsize;
    const r = await api<Vol>('PATCH', '/v1/volumes/xfsvol', { size: '600Mi' });
    expect(r.status).toBe(200);
    const after = fs.statfsSync(target).blocks * fs.statfsSync(target).bsize;
    expect(after).toBeGreaterThan(before * 1.8);
    expect(vol.device).toBe(r.body.device);
    expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
  });

  describe('while attached to a pod', () => {
    let pod: Awaited<ReturnType<typeof mountForPod>>;
    let vol: Vol;

    beforeAll(async () => {
      pod = await mountForPod('beta', { size: '64Mi', maxReadIops: '400' });
      vol = (await api<Vol>('GET', '/v1/volumes/beta')).body;
    });

    it('applies a QoS change to every container cgroup at once, without remounting', async () => {
      const mountId = readMountinfo(hostRoot()).find((m) => m.mountPoint === pod.target)!.id;
      const r = await api<Vol>('PATCH', '/v1/volumes/beta', { qos: { max: { readIops: 250, writeBps: '8Mi' } } });
      expect(r.status).toBe(200);
      expect(r.body.qos.max).toEqual({ readIops: 250, writeBps: 8 * 2 ** 20 });
      for (const dir of [pod.podCgroup, pod.leaf]) {
        expect(ruleLines(dir, 'blkio.throttle.read_iops_device')).toBe(`${vol.deviceNumber} 250`);
        expect(ruleLines(dir, 'blkio.throttle.write_bps_device')).toBe(`${vol.deviceNumber} ${8 * 2 ** 20}`);
      }
      expect(readMountinfo(hostRoot()).find((m) => m.mountPoint === pod.target)!.id).toBe(mountId);
      // null removes a limit
      await api('PATCH', '/v1/volumes/beta', { qos: { max: { writeBps: null } } });
      expect(ruleLines(pod.leaf, 'blkio.throttle.write_bps_device')).toBe('');
      expect(ruleLines(pod.leaf, 'blkio.throttle.read_iops_device')).toBe(`${vol.deviceNumber} 250`);
    });

    it('refuses to delete it (409 InUse), and changes nothing', async () => {
      const r = await api<Err>('DELETE', '/v1/volumes/beta');
      expect(r.status).toBe(409);
      expect(r.body.error.code).toBe('InUse');
      expect(r.body.error.message).toContain(pod.target);
      expect(fs.existsSync(vol.backing)).toBe(true);
      expect(readMountinfo(hostRoot()).some((m) => m.mountPoint === pod.target)).toBe(true);
    });

    it('repairs a rule removed behind its back within the reconcile interval', async () => {
      fs.writeFileSync(path.join(pod.leaf, 'blkio.throttle.read_iops_device'), `${vol.deviceNumber} 0`);
      expect(ruleLines(pod.leaf, 'blkio.throttle.read_iops_device')).toBe('');
      const repaired = await waitFor(() => ruleLines(pod.leaf, 'blkio.throttle.read_iops_device') === `${vol.deviceNumber} 250`, 20_000);
      expect(repaired).toBe(true);
    });

    it('keeps the rules across a daemon restart and covers containers created after it', async () => {
      await fx.daemon.stop();
      fx.daemon = await startDaemon(fx.node);
      expect(ruleLines(pod.leaf, 'blkio.throttle.read_iops_device')).toBe(`${vol.deviceNumber} 250`);
      const byWatch = async () => {
        const text = (await api<string>('GET', '/metrics')).body;
        return Number(/^qosd_cgroup_rule_writes_total\{[^}]*reason="new-cgroup"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
      };
      const late = makeLeaf(pod.podCgroup);
      // Written by the new daemon's leaf watch, not left to its next pass (the bound is for a stuck daemon only).
      expect(await waitFor(() => ruleLines(late, 'blkio.throttle.read_iops_device') === `${vol.deviceNumber} 250`, 20_000)).toBe(true);
      expect(await byWatch()).toBeGreaterThan(0);
    });

    it('deletes it once unmounted: storage and loop device gone', async () => {
      expect((await callDriver(fx.driver, ['unmount', pod.target])).reply.status).toBe('Success');
      const r = await api('DELETE', '/v1/volumes/beta');
      expect(r.status).toBe(204);
      expect(fs.existsSync(vol.backing)).toBe(false);
      expect(execFileSync('losetup', ['-j', vol.backing], { encoding: 'utf8' })).toBe('');
      expect((await api('GET', '/v1/volumes/beta')).status).toBe(404);
    });
  });

  it('lists attachments with the cgroups that carry rules', async () => {
    const pod = await mountForPod('gamma', { size: '32Mi', maxWriteIops: '100' });
    const r = await api<{ attachments: { volume: string; target: string; podUid: string; cgroupVersion: string; cgroupPaths: string[]; state: string }[] }>('GET', '/v1/attachments');
    const a = r.body.attachments.find((x) => x.volume === 'gamma')!;
    expect(a).toMatchObject({ target: pod.target, podUid: pod.podUid, cgroupVersion: 'v1', state: 'attached' });
    expect(a.cgroupPaths.sort()).toEqual([pod.podCgroup, pod.leaf].sort());
    expect((await callDriver(fx.driver, ['unmount', pod.target])).reply.status).toBe('Success');
    expect((await api<{ attachments: unknown[] }>('GET', '/v1/attachments')).body.attachments).toEqual([]);
  });
});

describe.skipIf(blocker)(`a file pool's room${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  const nodes: TestNode[] = [];
  const daemons: RunningDaemon[] = [];
  afterAll(async () => {
    for (const d of daemons) await d.stop();
    for (const n of nodes) removeTestNode(n);
  });

  async function nodeWith(poolOptions: string) {
    const node = makeTestNode();
    nodes.push(node);
    fs.writeFileSync(node.configFile, fs.readFileSync(node.configFile, 'utf8').replace(/create: true/, `create: true${poolOptions}`));
    daemons.push(await startDaemon(node));
    return { node, api: <T>(method: string, url: string, body?: unknown) => request<T>(node.socket, method, url, body) };
  }

  it('refuses a size its filesystem can never hold (400, naming size and the limit), and one beyond its free space (507), creating nothing', async () => {
    const { node, api } = await nodeWith('');
    const huge = await api<Err>('POST', '/v1/volumes', { name: 'huge', size: '1Pi' });
    expect(huge.status).toBe(400);
    expect(huge.body.error.message).toMatch(/^size: 1Pi is more than pool default can ever hold \(its filesystem at .+ is [\d.]+[KMGT]i\)$/);
    const free = fs.statfsSync(node.poolDir);
    const over = Math.floor((free.bavail * free.bsize) / 2 ** 30) + 1;
    const big = await api<Err>('POST', '/v1/volumes', { name: 'big', size: `${over}Gi` });
    expect(big.status).toBe(507);
    expect(big.body.error).toMatchObject({ code: 'ResourceExhausted', message: expect.stringMatching(/^size: [\d.]+Gi does not fit pool default: [\d.]+[KMGT]?i? can still be given/) });
    expect(fs.readdirSync(node.poolDir)).toEqual([]);
    expect((await api<{ volumes: unknown[] }>('GET', '/v1/volumes')).body.volumes).toEqual([]);
  });

  it('provisions beyond its free space as far as pools[].overcommit lets it, and shows the overcommit', async () => {
    const { node, api } = await nodeWith(', overcommit: 3');
    const free = fs.statfsSync(node.poolDir);
    const size = Math.floor((free.bavail * free.bsize * 1.5) / 2 ** 30);
    const made = await api<Vol>('POST', '/v1/volumes', { name: 'sparse', size: `${size}Gi` });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const pools = (await api<{ pools: { name: string; overcommit: number | null }[] }>('GET', '/v1/pools')).body.pools;
    expect(pools).toEqual([expect.objectContaining({ name: 'default', overcommit: 3 })]);
    expect((await api('DELETE', '/v1/volumes/sparse')).status).toBe(204);
  });

  it('refuses, at --check-config, a pool path that does not exist outside the state directory unless told to create it', () => {
    const node = makeTestNode();
    nodes.push(node);
    const missing = path.join(node.dir, 'not-mounted', 'volumes');
    fs.writeFileSync(node.configFile, fs.readFileSync(node.configFile, 'utf8').replace(`path: ${node.poolDir}, create: true`, `path: ${missing}`));
    const r = spawnSync(process.execPath, [QOSD, '--config', node.configFile, '--check-config'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`pools[0].path: ${missing} does not exist (is its filesystem mounted?); make it, or set pools[0].create: true for qosd to`);
    expect(fs.existsSync(missing)).toBe(false);
  });
});
