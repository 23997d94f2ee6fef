// host/ parsers and writers against captured text and the fixture trees.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeRdev, deviceOf, encodeRdev, isWholeDisk } from '../../src/host/block-device';
import { parseMountinfo } from '../../src/host/mountinfo';
import { parseRuleFile, parseRwStat, syncRules } from '../../src/host/cgroup-v1';
import { cgroupTree, childCgroups } from '../../src/host/cgroupfs';
import { ioMaxLine, parseIoMax, parseIoStat, syncIoMax } from '../../src/host/cgroup-v2';
import { detectCgroupLayout } from '../../src/host/cgroup-layout';
import { threadWaitMs } from '../../src/host/thread-clock';
import { findPodCgroup, podCgroupCandidates } from '../../src/host/pod-cgroup';
import { hostRoot } from '../../src/host/host-root';

const FIX = path.resolve(__dirname, '../../fixtures/cgroup');
const UID = { guaranteed: '0b1c2d3e-0000-4000-8000-000000000001', burstable: '0b1c2d3e-0000-4000-8000-000000000002', besteffort: '0b1c2d3e-0000-4000-8000-000000000003' };

function copyFixture(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-fix-'));
  fs.cpSync(path.join(FIX, name), dir, { recursive: true });
  return dir;
}

describe('block device numbers', () => {
  it('decodes st_rdev with the Linux split, including minors ≥ 256 and majors ≥ 4096', () => {
    // glibc makedev(259, 256): minor bits 8+ move to bits 20+.
    expect(decodeRdev(0x110300n)).toEqual({ major: 259, minor: 256 }); // python: os.makedev(259, 256)
    expect(decodeRdev(encodeRdev({ major: 253, minor: 1000 }))).toEqual({ major: 253, minor: 1000 });
    expect(decodeRdev(0x100011138870n)).toEqual({ major: 5000, minor: 70000 }); // os.makedev(5000, 70000)
    expect(encodeRdev({ major: 5000, minor: 70000 })).toBe(0x100011138870n);
    // The common wrong decode (rdev / 256) gives 65539:0 for 259:256.
    expect(Math.floor(0x110300 / 256)).not.toBe(259);
  });

  it('agrees with sysfs for a real block device on this machine', () => {
    const loop = fs.readdirSync('/sys/block').find((n) => n.startsWith('loop') && fs.existsSync(`/dev/${n}`));
    if (!loop) return;
    const sys = fs.readFileSync(`/sys/block/${loop}/dev`, 'utf8').trim();
    const d = deviceOf(`/dev/${loop}`);
    expect(`${d.major}:${d.minor}`).toBe(sys);
    expect(isWholeDisk(hostRoot(), d)).toBe(true);
  });

  it('tells a partition from a whole disk by sysfs', () => {
    const sys = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-sys-'));
    fs.mkdirSync(path.join(sys, 'dev/block/259:0'), { recursive: true });
    fs.mkdirSync(path.join(sys, 'dev/block/259:1'), { recursive: true });
    fs.writeFileSync(path.join(sys, 'dev/block/259:1/partition'), '1\n');
    expect(isWholeDisk(hostRoot({ sys }), { major: 259, minor: 0 })).toBe(true);
    expect(isWholeDisk(hostRoot({ sys }), { major: 259, minor: 1 })).toBe(false);
    expect(() => isWholeDisk(hostRoot({ sys }), { major: 259, minor: 9 })).toThrow(/no block device 259:9/);
  });
});

describe('mountinfo', () => {
  it('parses fields, optional tags and octal escapes', () => {
    const text = [
      '36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue',
      '112 29 7:3 / /var/lib/kubelet/pods/u/volumes/qosd~nvme/my\\040vol rw,nosuid,nodev,relatime shared:60 - ext4 /dev/loop3 rw',
      '113 29 0:5 / /proc rw - proc proc rw',
    ].join('\n');
    const m = parseMountinfo(text);
    expect(m).toHaveLength(3);
    expect(m[0]).toMatchObject({ id: 36, parentId: 35, device: '98:0', root: '/mnt1', mountPoint: '/mnt2', fsType: 'ext3', source: '/dev/root' });
    expect(m[1]).toMatchObject({ device: '7:3', mountPoint: '/var/lib/kubelet/pods/u/volumes/qosd~nvme/my vol', fsType: 'ext4', source: '/dev/loop3' });
    expect(m[2]!.superOptions).toBe('rw');
  });
});

