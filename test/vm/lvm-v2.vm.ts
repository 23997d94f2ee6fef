// Inside the VM (test/vm/run.sh): two emulated NVMe drives, device-mapper and cgroup v2. The lvm
// pool is built on the drives, a volume is mounted through the flex driver for a pod laid out by
// the systemd cgroup driver, and the kernel's io.max on the pod cgroup is measured with dd.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QOSCTL, installDriver, startDaemon, type RunningDaemon, type TestNode } from '../helpers/daemon';
import { callDriver, mountOptions, podVolumeDir } from '../helpers/kubelet';
import { ddRead } from '../helpers/cgroup';
import { expectThrottled, unthrottledReads } from '../helpers/throttle';
import { request } from '../../src/cli/client';
import { readMountinfo } from '../../src/host/mountinfo';
import { hostRoot } from '../../src/host/host-root';
import { CG, makeSystemdPod, makeVmNode } from './vm-node';

const inVm = process.env.QOSD_VM === '1';

function qosctl(node: TestNode, args: string[]) {
  return spawnSync(process.execPath, [QOSCTL, '--socket', node.socket, ...args], { encoding: 'utf8' });
}

describe.skipIf(!inVm)(`lvm pool on NVMe with cgroup v2${inVm ? '' : ' (skipped: runs inside the VM, npm run test:vm)'}`, () => {
  let node: TestNode;
  let daemon: RunningDaemon;
  let driver: string;
  let pod: { pod: string; container: string };
  let target: string;
  const uid = crypto.randomUUID();

  beforeAll(async () => {
    node = makeVmNode([
      'pools:',
      '  - { name: nvme, backend: lvm, volumeGroup: qosd-nvme, devices: [/dev/nvme0n1, /dev/nvme1n1], capacity: { readIops: 100000, writeIops: 100000, readBps: 2G, writeBps: 2G } }',
      'defaults: { pool: nvme, size: 256Mi }',
    ]);
    daemon = await startDaemon(node);
    driver = installDriver(node);
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  it('sees the cgroup v2 layout', async () => {
    const s = (await request<{ cgroup: { version: string; base: string } }>(node.socket, 'GET', '/v1/status')).body;
    expect(s.cgroup).toMatchObject({ version: 'v2', base: CG });
  });

  it('discovers both NVMe namespaces with model, serial, size and any signature', () => {
    execFileSync('mkfs.ext4', ['-q', '/dev/nvme1n1']);
    const r = qosctl(node, ['-o', 'json', 'devices']);
    expect(r.status, r.stderr).toBe(0);
    // The third drive (QOSDNVME2, held to 4000 IOPS) belongs to the contention benchmark.
    const devices = JSON.parse(r.stdout).devices.filter((d: { serial: string }) => d.serial !== 'QOSDNVME2');
    expect(devices).toEqual([
      expect.objectContaining({ device: '/dev/nvme0n1', controller: 'nvme0', model: 'QEMU NVMe Ctrl', serial: 'QOSDNVME0', sizeBytes: 2 * 2 ** 30, pool: null, signature: null }),
      expect.objectContaining({ device: '/dev/nvme1n1', controller: 'nvme1', model: 'QEMU NVMe Ctrl', serial: 'QOSDNVME1', sizeBytes: 2 * 2 ** 30, pool: null, signature: 'ext4' }),
    ]);
    expect(devices[0].deviceNumber).toMatch(/^259:\d+$/);
    const table = qosctl(node, ['devices']).stdout;
    expect(table).toMatch(/^\/dev\/nvme1n1 +259:\d+ +QEMU NVMe Ctrl +QOSDNVME1 +\S+ +2Gi +- +ext4$/m);
  });

  it('refuses to build the pool on a device holding a filesystem, then builds it with --force', () => {
    const refused = qosctl(node, ['pool', 'init', 'nvme']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('/dev/nvme1n1 holds ext4; refusing to put it in pool nvme (use --force to destroy it)');
    expect(spawnSync('vgs', ['qosd-nvme']).status).not.toBe(0);
    const forced = qosctl(node, ['pool', 'init', 'nvme', '--force']);
    expect(forced.status, forced.stderr).toBe(0);
    const vg = JSON.parse(execFileSync('vgs', ['--reportformat', 'json', '-o', 'vg_name,pv_count', 'qosd-nvme'], { encoding: 'utf8' }));
    expect(vg.report[0].vg[0]).toMatchObject({ vg_name: 'qosd-nvme', pv_count: '2' });
    const devices = JSON.parse(qosctl(node, ['-o', 'json', 'devices']).stdout).devices.filter((d: { serial: string }) => d.serial !== 'QOSDNVME2');
    expect(devices.map((d: { pool: string; volumeGroup: string }) => [d.pool, d.volumeGroup])).toEqual([['nvme', 'qosd-nvme'], ['nvme', 'qosd-nvme']]);
  });

  it('mounts a volume on the lvm pool and writes one io.max line on the systemd pod cgroup', async () => {
    pod = makeSystemdPod('burstable', uid);
    target = podVolumeDir(node.kubeletRoot, uid, 'db');
    fs.mkdirSync(target, { recursive: true });
    const r = await callDriver(driver, ['mount', target, mountOptions({ podUid: uid, volumeName: 'db', user: { pool: 'nvme', size: '256Mi', maxReadIops: '200', maxWriteBps: '4Mi' } })]);
    expect(r.reply.status, r.reply.message).toBe('Success');
    const vol = (await request<{ device: string; deviceNumber: string; backing: string }>(node.socket, 'GET', '/v1/volumes/db')).body;
    expect(vol.device).toBe('/dev/qosd-nvme/db');
    // The LV's device-mapper device is what the rule names (no udev here: no dm-N symlinks).
    expect(fs.readFileSync(`/sys/dev/block/${vol.deviceNumber}/dm/name`, 'utf8').trim()).toBe('qosd--nvme-db');
    expect(fs.readFileSync(path.join(pod.pod, 'io.max'), 'utf8').trim()).toBe(`${vol.deviceNumber} rbps=max wbps=4194304 riops=200 wiops=max`);
    expect(fs.readFileSync(path.join(pod.container, 'io.max'), 'utf8').trim()).toBe(''); // one line, on the pod
  });

  it('zeroes the inode tables at mkfs: the mounted, idle volume sees no background writes', async () => {
    const dev = '/dev/qosd-nvme/db';
    const groups = execFileSync('dumpe2fs', [dev], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter((l) => /^Group \d+:/.test(l));
    expect(groups.length).toBeGreaterThan(1);
    expect.soft(groups.filter((l) => !l.includes('ITABLE_ZEROED'))).toEqual([]);
    // Left lazy, ext4lazyinit starts within 5 s of the mount and writes a group's table at a time
    // from no pod's cgroup. Sectors written in 7 s on the LV's device, idle otherwise:
    const { deviceNumber } = (await request<{ deviceNumber: string }>(node.socket, 'GET', '/v1/volumes/db')).body;
    const written = () => Number(fs.readFileSync(`/sys/dev/block/${deviceNumber}/stat`, 'utf8').trim().split(/\s+/)[6]);
    const before = written();
    await new Promise((r) => setTimeout(r, 7000));
    expect(written() - before).toBe(0);
  }, 20_000);

  it('limits a reader and a writer in the container cgroup within ±15%', async () => {
    const dev = '/dev/qosd-nvme/db';
    const reads = 600;
    const iops = reads / (await ddRead(pod.container, dev, '4k', reads));
    await expectThrottled({ rate: iops, limit: 200, baseline: () => unthrottledReads(dev, '4k', reads, 1, CG) });
    // The writer writes a file in the mounted volume (direct IO), as a database would; its
    // baseline writes the same in the root cgroup, unthrottled.
    const write = (cgroup: string, file: string) => {
      const started = process.hrtime.bigint();
      const w = spawnSync('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec dd if=/dev/zero of="$1" bs=64k count=192 oflag=direct status=none', cgroup, path.join(target, file)]);
      expect(w.status).toBe(0);
      return (192 * 65536) / (Number(process.hrtime.bigint() - started) / 1e9);
    };
    await expectThrottled({ rate: write(pod.container, 'w.bin'), limit: 4 * 2 ** 20, baseline: async () => write(CG, 'baseline.bin') });
  });

  it('covers a container created later through the pod-level rule, and counts its IO from io.stat', async () => {
    const late = path.join(pod.pod, `cri-containerd-${crypto.randomBytes(32).toString('hex')}.scope`);
    fs.mkdirSync(late);
    const iops = 400 / (await ddRead(late, '/dev/qosd-nvme/db', '4k', 400));
    expect(iops).toBeLessThan(200 * 1.15);
    const text = (await request<string>(node.socket, 'GET', '/metrics')).body;
    const m = new RegExp(`^qosd_volume_io_operations_total\\{volume="db",pool="nvme",pod_uid="${uid}",direction="read"\\} (\\d+)$`, 'm').exec(text);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(1000); // 600 + 400 reads, plus filesystem reads
  });

  it('grows the filesystem while it is mounted', async () => {
    const before = fs.statfsSync(target);
    const r = await request<{ sizeBytes: number }>(node.socket, 'PATCH', '/v1/volumes/db', { size: '512Mi' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const after = fs.statfsSync(target);
    expect(after.blocks * after.bsize).toBeGreaterThan(before.blocks * before.bsize * 1.8);
  });

  it('calibrates the lvm pool on a scratch LV striped over both drives, and removes it', () => {
    const r = qosctl(node, ['-o', 'json', 'calibrate', 'nvme', '--method', 'probe', '--seconds', '0.5', '--scratch-size', '64Mi']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ event: 'done', pool: 'nvme', method: 'probe' });
    const pools = JSON.parse(qosctl(node, ['-o', 'json', 'pools']).stdout).pools;
    expect(pools[0].capacitySource).toEqual({ readIops: 'calibration', writeIops: 'calibration', readBps: 'calibration', writeBps: 'calibration' });
    const lvs = JSON.parse(execFileSync('lvs', ['--reportformat', 'json', 'qosd-nvme'], { encoding: 'utf8' })).report[0].lv;
    expect(lvs.map((l: { lv_name: string }) => l.lv_name)).toEqual(['db']);
  });

  it("a new volume never shows an earlier volume's data: its blocks are zeroed at create", async () => {
    // An earlier tenant's volume, its raw device written through with a marker, then deleted.
    expect((await request(node.socket, 'POST', '/v1/volumes', { name: 'old', size: '64Mi' })).status).toBe(201);
    const marker = Buffer.from('QOSD-OLD-TENANT-DATA\n');
    const chunk = Buffer.concat(Array.from({ length: Math.ceil((1 << 20) / marker.length) }, () => marker)).subarray(0, 1 << 20);
    const fd = fs.openSync('/dev/qosd-nvme/old', 'w');
    for (let i = 0; i < 64; i++) fs.writeSync(fd, chunk, 0, chunk.length, i * (1 << 20));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    const extents = (lv: string) => execFileSync('dmsetup', ['table', `qosd--nvme-${lv}`], { encoding: 'utf8' }).trim();
    const oldExtents = extents('old');
    expect((await request(node.socket, 'DELETE', '/v1/volumes/old')).status).toBe(204);
    // The next volume of that size gets the same extents (else this test would prove nothing).
    const started = Date.now();
    expect((await request(node.socket, 'POST', '/v1/volumes', { name: 'fresh', size: '64Mi' })).status).toBe(201);
    const createMs = Date.now() - started;
    expect(extents('fresh')).toBe(oldExtents);
    const data = fs.readFileSync('/dev/qosd-nvme/fresh');
    expect(data.length).toBe(64 << 20);
    expect(data.indexOf(marker)).toBe(-1);
    // What the zeroing itself costs, the same operation again on the same LV.
    const z = Date.now();
    execFileSync('blkdiscard', ['--zeroout', '/dev/qosd-nvme/fresh']);
    console.log(`[zeroing] a 64Mi LV created in ${createMs} ms, of which zeroing ~${Date.now() - z} ms (emulated NVMe, software emulation)`);
    expect((await request(node.socket, 'DELETE', '/v1/volumes/fresh')).status).toBe(204);
  }, 120_000);

  it('clears the rule on unmount and removes the LV on delete', async () => {
    const u = await callDriver(driver, ['unmount', target]);
    expect(u.reply.status).toBe('Success');
    expect(readMountinfo(hostRoot()).some((m) => m.mountPoint === target)).toBe(false);
    expect(fs.readFileSync(path.join(pod.pod, 'io.max'), 'utf8').trim()).toBe('');
    expect((await request(node.socket, 'DELETE', '/v1/volumes/db')).status).toBe(204);
    const lvs = JSON.parse(execFileSync('lvs', ['--reportformat', 'json', 'qosd-nvme'], { encoding: 'utf8' }));
    expect(lvs.report[0].lv).toEqual([]);
  });
});
