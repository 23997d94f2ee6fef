// Phase 1 of the systemd-mode VM: systemd 252 is PID 1. qosd is installed exactly as the README's
// "Install on a node" says, from the package tarball, and the copy it was installed from is
// removed. Then, on the real systemd: socket activation; flex mounts (file pool and lvm pool)
// that PID 1's mount namespace sees, with data written from there landing in the volume; io.max
// on the pod cgroup; `systemctl restart qosd` under 100 parallel flex calls; a journal without
// errors; and a system-call filter whose denials would show. The phase ends in a reboot.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { callDriver, mountOptions } from '../../helpers/kubelet';
import { sectionCommands } from '../../helpers/readme';
import {
  CG, DRIVER, INSTALLED, QOSCTL, api, expectCleanJournal, flexMount, flexUnmount, hostMountsAt, loopsOf, makePod, qosdMainPid,
  readFromHost, run, saveState, seccompKills, targetFor, until, writeFromHost, type VolumeRecord,
} from './sys-node';

const CONFIG = `# The node's config, edited after install as the README says.
logLevel: info
kubelet: { cgroupDriver: cgroupfs }
reconcile: { intervalSeconds: 5 }
pools:
  - name: default
    backend: file
    path: /var/lib/qosd/volumes/default
    capacity: { readIops: 2000, writeIops: 2000, readBps: 200M, writeBps: 200M }
  - name: nvme
    backend: lvm
    volumeGroup: qosd-nvme
    devices: [/dev/nvme0n1, /dev/nvme1n1]
    capacity: { readIops: 2000, writeIops: 2000, readBps: 200M, writeBps: 200M }
defaults: { size: 64Mi }
`;

interface Vol { name: string; device: string; deviceNumber: string; backing: string }
const volumes: VolumeRecord[] = [];