describe('cgroup v1 files', () => {
  it('parses rule files and rwstat files by keyword', () => {
    expect(parseRuleFile('7:0 200\n259:256 1048576\n')).toEqual(new Map([['7:0', 200], ['259:256', 1048576]]));
    expect(parseRuleFile('')).toEqual(new Map());
    const stat = '7:0 Read 1024\n7:0 Write 2048\n7:0 Sync 2048\n7:0 Async 1024\n7:0 Total 3072\n259:0 Read 10\n259:0 Write 0\nTotal 3082\n';
    expect(parseRwStat(stat)).toEqual(new Map([['7:0', { read: 1024, write: 2048 }], ['259:0', { read: 10, write: 0 }]]));
  });

  it('lists a pod cgroup and every cgroup under it', () => {
    const root = copyFixture('v1-cgroupfs');
    const pod = path.join(root, 'blkio/kubepods/burstable', `pod${UID.burstable}`);
    expect(cgroupTree(pod).map((d) => path.relative(pod, d)).sort()).toEqual(['', expect.stringMatching(/^4f6b/), expect.stringMatching(/^9a8b/)].sort());
  });

  it('lists cgroups nested below a container, and lists no leaf', () => {
    const pod = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-tree-'));
    for (const d of ['a/b/c', 'a/d', 'e']) fs.mkdirSync(path.join(pod, d), { recursive: true });
    fs.writeFileSync(path.join(pod, 'e', 'cgroup.procs'), '');
    const listed: string[] = [];
    const tree = cgroupTree(pod, (d) => (listed.push(path.relative(pod, d)), childCgroups(d)));
    expect(tree.map((d) => path.relative(pod, d)).sort()).toEqual(['', 'a', 'a/b', 'a/b/c', 'a/d', 'e']);
    // the leaves (link count 2) are stat'ed, not opened and listed
    expect(listed.sort()).toEqual(['', 'a', 'a/b']);
    fs.rmSync(pod, { recursive: true });
  });

  it('writes only what differs', () => {
    const dir = copyFixture('v1-cgroupfs/blkio');
    fs.writeFileSync(path.join(dir, 'blkio.throttle.read_iops_device'), '7:0 100\n');
    // The fixture files cannot drop a "0" line as the kernel does; check the writes themselves.
    expect(syncRules(dir, '7:0', { readIops: 100, writeBps: 5000 })).toBe(1);
    expect(fs.readFileSync(path.join(dir, 'blkio.throttle.write_bps_device'), 'utf8')).toBe('7:0 5000');
    expect(syncRules(dir, '7:0', { readIops: 100, writeBps: 5000 })).toBe(0);
  });
});

describe('cgroup v2 io.max', () => {
  it('parses the kernel format and formats all four keys, max for none', () => {
    expect(parseIoMax('253:3 rbps=209715200 wbps=max riops=5000 wiops=max\n7:0 rbps=max wbps=max riops=max wiops=max\n')).toEqual(
      new Map([['253:3', { readBps: 209715200, readIops: 5000 }], ['7:0', {}]]),
    );
    expect(ioMaxLine('259:256', { readIops: 100, writeBps: 1e6 })).toBe('259:256 rbps=max wbps=1000000 riops=100 wiops=max');
    expect(ioMaxLine('7:0', {})).toBe('7:0 rbps=max wbps=max riops=max wiops=max');
  });

  it('parses io.stat', () => {
    expect(parseIoStat('253:3 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n').get('253:3')).toEqual({
      rbytes: 1459200, wbytes: 314773504, rios: 192, wios: 353, dbytes: 0, dios: 0,
    });
  });

  for (const tree of ['v2-cgroupfs', 'v2-systemd']) {
    it(`writes one io.max line on the pod cgroup (${tree}), idempotently`, () => {
      const root = copyFixture(tree);
      const layout = detectCgroupLayout(hostRoot({ cgroup: root }), 'auto');
      expect(layout).toEqual({ version: 'v2', base: root });
      const found = findPodCgroup(root, UID.burstable, '/', 'auto');
      expect('dir' in found).toBe(true);
      const pod = (found as { dir: string }).dir;
      expect(syncIoMax(pod, '7:3', { readIops: 500, writeBps: 10485760 })).toBe(1);
      expect(fs.readFileSync(path.join(pod, 'io.max'), 'utf8')).toBe('7:3 rbps=max wbps=10485760 riops=500 wiops=max');
      expect(syncIoMax(pod, '7:3', { readIops: 500, writeBps: 10485760 })).toBe(0);
      expect(syncIoMax(pod, '7:3', {})).toBe(1);
      expect(fs.readFileSync(path.join(pod, 'io.max'), 'utf8')).toBe('7:3 rbps=max wbps=max riops=max wiops=max');
    });
  }

  it('says the io controller is not enabled when io.max is missing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-noio-'));
    expect(() => syncIoMax(dir, '7:0', { readIops: 1 })).toThrow(/io controller is not enabled/);
  });
});

describe('cgroup layout detection', () => {
  it('finds v1 blkio and v2 io, and explains when neither is there', () => {
    expect(detectCgroupLayout(hostRoot({ cgroup: path.join(FIX, 'v1-systemd') }), 'auto')).toEqual({ version: 'v1', base: path.join(FIX, 'v1-systemd/blkio') });
    expect(detectCgroupLayout(hostRoot({ cgroup: path.join(FIX, 'v2-systemd') }), 'v1')).toMatchObject({ error: expect.stringContaining('blkio') });
    expect(detectCgroupLayout(hostRoot({ cgroup: path.join(FIX, 'v1-systemd') }), 'v2')).toMatchObject({ error: expect.stringContaining('"io"') });
    expect(detectCgroupLayout(hostRoot({ cgroup: '/nonexistent' }), 'auto')).toMatchObject({ error: expect.stringContaining('no usable block-IO cgroup controller') });
  });
});

