// What the VM contention benchmarks do with a running qosd: mount a volume of the held pool into a
// new pod (systemd cgroup layout, cgroup v2), run fio in its container, count its IOs from the
// pod's io.stat, and give the drive back. Shared by contention.vm.ts and contention-matrix.vm.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { expect } from 'vitest';
import { QOSCTL, installDriver, startDaemon, type RunningDaemon, type TestNode } from '../helpers/daemon';
import { callDriver, mountOptions, podVolumeDir } from '../helpers/kubelet';
import { parseIoStat } from '../../src/host/cgroup-v2';
import { request } from '../../src/cli/client';
import { makeSystemdPod, makeVmNode, type SystemdPod } from './vm-node';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Mounted {
  name: string;
  pod: SystemdPod;
  device: string;
  deviceNumber: string;
  target: string;
}

/** An fio job: pattern, block size, queue depth (rwmixread for randrw). */
export interface Job {
  rw: 'randread' | 'randwrite' | 'read' | 'write' | 'randrw';
  bs: string;
  depth: number;
  rwmixread?: number;
}

/** Which of a pod's IO counts as its rate: its reads, its writes, or both. */
export type Count = 'rios' | 'wios' | 'both';

/** fileSize: each fio file (fio's --size); volumeSize: each volume. The matrix uses smaller ones: on a
 *  held drive where a large IO costs its 4 KiB units, laying out 200M took ~50 s a volume. */