describe('qosd installed as the README says, under a real systemd', () => {
  it('installs from the package tarball into /usr/local: a copy, not a link to a checkout', () => {
    const tarball = fs.readdirSync('/mnt/share').find((f) => /^qosd-.*\.tgz$/.test(f))!;
    const src = '/root/qosd-release';
    fs.mkdirSync(src, { recursive: true });
    fs.copyFileSync(path.join('/mnt/share', tarball), path.join(src, tarball));
    // The README's commands, as they are written there, run from where the tarball lies; the
    // config is edited where the README says to.
    for (const command of sectionCommands('Install on a node').slice(1)) {
      run('bash', ['-c', `cd ${src} && ${command}`], { timeoutMs: 900_000 });
      if (command.startsWith('install -D')) fs.writeFileSync('/etc/qosd/config.yaml', CONFIG);
    }
    fs.rmSync(src, { recursive: true, force: true });

    expect(fs.lstatSync(INSTALLED).isSymbolicLink()).toBe(false);
    expect(fs.realpathSync(QOSCTL).startsWith(`${INSTALLED}/`)).toBe(true);
    const unit = fs.readFileSync('/etc/systemd/system/qosd.service', 'utf8');
    expect(unit).toMatch(new RegExp(`^ExecStart=${process.execPath} --single-threaded-gc ${INSTALLED}/dist/cli/qosd\\.js --config /etc/qosd/config\\.yaml$`, 'm'));
    expect(fs.existsSync(DRIVER)).toBe(true);
  }, 900_000);

  it('runs the installed daemon in the host mount namespace, from the installed copy, with its Node.js flags', async () => {
    await until('qosd to answer', async () => (await api('GET', '/v1/status').catch(() => ({ status: 0 }))).status === 200);
    const pid = qosdMainPid();
    expect(pid).toBeGreaterThan(0);
    expect(fs.readlinkSync(`/proc/${pid}/ns/mnt`)).toBe(fs.readlinkSync('/proc/1/ns/mnt'));
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    // node, the daemon's Node.js flags (src/cli/node-flags.ts), then the installed daemon
    expect(cmdline.slice(1, 3)).toEqual(['--single-threaded-gc', `${INSTALLED}/dist/cli/qosd.js`]);
    const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
    expect(maps).toContain(`${INSTALLED}/dist/native/better_sqlite3-abi`);
    expect(maps).not.toContain('/mnt/repo');
    const doctor = run(QOSCTL, ['-o', 'json', 'doctor'], { allowFail: true });
    expect(doctor.code, doctor.out).toBe(0);
    const checks = (JSON.parse(doctor.out) as { checks: { name: string; status: string }[] }).checks;
    expect(checks.find((c) => c.name === 'mount namespace')?.status, doctor.out).toBe('ok');
  });

  it('is started by its socket: a call after `systemctl stop qosd.service` starts it again', async () => {
    run('systemctl', ['stop', 'qosd.service']);
    expect(run('systemctl', ['is-active', 'qosd.socket']).out.trim()).toBe('active');
    expect(run('systemctl', ['is-active', 'qosd.service'], { allowFail: true }).out.trim()).not.toBe('active');
    const status = run(QOSCTL, ['-o', 'json', 'status'], { timeoutMs: 180_000 });
    expect(JSON.parse(status.out).version).toBeTruthy();
    expect(run('systemctl', ['is-active', 'qosd.service']).out.trim()).toBe('active');
  });

  it('builds the lvm pool through the service (lvm under its device policy and system-call filter)', () => {
    run(QOSCTL, ['pool', 'init', 'nvme'], { timeoutMs: 300_000 });
    expect(run('vgs', ['--noheadings', '-o', 'vg_name']).out).toContain('qosd-nvme');
  });

  for (const pool of ['default', 'nvme'] as const) {
    it(`mounts a ${pool === 'default' ? 'file' : 'lvm'}-pool volume that PID 1 sees, with data landing in the volume and io.max on the pod`, async () => {
      const p = makePod();
      const name = `sys-${pool}`;
      const v: VolumeRecord = { name, pool, podUid: p.uid, target: targetFor(p.uid, name), data: `data of ${name} ${crypto.randomUUID()}`, mountedAtEnd: true, user: { pool, maxReadIops: '200', maxWriteBps: '20M' } };
      const r = await flexMount(v);
      expect(r.reply.status, r.reply.message).toBe('Success');
      const vol = (await api<Vol>('GET', `/v1/volumes/${name}`)).body;
      expect(hostMountsAt(v.target).map((m) => m.device)).toEqual([vol.deviceNumber]);
      const file = path.join(v.target, 'data.txt');
      writeFromHost(file, v.data);
      expect(fs.readFileSync(path.join(p.pod, 'io.max'), 'utf8')).toContain(`${vol.deviceNumber} rbps=max wbps=20000000 riops=200 wiops=max`);
      // Unmounted, the directory is empty: the data went to the volume, not to the root disk.
      expect((await flexUnmount(v.target)).reply.status).toBe('Success');
      expect(hostMountsAt(v.target)).toEqual([]);
      expect(readFromHost(file)).toBeUndefined();
      expect(fs.readFileSync(path.join(p.pod, 'io.max'), 'utf8')).not.toContain(vol.deviceNumber);
      expect((await flexMount(v)).reply.status).toBe('Success');
      expect(readFromHost(file)).toBe(v.data);
      expect(hostMountsAt(v.target)).toHaveLength(1);
      if (pool === 'default') expect(loopsOf(vol.backing)).toEqual([vol.device]);
      volumes.push(v);
    });
  }

  it('runs its other tools under the filter too: xfs, online growth (resize2fs, xfs_growfs), calibration with fio', async () => {
    for (const fsType of ['ext4', 'xfs']) {
      const p = makePod();
      const name = `grow-${fsType}`;
      const target = targetFor(p.uid, name);
      const r = await callDriver(DRIVER, ['mount', target, mountOptions({ podUid: p.uid, volumeName: name, fsType, user: { size: '300Mi' } })]);
      expect(r.reply.status, r.reply.message).toBe('Success');
      const grown = await api<{ sizeBytes: number }>('PATCH', `/v1/volumes/${name}`, { size: '600Mi' });
      expect(grown.status, JSON.stringify(grown.body)).toBe(200);
      expect(fs.statfsSync(target).blocks * fs.statfsSync(target).bsize).toBeGreaterThan(500 * 2 ** 20);
      expect((await flexUnmount(target)).reply.status).toBe('Success');
    }
    const cal = run(QOSCTL, ['calibrate', 'default', '--seconds', '0.5', '--method', 'fio', '--scratch-size', '64Mi'], { allowFail: true, timeoutMs: 600_000 });
    expect(cal.code, cal.out).toBe(0);
    expect(seccompKills()).toEqual([]);
  }, 600_000);

  it('loses no flex call and no mount when qosd restarts under 100 parallel calls', async () => {
    const mounted: VolumeRecord[] = [];
    for (let i = 0; i < 4; i++) {
      const p = makePod();
      const name = `load${i}`;
      const v: VolumeRecord = { name, pool: 'default', podUid: p.uid, target: targetFor(p.uid, name), data: `load ${i}`, mountedAtEnd: true, user: { maxReadIops: String(300 + i) } };
      expect((await flexMount(v)).reply.status).toBe('Success');
      writeFromHost(path.join(v.target, 'data.txt'), v.data);
      mounted.push(v);
    }
    const before = Number(run('systemctl', ['show', '-p', 'NRestarts', '--value', 'qosd.service']).out.trim());
    const pidBefore = qosdMainPid();
    // Repeated mounts of attached volumes (kubelet's periodic re-sync does these) and unmounts
    // of targets that are not mounted, all at once, with a restart in the middle.
    const calls = Array.from({ length: 100 }, (_, i) =>
      i % 5 === 4 ? flexUnmount(targetFor(crypto.randomUUID(), 'never')) : flexMount(mounted[i % 4]!));
    await new Promise((r) => setTimeout(r, 1500));
    run('systemctl', ['restart', 'qosd.service'], { timeoutMs: 300_000 });
    const results = await Promise.all(calls);
    const failed = results.filter((r) => r.reply.status !== 'Success');
    expect(failed.map((r) => r.reply.message)).toEqual([]);
    expect(qosdMainPid()).not.toBe(pidBefore);
    expect(Number(run('systemctl', ['show', '-p', 'NRestarts', '--value', 'qosd.service']).out.trim())).toBe(before);
    for (const v of mounted) {
      expect(hostMountsAt(v.target), v.target).toHaveLength(1);
      expect(readFromHost(path.join(v.target, 'data.txt'))).toBe(v.data);
    }
    volumes.push(...mounted);
  }, 600_000);

  it('shows a denied system call: the filter kills (checked on a denied call), and nothing of qosd was killed', () => {
    // Positive control: the unit's own filter (read from the installed unit) around a call it
    // denies, swapoff(2) of @swap, made directly through libc.
    const unit = fs.readFileSync('/etc/systemd/system/qosd.service', 'utf8');
    const props = unit.split('\n').filter((l) => /^(SystemCallFilter|SystemCallArchitectures|SystemCallErrorNumber)=/.test(l));
    expect(props.length).toBeGreaterThanOrEqual(3);
    const r = run('systemd-run', ['--wait', '--quiet', ...props.flatMap((p) => ['-p', p]), '/usr/bin/python3', '-c', 'import ctypes; ctypes.CDLL(None).swapoff(b"/nonexistent")'], { allowFail: true });
    expect(r.code, r.out).not.toBe(0);
    const all = `${run('journalctl', ['-b', '-k', '-o', 'cat', '--no-pager'], { allowFail: true }).out}${run('journalctl', ['-b', '_TRANSPORT=audit', '-o', 'cat', '--no-pager'], { allowFail: true }).out}`;
    expect(all.split('\n').filter((l) => /type=1326/.test(l) && /comm="python3"/.test(l)).length, 'the kill of the control is logged').toBeGreaterThan(0);
    expect(seccompKills()).toEqual([]);
  });

  it('has no error in its journal', () => {
    expectCleanJournal();
  });

  it('keeps the socket through a crash loop: callers wait on it, and the fixed daemon answers', async () => {
    const good = fs.readFileSync('/etc/qosd/config.yaml', 'utf8');
    fs.writeFileSync('/etc/qosd/config.yaml', `${good}\nnotAKey: 1\n`);
    // No start limit applies at all (the default, 5 starts in 10 s, is what put the socket into
    // service-start-limit-hit); under emulation a failed start takes seconds, so the loop below
    // could not reach the default limit, and the setting is read from systemd itself.
    expect(run('systemctl', ['show', '-p', 'StartLimitIntervalUSec', '--value', 'qosd.service']).out.trim()).toBe('0');
    const restarts = () => Number(run('systemctl', ['show', '-p', 'NRestarts', '--value', 'qosd.service']).out.trim());
    const before = restarts();
    run('systemctl', ['restart', 'qosd.service'], { allowFail: true });
    await until('three failed starts', () => restarts() >= before + 3, 180_000);
    expect(run('systemctl', ['is-active', 'qosd.socket']).out.trim()).toBe('active');
    fs.writeFileSync('/etc/qosd/config.yaml', good);
    const status = run(QOSCTL, ['-o', 'json', 'status'], { timeoutMs: 180_000 });
    expect(JSON.parse(status.out).version).toBeTruthy();
    expect(run('systemctl', ['is-active', 'qosd.socket']).out.trim()).toBe('active');
  }, 600_000);

  it('has no error in its journal since the crash loop ended', () => {
    // The crash loop above was made on purpose: judge the journal from the start that ended it.
    const since = run('systemctl', ['show', '-p', 'ActiveEnterTimestamp', '--value', 'qosd.service']).out.trim();
    expectCleanJournal(since);
    saveState({ volumes });
    expect(fs.readdirSync(path.join(CG, 'kubepods', 'burstable')).length).toBeGreaterThan(0);
  });

  it('reaches the API server its config names at an address that is not loopback, and no other', async () => {
    // Two addresses outside 127/8 on this VM (on lo: the VM has no other network), an API server
    // stand-in on each; the config names the first.
    for (const ip of ['10.99.0.1', '10.99.0.2']) run('ip', ['addr', 'replace', `${ip}/32`, 'dev', 'lo']);
    const seen = (ip: string) => (fs.existsSync(`/root/api-${ip}.log`) ? fs.readFileSync(`/root/api-${ip}.log`, 'utf8') : '');
    const servers = ['10.99.0.1', '10.99.0.2'].map((ip) =>
      spawn(process.execPath, [path.join(__dirname, 'fake-apiserver.mjs'), ip, '6443', `/root/api-${ip}.log`], { stdio: 'ignore' }));
    const kubeconfig = (ip: string) => `apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "http://${ip}:6443"}}]\nusers: [{name: u, user: {token: node-token}}]\n`;
    const good = fs.readFileSync('/etc/qosd/config.yaml', 'utf8');
    const watching = async () => (JSON.parse(run(QOSCTL, ['-o', 'json', 'status'], { timeoutMs: 180_000 }).out) as { csi: { volumeRequests: { watching: boolean; error: string | null } | null } }).csi.volumeRequests;
    try {
      fs.writeFileSync('/etc/qosd/kubeconfig', kubeconfig('10.99.0.1'), { mode: 0o600 });
      fs.writeFileSync('/etc/qosd/config.yaml', `${good}csi: { kubeconfig: /etc/qosd/kubeconfig }\n`);
      run(QOSCTL, ['install-units']);
      const unit = fs.readFileSync('/etc/systemd/system/qosd.service', 'utf8');
      expect(unit.split('\n').filter((l) => l.startsWith('IPAddress'))).toEqual(['IPAddressDeny=any', 'IPAddressAllow=localhost 10.99.0.1']);
      run('systemctl', ['daemon-reload']);
      run('systemctl', ['restart', 'qosd.service']);
      await until('qosd to watch VolumeRequests at 10.99.0.1', async () => (await watching())?.watching === true, 180_000);
      expect(seen('10.99.0.1')).toMatch(/GET \/apis\/qosd\.io\/v1alpha1\/volumerequests\?labelSelector=/);

      // The same unit, the config now naming the other address: the unit does not let it through.
      fs.writeFileSync('/etc/qosd/kubeconfig', kubeconfig('10.99.0.2'), { mode: 0o600 });
      run('systemctl', ['restart', 'qosd.service']);
      await until('qosd to say it cannot watch', async () => Boolean((await watching())?.error), 180_000);
      expect(seen('10.99.0.2')).toBe('');
    } finally {
      fs.writeFileSync('/etc/qosd/config.yaml', good);
      fs.rmSync('/etc/qosd/kubeconfig', { force: true });
      run(QOSCTL, ['install-units']);
      run('systemctl', ['daemon-reload']);
      run('systemctl', ['restart', 'qosd.service']);
      for (const s of servers) s.kill('SIGKILL');
      for (const ip of ['10.99.0.1', '10.99.0.2']) run('ip', ['addr', 'del', `${ip}/32`, 'dev', 'lo'], { allowFail: true });
    }
    expect(JSON.parse(run(QOSCTL, ['-o', 'json', 'status'], { timeoutMs: 180_000 }).out).version).toBeTruthy();
  }, 900_000);
});
