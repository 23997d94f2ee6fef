// Shared by the phases of the systemd-mode VM (test/vm/run-systemd.sh): the node as the README
// installs it (qosd under /usr/local, units in /etc/systemd/system, the flex driver in kubelet's
// default plugin directory, state in /var/lib/qosd, the socket systemd holds), cgroupfs-style
// pods on cgroup v2, and what one phase leaves for the next (/mnt/share/state.json).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { expect } from 'vitest';
import { callDriver, mountOptions, podVolumeDir, type DriverResult } from '../../helpers/kubelet';
import { request } from '../../../src/cli/client';
import { parseMountinfo } from '../../../src/host/mountinfo';

export const PREFIX = '/usr/local';
export const INSTALLED = path.join(PREFIX, 'lib', 'node_modules', 'qosd');
export const QOSCTL = path.join(PREFIX, 'bin', 'qosctl');
export const DRIVER = '/usr/libexec/kubernetes/kubelet-plugins/volume/exec/qosd~nvme/nvme';
export const SOCKET = '/run/qosd/qosd.sock';
export const KUBELET_ROOT = '/var/lib/kubelet';
export const CG = '/sys/fs/cgroup';
const STATE = '/mnt/share/state.json';

/** What a phase hands to the next: the volumes it made, where they were mounted, their data. */
export interface VolumeRecord {
  name: string;
  pool: 'default' | 'nvme';
  podUid: string;
  target: string;
  data: string;
  mountedAtEnd: boolean;
  user: Record<string, string>;
}
export interface PhaseState {
  volumes: VolumeRecord[];
  /** The volume whose create the power-off interrupted (phase 2 → 3). */
  interrupted?: VolumeRecord;
}

export function loadState(): PhaseState {
  return fs.existsSync(STATE) ? (JSON.parse(fs.readFileSync(STATE, 'utf8')) as PhaseState) : { volumes: [] };
}
export function saveState(s: PhaseState): void {
  fs.writeFileSync(STATE, JSON.stringify(s, null, 2));
  execFileSync('sync');
}

export function run(cmd: string, args: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 600_000, env: { ...process.env, PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' } });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (!opts.allowFail && r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${out}`);
  return { code: r.status ?? -1, out };
}

export const api = <T>(method: string, url: string, body?: unknown) => request<T>(SOCKET, method, url, body);

export function qosdMainPid(): number {
  return Number(run('systemctl', ['show', '-p', 'MainPID', '--value', 'qosd.service']).out.trim());
}

/** A pod's cgroup as kubelet's cgroupfs driver makes it on cgroup v2 (io enabled on the way). */
export function makePod(uid: string = crypto.randomUUID()): { uid: string; pod: string; container: string } {
  const parts = ['kubepods', 'burstable', `pod${uid}`];
  let dir = CG;
  for (const p of parts) {
    fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), '+io +memory');
    dir = path.join(dir, p);
    fs.mkdirSync(dir, { recursive: true });
  }
  fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), '+io +memory');
  const container = path.join(dir, crypto.randomBytes(32).toString('hex'));
  fs.mkdirSync(container);
  return { uid, pod: dir, container };
}

export function podCgroupOf(uid: string): string {
  return path.join(CG, 'kubepods', 'burstable', `pod${uid}`);
}

export function targetFor(uid: string, name: string): string {
  const t = podVolumeDir(KUBELET_ROOT, uid, name);
  fs.mkdirSync(t, { recursive: true });
  return t;
}

export function flexMount(v: Pick<VolumeRecord, 'name' | 'podUid' | 'target' | 'user'>, env: Record<string, string> = {}): Promise<DriverResult> {
  return callDriver(DRIVER, ['mount', v.target, mountOptions({ podUid: v.podUid, volumeName: v.name, user: v.user })], env);
}

export function flexUnmount(target: string): Promise<DriverResult> {
  return callDriver(DRIVER, ['unmount', target]);
}

/** The mounts on a path as PID 1 (the host's mount namespace, where kubelet lives) sees them. */
export function hostMountsAt(target: string) {
  return parseMountinfo(fs.readFileSync('/proc/1/mountinfo', 'utf8')).filter((m) => m.mountPoint === target);
}

/** A file written from PID 1's mount namespace, as kubelet's containers would write it. */
export function writeFromHost(file: string, text: string): void {
  run('nsenter', ['--target', '1', '--mount', '--', '/bin/sh', '-c', 'printf %s "$1" > "$0" && sync "$0"', file, text]);
}
export function readFromHost(file: string): string | undefined {
  const r = run('nsenter', ['--target', '1', '--mount', '--', '/bin/cat', file], { allowFail: true });
  return r.code === 0 ? r.out : undefined;
}

export function loopsOf(file: string): string[] {
  return run('losetup', ['-j', file]).out.split('\n').filter(Boolean).map((l) => l.split(':')[0]!);
}

/**
 * The journal has no error from qosd: no pino line at level error or fatal, no stack trace, and
 * no unit failure or kill (a denied system call ends a process with SIGSYS, status=31/SYS).
 */
export function expectCleanJournal(since = '-b'): void {
  const lines = run('journalctl', ['-u', 'qosd.service', '-u', 'qosd.socket', since === '-b' ? '-b' : `--since=${since}`, '-o', 'cat', '--no-pager']).out.split('\n').filter(Boolean);
  const bad = lines.filter((l) => {
    if (l.startsWith('{')) {
      try {
        return (JSON.parse(l) as { level?: number }).level! >= 50;
      } catch {
        return true; // a broken JSON line is a problem too
      }
    }
    return /error|fail|SIGSYS|31\/SYS|killed|start-limit/i.test(l);
  });
  expect(bad, lines.slice(-30).join('\n')).toEqual([]);
  expect(seccompKills(), 'a process was killed by the system-call filter').toEqual([]);
}

/** Kernel audit lines of seccomp kills (type=1326) this boot, from the kernel log and journald's audit transport. */
export function seccompKills(): string[] {
  const kernel = run('journalctl', ['-b', '-k', '-o', 'cat', '--no-pager'], { allowFail: true }).out;
  const audit = run('journalctl', ['-b', '_TRANSPORT=audit', '-o', 'cat', '--no-pager'], { allowFail: true }).out;
  return `${kernel}\n${audit}`.split('\n').filter((l) => /type=1326/.test(l) && !/comm="python3"/.test(l));
}

export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
