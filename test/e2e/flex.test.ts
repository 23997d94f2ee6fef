// The FlexVolume driver end to end, driven as kubelet drives it, against a real daemon, real loop
// devices, real mounts and the real cgroup v1 blkio throttle (measured with dd iflag=direct).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeTestBlocker } from '../helpers/host';
import { startDaemon, useTestDaemon } from '../helpers/daemon';
import { callDriver, mountOptions, podVolumeDir } from '../helpers/kubelet';
import { ddRead, makeLeaf, makePodCgroup, newPodUid, ruleLines } from '../helpers/cgroup';
import { expectThrottled, unthrottledReads } from '../helpers/throttle';
import { request } from '../../src/cli/client';
import { csiClient, mountCapability } from '../helpers/csi';
import { readMountinfo } from '../../src/host/mountinfo';
import { hostRoot } from '../../src/host/host-root';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

type Vol = { name: string; device: string; deviceNumber: string; backing: string };

describe.skipIf(blocker)(`flex driver as kubelet calls it${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  const fx = useTestDaemon();

  const mountsAt = (target: string) => readMountinfo(hostRoot()).filter((m) => m.mountPoint === target);
  const getVolume = async (name: string) => request<Vol & { error?: unknown }>(fx.node.socket, 'GET', `/v1/volumes/${name}`);
  const volumeNames = async () => (await request<{ volumes: Vol[] }>(fx.node.socket, 'GET', '/v1/volumes')).body.volumes.map((v) => v.name).sort();

  /** kubelet's side of a mount: mkdir the pod volume dir (0750), then call the driver. */
  async function kubeletMount(podUid: string, volumeName: string, user: Record<string, string>) {
    const target = podVolumeDir(fx.node.kubeletRoot, podUid, volumeName);
    fs.mkdirSync(target, { recursive: true, mode: 0o750 });
    const res = await callDriver(fx.driver, ['mount', target, mountOptions({ podUid, volumeName, user })]);
    return { target, res };
  }

  it('is installed as <plugin-dir>/qosd~nvme/nvme, executable, with no temporary file left', () => {
    const st = fs.statSync(fx.driver);
    expect(st.mode & 0o111).toBe(0o111);
    expect(fs.readdirSync(path.dirname(fx.driver))).toEqual(['nvme']);
  });

  it('answers init with attach:false and explicit capabilities, exit 0', async () => {
    const r = await callDriver(fx.driver, ['init']);
    expect(r.exitCode).toBe(0);
    expect(r.reply.status).toBe('Success');
    expect(r.reply.capabilities).not.toBeNull();
    expect(r.reply.capabilities).toMatchObject({ attach: false });
  });

  it('answers getvolumename and unknown commands with Not supported, exit 0', async () => {
    for (const args of [['getvolumename', '{}'], ['attach', '{}', 'node1'], ['frobnicate']]) {
      const r = await callDriver(fx.driver, args);
      expect(r.reply).toEqual({ status: 'Not supported' });
      expect(r.exitCode).toBe(0);
    }
  });

  describe('a volume with maxReadIops', () => {
    const podUid = newPodUid();
    let podCgroup: string;
    let leaf: string;
    let target: string;
    let vol: Vol;

    beforeAll(async () => {
      podCgroup = makePodCgroup(fx.node.cgroupRoot, podUid); // kubelet makes it before calling mount
      leaf = makeLeaf(podCgroup);
    });

    it('mounts a new volume and throttles the container leaf to the limit (±15%)', async () => {
      const m = await kubeletMount(podUid, 'data', { maxReadIops: '200', size: '64Mi' });
      target = m.target;
      expect(m.res.reply.status, m.res.reply.message).toBe('Success');
      expect(m.res.exitCode).toBe(0);
      expect(mountsAt(target)).toHaveLength(1);
      vol = (await getVolume('data')).body;
      expect(ruleLines(leaf, 'blkio.throttle.read_iops_device')).toBe(`${vol.deviceNumber} 200`);
      expect(ruleLines(podCgroup, 'blkio.throttle.read_iops_device')).toBe(`${vol.deviceNumber} 200`);
      const seconds = await ddRead(leaf, vol.device, '4k', 600);
      await expectThrottled({ rate: 600 / seconds, limit: 200, baseline: () => unthrottledReads(vol.device, '4k', 600) });
    });

    it('gives a container cgroup created after the mount its rules, written by the leaf watch (not left to the next pass)', async () => {
      const byWatch = async () => {
        const text = (await request<string>(fx.node.socket, 'GET', '/metrics')).body;
        return Number(/^qosd_cgroup_rule_writes_total\{[^}]*reason="new-cgroup"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
      };
      const before = await byWatch();
      const late = makeLeaf(podCgroup);
      // A bound for a stuck daemon only; which writer wrote the rules is what is asserted.
      const until = Date.now() + 20_000;
      let rules = '';
      while (Date.now() < until) {
        rules = ruleLines(late, 'blkio.throttle.read_iops_device');
        if (rules) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(rules).toBe(`${vol.deviceNumber} 200`);
      expect(await byWatch()).toBeGreaterThan(before);
    });

    it('answers a repeated mount with Success and still one mount', async () => {
      const r = await callDriver(fx.driver, ['mount', target, mountOptions({ podUid, volumeName: 'data', user: { maxReadIops: '200', size: '64Mi' } })]);
      expect(r.reply.status).toBe('Success');
      expect(mountsAt(target)).toHaveLength(1);
    });

    it('unmounts: directory unmounted, empty and removable, rules cleared; again is Success', async () => {
      fs.writeFileSync(path.join(target, 'kept.txt'), 'written before unmount');
      const r = await callDriver(fx.driver, ['unmount', target]);
      expect(r.reply.status, r.reply.message).toBe('Success');
      expect(r.exitCode).toBe(0);
      expect(mountsAt(target)).toHaveLength(0);
      expect(fs.readdirSync(target)).toEqual([]);
      for (const dir of [podCgroup, leaf, ...fs.readdirSync(podCgroup, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(podCgroup, e.name))]) {
        expect(ruleLines(dir, 'blkio.throttle.read_iops_device')).toBe('');
      }
      fs.rmdirSync(target); // what kubelet does next
      const again = await callDriver(fx.driver, ['unmount', target]);
      expect(again.reply.status).toBe('Success');
      expect(again.exitCode).toBe(0);
    });

    it('mounts the same volumeId later and sees the file written before', async () => {
      const podB = newPodUid();
      makePodCgroup(fx.node.cgroupRoot, podB, 'besteffort');
      const m = await kubeletMount(podB, 'data', { maxReadIops: '200', size: '64Mi' });
      expect(m.res.reply.status, m.res.reply.message).toBe('Success');
      expect(fs.readFileSync(path.join(m.target, 'kept.txt'), 'utf8')).toBe('written before unmount');
      expect((await callDriver(fx.driver, ['unmount', m.target])).reply.status).toBe('Success');
    });
  });

  it('throttles maxReadBps the same way (±15%)', async () => {
    const podUid = newPodUid();
    const podCgroup = makePodCgroup(fx.node.cgroupRoot, podUid, 'guaranteed');
    const leaf = makeLeaf(podCgroup);
    const { target, res } = await kubeletMount(podUid, 'bw', { maxReadBps: '4Mi', size: '64Mi' });
    expect(res.reply.status, res.reply.message).toBe('Success');
    const vol = (await getVolume('bw')).body;
    expect(ruleLines(leaf, 'blkio.throttle.read_bps_device')).toBe(`${vol.deviceNumber} ${4 * 1024 * 1024}`);
    const seconds = await ddRead(leaf, vol.device, '64k', 192); // 12 MiB
    await expectThrottled({ rate: (192 * 65536) / seconds, limit: 4 * 1024 * 1024, baseline: () => unthrottledReads(vol.device, '64k', 192, 65536) });
    expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
    expect(ruleLines(leaf, 'blkio.throttle.read_bps_device')).toBe('');
  });

  it('deletes an ephemeral volume on unmount', async () => {
    const podUid = newPodUid();
    makePodCgroup(fx.node.cgroupRoot, podUid);
    const { target, res } = await kubeletMount(podUid, 'scratch', { ephemeral: 'true', size: '32Mi' });
    expect(res.reply.status, res.reply.message).toBe('Success');
    const name = `scratch-${podUid}`;
    const vol = (await getVolume(name)).body;
    expect(fs.existsSync(vol.backing)).toBe(true);
    expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
    expect((await getVolume(name)).status).toBe(404);
    expect(fs.existsSync(vol.backing)).toBe(false);
    expect(execFileSync('losetup', ['-j', vol.backing], { encoding: 'utf8' })).toBe('');
  });

  it('prints a reply over 64 KiB whole through the pipe (a Failure naming a huge unknown option)', async () => {
    const podUid = newPodUid();
    const target = podVolumeDir(fx.node.kubeletRoot, podUid, 'huge');
    fs.mkdirSync(target, { recursive: true });
    const key = `x${'k'.repeat(100 * 1024)}`;
    const r = await callDriver(fx.driver, ['mount', target, mountOptions({ podUid, volumeName: 'huge', user: { [key]: '1' } })]);
    expect(r.output.length).toBeGreaterThan(100 * 1024);
    expect(r.reply.status).toBe('Failure');
    expect(r.reply.message).toContain(key);
  });

  it('treats __proto__ and odd values as plain options, never as code', async () => {
    const podUid = newPodUid();
    const target = podVolumeDir(fx.node.kubeletRoot, podUid, 'odd');
    fs.mkdirSync(target, { recursive: true });
    const json = mountOptions({ podUid, volumeName: 'odd', user: {} }).replace(/}$/, ',"__proto__":"$(touch /tmp/pwned)"}');
    const r = await callDriver(fx.driver, ['mount', target, json]);
    expect(r.reply.status).toBe('Failure');
    expect(r.reply.message).toContain('option __proto__: unknown option');
    expect(fs.existsSync('/tmp/pwned')).toBe(false);
  });

  it('never logs secret option values', async () => {
    const podUid = newPodUid();
    makePodCgroup(fx.node.cgroupRoot, podUid);
    const target = podVolumeDir(fx.node.kubeletRoot, podUid, 'withsecret');
    fs.mkdirSync(target, { recursive: true });
    const secret = Buffer.from('s3cr3t-p4ssw0rd-do-not-log').toString('base64');
    const user = { size: '16Mi', 'kubernetes.io/secret/password': secret };
    const bad = await callDriver(fx.driver, ['mount', target, mountOptions({ podUid, volumeName: 'withsecret', user: { ...user, maxReadIops: 'lots' } })]);
    expect(bad.reply.status).toBe('Failure');
    const ok = await callDriver(fx.driver, ['mount', target, mountOptions({ podUid, volumeName: 'withsecret', user })]);
    expect(ok.reply.status, ok.reply.message).toBe('Success');
    expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
    expect(fx.daemon.output()).not.toContain(secret);
    expect(bad.output + ok.output).not.toContain(secret);
  });

  it('mounts read-only when kubelet passes readwrite=ro', async () => {
    const podUid = newPodUid();
    makePodCgroup(fx.node.cgroupRoot, podUid);
    const target = podVolumeDir(fx.node.kubeletRoot, podUid, 'rovol');
    fs.mkdirSync(target, { recursive: true });
    const r = await callDriver(fx.driver, ['mount', target, mountOptions({ podUid, volumeName: 'rovol', readwrite: 'ro', user: { size: '16Mi' } })]);
    expect(r.reply.status, r.reply.message).toBe('Success');
    expect(mountsAt(target)[0]!.options.split(',')).toContain('ro');
    expect(() => fs.writeFileSync(path.join(target, 'x'), 'y')).toThrow(/EROFS/);
    expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
  });

  it('handles parallel mounts of different volumes with init running alongside', async () => {
    const pods = Array.from({ length: 4 }, () => newPodUid());
    const targets = pods.map((uid, i) => {
      makePodCgroup(fx.node.cgroupRoot, uid);
      const t = podVolumeDir(fx.node.kubeletRoot, uid, `par${i}`);
      fs.mkdirSync(t, { recursive: true });
      return t;
    });
    const results = await Promise.all([
      ...targets.map((t, i) => callDriver(fx.driver, ['mount', t, mountOptions({ podUid: pods[i]!, volumeName: `par${i}`, user: { size: '16Mi', maxWriteIops: '50' } })])),
      callDriver(fx.driver, ['init']),
      callDriver(fx.driver, ['init']),
    ]);
    for (const r of results) expect(r.reply.status, r.reply.message).toBe('Success');
    for (const t of targets) expect(mountsAt(t)).toHaveLength(1);
    const un = await Promise.all(targets.map((t) => callDriver(fx.driver, ['unmount', t])));
    for (const r of un) expect(r.reply.status).toBe('Success');
  });

  it('an unmount that the kernel refuses (a process holds the mount) keeps the mount, the rules and the attachment, and says why', async () => {
    const podUid = newPodUid();
    const podCgroup = makePodCgroup(fx.node.cgroupRoot, podUid);
    const leaf = makeLeaf(podCgroup);
    const { target, res } = await kubeletMount(podUid, 'held', { maxReadIops: '300', size: '16Mi' });
    expect(res.reply.status, res.reply.message).toBe('Success');
    const vol = (await getVolume('held')).body;
    // A process whose working directory is inside the mount: umount(8) answers "target is busy".
    const holder = spawn('sleep', ['600'], { cwd: target, stdio: 'ignore' });
    try {
      const refused = await callDriver(fx.driver, ['unmount', target]);
      expect(refused.reply.status).toBe('Failure');
      expect(refused.reply.message).toContain(`${target} could not be unmounted, so volume held stays attached and its limits stay in place`);
      expect(refused.reply.message).toMatch(/busy/);
      expect(mountsAt(target)).toHaveLength(1);
      expect(ruleLines(leaf, 'blkio.throttle.read_iops_device')).toBe(`${vol.deviceNumber} 300`);
      expect(ruleLines(podCgroup, 'blkio.throttle.read_iops_device')).toBe(`${vol.deviceNumber} 300`);
      const atts = (await request<{ attachments: { volume: string; state: string }[] }>(fx.node.socket, 'GET', '/v1/attachments')).body.attachments;
      expect(atts.filter((a) => a.volume === 'held')).toEqual([expect.objectContaining({ state: 'attached' })]);
      const events = (await request<{ events: { kind: string; detail: { reason?: string } }[] }>(fx.node.socket, 'GET', '/v1/volumes/held/events')).body.events;
      expect(events.at(-1)).toMatchObject({ kind: 'detach-failed', detail: { reason: expect.stringMatching(/busy/) } });
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
    }
    // kubelet's retry, once the holder is gone: unmounted, then the rules cleared.
    expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
    expect(mountsAt(target)).toHaveLength(0);
    expect(ruleLines(leaf, 'blkio.throttle.read_iops_device')).toBe('');
    expect(ruleLines(podCgroup, 'blkio.throttle.read_iops_device')).toBe('');
  });

  describe('a Failure leaves nothing mounted and nothing created', () => {
    async function expectFailureChangesNothing(target: string, args: string[], env: Record<string, string> = {}) {
      const before = await volumeNames().catch(() => undefined);
      const loopsBefore = execFileSync('losetup', ['-a'], { encoding: 'utf8' });
      const r = await callDriver(fx.driver, args, env);
      expect(r.reply.status).toBe('Failure');
      expect(r.exitCode).toBe(1);
      expect(typeof r.reply.message).toBe('string');
      expect(mountsAt(target)).toHaveLength(0);
      if (fs.existsSync(target)) expect(fs.readdirSync(target)).toEqual([]);
      if (before) expect(await volumeNames()).toEqual(before);
      expect(execFileSync('losetup', ['-a'], { encoding: 'utf8' })).toBe(loopsBefore);
      return r;
    }

    it('for an unknown option', async () => {
      const podUid = newPodUid();
      makePodCgroup(fx.node.cgroupRoot, podUid);
      const target = podVolumeDir(fx.node.kubeletRoot, podUid, 'typo');
      fs.mkdirSync(target, { recursive: true });
      const r = await expectFailureChangesNothing(target, ['mount', target, mountOptions({ podUid, volumeName: 'typo', user: { maxReadIOPS: '100' } })]);
      expect(r.reply.message).toContain('maxReadIOPS');
    });

    it('for a bad option value', async () => {
      const podUid = newPodUid();
      makePodCgroup(fx.node.cgroupRoot, podUid);
      const target = podVolumeDir(fx.node.kubeletRoot, podUid, 'badval');
      fs.mkdirSync(target, { recursive: true });
      const r = await expectFailureChangesNothing(target, ['mount', target, mountOptions({ podUid, volumeName: 'badval', user: { maxReadIops: 'fast' } })]);
      expect(r.reply.message).toContain('maxReadIops');
    });

    it('for a pod whose cgroup does not exist when the volume has limits', async () => {
      const podUid = newPodUid(); // no pod cgroup made
      const target = podVolumeDir(fx.node.kubeletRoot, podUid, 'nocg');
      fs.mkdirSync(target, { recursive: true });
      const r = await expectFailureChangesNothing(target, ['mount', target, mountOptions({ podUid, volumeName: 'nocg', user: { maxReadIops: '100' } })]);
      expect(r.reply.message).toContain(`cgroup of pod ${podUid} not found`);
    });

    it('for a target outside <kubelet root>/pods/', async () => {
      const podUid = newPodUid();
      makePodCgroup(fx.node.cgroupRoot, podUid);
      const target = path.join(fx.node.dir, 'elsewhere', 'vol');
      fs.mkdirSync(target, { recursive: true });
      const r = await expectFailureChangesNothing(target, ['mount', target, mountOptions({ podUid, volumeName: 'outside', user: {} })]);
      expect(r.reply.message).toContain('must be inside');
      const sneaky = `${fx.node.kubeletRoot}/pods/../../elsewhere/vol`;
      const r2 = await expectFailureChangesNothing(target, ['mount', sneaky, mountOptions({ podUid, volumeName: 'outside', user: {} })]);
      expect(r2.reply.message).toContain('must be inside');
    });

    it('for a target that is a symlink out of the pods directory (dangling or not)', async () => {
      const podUid = newPodUid();
      makePodCgroup(fx.node.cgroupRoot, podUid);
      const outside = path.join(fx.node.dir, 'outside-target');
      fs.mkdirSync(outside, { recursive: true });
      const parent = path.join(fx.node.kubeletRoot, 'pods', podUid, 'volumes', 'qosd~nvme');
      fs.mkdirSync(parent, { recursive: true });
      const link = path.join(parent, 'linked');
      fs.symlinkSync(outside, link);
      const r = await expectFailureChangesNothing(outside, ['mount', link, mountOptions({ podUid, volumeName: 'linked', user: {} })]);
      expect(r.reply.message).toContain('resolves outside');
      const dangling = path.join(parent, 'dangling');
      fs.symlinkSync(path.join(fx.node.dir, 'not-yet-there'), dangling);
      const r2 = await expectFailureChangesNothing(path.join(fx.node.dir, 'not-yet-there'), ['mount', dangling, mountOptions({ podUid, volumeName: 'dangling', user: {} })]);
      expect(r2.reply.message).toContain('symlink to nowhere');
      expect(fs.existsSync(path.join(fx.node.dir, 'not-yet-there'))).toBe(false);
    });

    it('when the daemon is stopped (quickly, with a message, no stack trace)', async () => {
      const podUid = newPodUid();
      makePodCgroup(fx.node.cgroupRoot, podUid);
      const target = podVolumeDir(fx.node.kubeletRoot, podUid, 'down');
      fs.mkdirSync(target, { recursive: true });
      await fx.daemon.stop();
      try {
        // The driver retries a missing daemon for QOSD_FLEX_RETRY_SECONDS (10 by default), then fails.
        // The same call with (almost) no retry, in this test: the driver's own start and first try.
        const once = await expectFailureChangesNothing(target, ['mount', target, mountOptions({ podUid, volumeName: 'down', user: {} })], { QOSD_FLEX_RETRY_SECONDS: '0.001' });
        const r = await expectFailureChangesNothing(target, ['mount', target, mountOptions({ podUid, volumeName: 'down', user: {} })], { QOSD_FLEX_RETRY_SECONDS: '1' });
        expect(r.reply.message).toContain('not reachable');
        expect(r.ms - once.ms).toBeGreaterThan(500); // it retried before giving up
        expect(r.ms - once.ms).toBeLessThan(4000); // and gave up after its second of retries
        const u = await callDriver(fx.driver, ['unmount', target], { QOSD_FLEX_RETRY_SECONDS: '1' });
        expect(u.reply.status).toBe('Failure');
      } finally {
        fx.daemon = await startDaemon(fx.node);
      }
      expect(await volumeNames()).not.toContain('down');
    });
  });
});

describe.skipIf(blocker)(`flex tenants: a pod reaches only its own namespace's volumes${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  const fx = useTestDaemon('flex: { allowedNamespaces: [tenant-a, tenant-b, tenant-c] }');
  const api = <T>(method: string, url: string, body?: unknown) => request<T>(fx.node.socket, method, url, body);

  async function mountIn(namespace: string, volumeName: string, user: Record<string, string>) {
    const podUid = newPodUid();
    const leaf = makeLeaf(makePodCgroup(fx.node.cgroupRoot, podUid));
    const target = podVolumeDir(fx.node.kubeletRoot, podUid, volumeName);
    fs.mkdirSync(target, { recursive: true, mode: 0o750 });
    const res = await callDriver(fx.driver, ['mount', target, mountOptions({ podUid, volumeName, namespace, user })]);
    return { target, leaf, res };
  }
  const mounted = (target: string) => readMountinfo(hostRoot()).some((m) => m.mountPoint === target);

  it("refuses another namespace's pod, and a mount that names other QoS, with the reason; the owner's data stays its own", async () => {
    const a = await mountIn('tenant-a', 'data', { size: '16Mi', maxReadIops: '300' });
    expect(a.res.reply.status, a.res.reply.message).toBe('Success');
    fs.writeFileSync(path.join(a.target, 'secret'), "tenant a's");
    expect((await api<{ owner: string }>('GET', '/v1/volumes/data')).body.owner).toBe('ns:tenant-a');

    const b = await mountIn('tenant-b', 'data', { size: '16Mi' });
    expect(b.res.reply).toEqual({ status: 'Failure', message: 'volume data belongs to namespace tenant-a; a pod in namespace tenant-b cannot mount it' });
    expect(mounted(b.target)).toBe(false);
    expect(fs.readdirSync(b.target)).toEqual([]);

    // The owner's own namespace may not re-class it through a mount either.
    const again = await mountIn('tenant-a', 'data', { volumeId: 'data', class: 'medium' });
    expect(again.res.reply.status).toBe('Failure');
    expect(again.res.reply.message).toContain('a mount never changes a volume\'s QoS');
    const throttled = await mountIn('tenant-a', 'data', { volumeId: 'data', maxReadIops: '1' });
    expect(throttled.res.reply.status).toBe('Failure');
    const v = (await api<{ class: string; qos: { max: { readIops?: number } }; attachments: unknown[] }>('GET', '/v1/volumes/data')).body;
    expect(v.class).toBe('best-effort');
    expect(v.qos.max.readIops).toBe(300);
    expect(v.attachments).toHaveLength(1);
    expect(ruleLines(a.leaf, 'blkio.throttle.read_iops_device')).toMatch(/ 300$/);
    // The same options (or none) mount it again in its own namespace.
    const same = await mountIn('tenant-a', 'data', { maxReadIops: '300' });
    expect(same.res.reply.status, same.res.reply.message).toBe('Success');
    for (const t of [same.target, a.target]) expect((await callDriver(fx.driver, ['unmount', t])).reply.status).toBe('Success');
  });

  it('refuses a flex mount of a volume provisioned through CSI, and a namespace the config does not allow', async () => {
    const csi = csiClient(fx.node.csiSocket);
    try {
      await csi.call('Controller', 'CreateVolume', { name: 'pvc-0b1c2d3e-1111-4000-8000-000000000001', capacity_range: { required_bytes: String(16 << 20) }, volume_capabilities: [mountCapability()], parameters: {} });
    } finally {
      csi.close();
    }
    const r = await mountIn('tenant-a', 'pvc-0b1c2d3e-1111-4000-8000-000000000001', {});
    expect(r.res.reply).toEqual({ status: 'Failure', message: 'volume pvc-0b1c2d3e-1111-4000-8000-000000000001 was provisioned through CSI for a PersistentVolume; a flex mount cannot reach it (mount it through its PersistentVolumeClaim)' });
    expect(mounted(r.target)).toBe(false);
    const other = await mountIn('kube-system', 'sys', { size: '16Mi' });
    expect(other.res.reply).toEqual({ status: 'Failure', message: 'namespace kube-system may not use the qosd/nvme flex driver (flex.allowedNamespaces: tenant-a, tenant-b, tenant-c)' });
    expect((await api('GET', '/v1/volumes/sys')).status).toBe(404);
  });

  it("a volume nobody owns yet is claimed by the first namespace to mount it; the operator can give it to another", async () => {
    expect((await api('POST', '/v1/volumes', { name: 'shared', size: '16Mi' })).status).toBe(201);
    const c = await mountIn('tenant-c', 'shared', {});
    expect(c.res.reply.status, c.res.reply.message).toBe('Success');
    expect((await callDriver(fx.driver, ['unmount', c.target])).reply.status).toBe('Success');
    const events = (await api<{ events: { kind: string; detail: unknown }[] }>('GET', '/v1/volumes/shared/events')).body.events;
    expect(events.filter((e) => e.kind === 'owner-claimed')).toEqual([expect.objectContaining({ detail: { namespace: 'tenant-c' } })]);
    expect((await mountIn('tenant-b', 'shared', {})).res.reply.status).toBe('Failure');
    expect((await api('PATCH', '/v1/volumes/shared', { namespace: 'tenant-b' })).status).toBe(200);
    const b = await mountIn('tenant-b', 'shared', {});
    expect(b.res.reply.status, b.res.reply.message).toBe('Success');
    expect((await callDriver(fx.driver, ['unmount', b.target])).reply.status).toBe('Success');
    expect((await mountIn('tenant-c', 'shared', {})).res.reply.status).toBe('Failure');
  });
});