export function benchKit(ctx: () => { node: TestNode; driver: string }, running: ChildProcess[], sizes = { fileSize: '200M', volumeSize: '320Mi' }) {
  async function mount(name: string, user: Record<string, string>): Promise<Mounted> {
    const { node, driver } = ctx();
    const pod = makeSystemdPod('besteffort');
    const target = podVolumeDir(node.kubeletRoot, pod.uid, name);
    fs.mkdirSync(target, { recursive: true });
    const r = await callDriver(driver, ['mount', target, mountOptions({ podUid: pod.uid, volumeName: name, user: { pool: 'held', size: sizes.volumeSize, ...user } })]);
    expect(r.reply.status, r.reply.message).toBe('Success');
    const v = (await request<{ device: string; deviceNumber: string }>(node.socket, 'GET', `/v1/volumes/${name}`)).body;
    return { name, pod, device: v.device, deviceNumber: v.deviceNumber, target };
  }

  function fio(m: Mounted, job: Job, seconds: number): ChildProcess {
    const args = [
      '--name=b', '--thread', `--filename=${m.target}/f`, '--direct=1', '--ioengine=libaio', `--iodepth=${job.depth}`, `--rw=${job.rw}`, `--bs=${job.bs}`,
      `--size=${sizes.fileSize}`, '--time_based', `--runtime=${seconds}`, '--output=/dev/null', ...(job.rwmixread !== undefined ? [`--rwmixread=${job.rwmixread}`] : []),
    ];
    const p = spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec fio "$@"', m.pod.container, ...args], { stdio: 'ignore' });
    running.push(p);
    return p;
  }

  /** IOs a pod has done on its device so far (its cgroup's io.stat). */
  function ioCount(m: Mounted, key: Count): number {
    const s = parseIoStat(fs.readFileSync(path.join(m.pod.pod, 'io.stat'), 'utf8')).get(m.deviceNumber);
    if (!s) return 0;
    return key === 'both' ? (s.rios ?? 0) + (s.wios ?? 0) : (s[key] ?? 0);
  }

  /** IOPS of a pod on its device over the next `ms`. */
  async function iops(m: Mounted, key: Count, ms: number): Promise<number> {
    const a = ioCount(m, key);
    const t = Date.now();
    await sleep(ms);
    return (ioCount(m, key) - a) / ((Date.now() - t) / 1000);
  }

  /** Waits for the pod's first IO after now (fio takes seconds to start under TCG). */
  async function firstIo(m: Mounted, key: Count): Promise<void> {
    const base = ioCount(m, key);
    for (let i = 0; i < 600 && ioCount(m, key) === base; i++) await sleep(25);
  }

  async function stop(p: ChildProcess): Promise<void> {
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  /** Gives the drive back for the next case: unmount and delete the volumes. */
  async function cleanUp(ms: Mounted[]): Promise<void> {
    const { node, driver } = ctx();
    for (const m of ms) {
      const u = await callDriver(driver, ['unmount', m.target]);
      expect(u.reply.status, u.reply.message).toBe('Success');
      expect((await request(node.socket, 'DELETE', `/v1/volumes/${m.name}`)).status).toBe(204);
    }
  }

  /** The files the fio jobs use, laid out first (layout is not measured). */
  function layOut(...ms: Mounted[]): void {
    for (const m of ms) spawnSync('fio', ['--name=layout', `--filename=${m.target}/f`, `--size=${sizes.fileSize}`, '--create_only=1', '--output=/dev/null']);
  }

  /** Changes a volume through the API (as `qosctl volume set` does); the HTTP status. */
  async function patch(name: string, body: unknown): Promise<number> {
    return (await request(ctx().node.socket, 'PATCH', `/v1/volumes/${name}`, body)).status;
  }

  return { mount, fio, ioCount, iops, firstIo, stop, cleanUp, layOut, patch };
}

/**
 * Records the raw kernel stats the controller reads (each pod's io.stat, each volume device's
 * stat) every 250 ms, with marks for what the workloads did: the fixtures the control law's
 * unit test replays (fixtures/controller-vm).
 */
export function recorder(vols: Record<string, Mounted>, daemonOutput?: () => string) {
  const t0 = Date.now();
  const logFrom = daemonOutput?.().length ?? 0;
  const ticks: { t: number; stats: Record<string, { ioStat: string; diskStat: string; ioMax: string }> }[] = [];
  const marks: { t: number; what: string }[] = [];
  const timer = setInterval(() => {
    const stats: Record<string, { ioStat: string; diskStat: string; ioMax: string }> = {};
    for (const [role, v] of Object.entries(vols)) {
      stats[role] = {
        ioStat: fs.readFileSync(path.join(v.pod.pod, 'io.stat'), 'utf8'),
        diskStat: fs.readFileSync(`/sys/dev/block/${v.deviceNumber}/stat`, 'utf8'),
        ioMax: fs.readFileSync(path.join(v.pod.pod, 'io.max'), 'utf8'), // what the controller wrote
      };
    }
    ticks.push({ t: Date.now() - t0, stats });
  }, 250);
  return {
    mark: (what: string) => marks.push({ t: Date.now() - t0, what }),
    save: (file: string, extra: Record<string, unknown>) => {
      clearInterval(timer);
      fs.mkdirSync('/mnt/share/traces', { recursive: true });
      const devices = Object.fromEntries(Object.entries(vols).map(([role, v]) => [role, v.deviceNumber]));
      // The controller's own decisions (its debug log) while recording, on the same clock as the ticks.
      const decisions = (daemonOutput?.().slice(logFrom) ?? '')
        .split('\n')
        .filter((l) => l.includes('"controller'))
        .map((l) => {
          const e = JSON.parse(l) as { time: number };
          return { ...e, t: e.time - t0 };
        });
      fs.writeFileSync(`/mnt/share/traces/${file}`, `${JSON.stringify({ recorded: new Date().toISOString(), devices, ...extra, marks, ticks, decisions })}\n`);
    },
  };
}

export interface HeldNode {
  node: TestNode;
  daemon: RunningDaemon;
  driver: string;
  /** What `qosctl calibrate held` stored: the pool's four figures and the cost model's check on two mixes. */
  calibration: { capacity: Record<string, number>; mixes: { name: string; predictedIops: number; measuredIops: number; errorPct: number }[] };
}

/**
 * A qosd in the VM with its controller on, the `held` lvm pool on the drive qemu holds
 * (/dev/nvme2n1) initialised and calibrated with fio. The calibration's figures, not the config's
 * placeholder, are the pool's capacity: under TCG the VM's CPU can be the limit, and the minimums
 * are set from what the drive really delivers here, as an operator would.
 */
export async function startHeldNode(held: number, pool: { unloadedLatency?: string } = {}): Promise<HeldNode> {
  const node = makeVmNode([
    'controller: { enabled: true, intervalMs: 250 }',
    'admission: { headroom: 0.1 }',
    'pools:',
    `  - { name: held, backend: lvm, volumeGroup: qosd-held, devices: [/dev/nvme2n1], capacity: { readIops: ${held}, writeIops: ${held} }${pool.unloadedLatency ? `, unloadedLatency: ${pool.unloadedLatency}` : ''} }`,
    'defaults: { pool: held, size: 256Mi }',
  ]);
  const daemon = await startDaemon(node, ['--log-level', 'trace']); // the controller's view and decisions go into the traces
  const driver = installDriver(node);
  const init = spawnSync(process.execPath, [QOSCTL, '--socket', node.socket, 'pool', 'init', 'held', '--force'], { encoding: 'utf8' });
  expect(init.status, init.stderr).toBe(0);
  const cal = spawnSync(process.execPath, [QOSCTL, '--socket', node.socket, '-o', 'json', 'calibrate', 'held', '--method', 'fio', '--seconds', '3', '--scratch-size', '256Mi'], { encoding: 'utf8' });
  expect(cal.status, cal.stderr).toBe(0);
  return { node, daemon, driver, calibration: JSON.parse(cal.stdout) as HeldNode['calibration'] };
}