describe('pod cgroup resolution', () => {
  const cases: [string, 'cgroupfs' | 'systemd', string, keyof typeof UID, string][] = [
    ['v2-cgroupfs', 'cgroupfs', '/', 'guaranteed', `kubepods/pod${UID.guaranteed}`],
    ['v2-cgroupfs', 'cgroupfs', '/', 'burstable', `kubepods/burstable/pod${UID.burstable}`],
    ['v2-cgroupfs', 'cgroupfs', '/', 'besteffort', `kubepods/besteffort/pod${UID.besteffort}`],
    ['v2-systemd', 'systemd', '/', 'guaranteed', 'kubepods.slice/kubepods-pod0b1c2d3e_0000_4000_8000_000000000001.slice'],
    ['v2-systemd', 'systemd', '/', 'burstable', 'kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b1c2d3e_0000_4000_8000_000000000002.slice'],
    ['v2-systemd', 'systemd', '/', 'besteffort', 'kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b1c2d3e_0000_4000_8000_000000000003.slice'],
    ['v2-systemd-kind', 'systemd', '/kubelet', 'burstable', 'kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod0b1c2d3e_0000_4000_8000_000000000002.slice'],
    ['v2-systemd-kind', 'systemd', '/kubelet.slice', 'guaranteed', 'kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod0b1c2d3e_0000_4000_8000_000000000001.slice'],
    ['v1-systemd/blkio', 'systemd', '/', 'besteffort', 'kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b1c2d3e_0000_4000_8000_000000000003.slice'],
    ['v1-cgroupfs/blkio', 'cgroupfs', '/', 'burstable', `kubepods/burstable/pod${UID.burstable}`],
  ];
  for (const [tree, driver, root, qos, rel] of cases) {
    it(`${tree}, ${driver} driver, cgroupRoot ${root}, ${qos}`, () => {
      const base = path.join(FIX, tree);
      expect(findPodCgroup(base, UID[qos], root, driver)).toEqual({ dir: path.join(base, rel) });
      expect(findPodCgroup(base, UID[qos], root, 'auto')).toEqual({ dir: path.join(base, rel) });
    });
  }

  it('does not find a pod under the other driver, and lists what it tried', () => {
    const r = findPodCgroup(path.join(FIX, 'v2-systemd'), UID.burstable, '/', 'cgroupfs');
    expect(r).toEqual({ tried: expect.arrayContaining([path.join(FIX, 'v2-systemd', `kubepods/burstable/pod${UID.burstable}`)]) });
  });

  it('refuses a uid that could escape the tree', () => {
    expect(() => podCgroupCandidates('../../etc', '/', 'auto')).toThrow(/not a Kubernetes UID/);
  });
});

describe('io.max on a cgroup that is gone', () => {
  it('is ENOENT (nothing to write), while a cgroup without io.max is a set-up error', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-v2-'));
    const gone = path.join(dir, 'podgone');
    let err: NodeJS.ErrnoException | undefined;
    try {
      syncIoMax(gone, '7:1', {});
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    expect(err?.code).toBe('ENOENT');
    fs.mkdirSync(path.join(dir, 'noio'));
    expect(() => syncIoMax(path.join(dir, 'noio'), '7:1', {})).toThrow(/io controller is not enabled/);
  });
});

describe('thread clock', () => {
  it('counts the time this thread waited for a core while another process ran on it', async () => {
    // This thread and a busy process share one CPU; sleeping is not waiting.
    const tid = fs.readlinkSync('/proc/thread-self').split('/')[2]!;
    const mask = execFileSync('taskset', ['-p', tid], { encoding: 'utf8' }).trim().split(' ').pop()!;
    execFileSync('taskset', ['-p', '-c', '0', tid], { stdio: 'ignore' });
    const busy = spawn('taskset', ['-c', '0', process.execPath, '-e', 'for (;;);'], { stdio: 'ignore' });
    try {
      // Ratios of the time each phase took, which hold however busy the machine is: waking from a
      // sleep may wait for a core, but not for half the sleep; spinning beside a busy process on
      // one core waits for it a good part of the time (half, with nothing else there).
      const t0 = threadWaitMs(hostRoot());
      await new Promise((r) => setTimeout(r, 200));
      const slept = threadWaitMs(hostRoot()) - t0;
      const until = Date.now() + 300;
      while (Date.now() < until);
      const waited = threadWaitMs(hostRoot()) - t0 - slept;
      expect(slept).toBeLessThan(200 / 2);
      expect(waited).toBeGreaterThan(300 / 4);
    } finally {
      busy.kill('SIGKILL');
      execFileSync('taskset', ['-p', mask, tid], { stdio: 'ignore' });
    }
  });
});
