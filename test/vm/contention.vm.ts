// The contention benchmark (issue 8), inside the VM: a drive qemu holds to 4000 IOPS, a victim
// reading (then writing) at queue depth 4 and a best-effort neighbour at 64, fio for both, in pods
// laid out by the systemd cgroup driver on cgroup v2. Three settings in one run: no QoS, a static
// cap of 1000 IOPS on the neighbour, and qosd's controller protecting the victim's minimum of 3000.
// Each: the victim's rate while the neighbour presses, the neighbour's share within 2 s of the
// victim stopping, and the victim's rate within 2 s of starting again. Prints the table and writes
// bench/results/contention.json (through the VM share). Runs with QOSD_VM_BENCH=1 only:
//   npm run bench:vm
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QOSCTL, installDriver, startDaemon, type RunningDaemon, type TestNode } from '../helpers/daemon';
import { callDriver, mountOptions, podVolumeDir } from '../helpers/kubelet';
import { parseIoStat } from '../../src/host/cgroup-v2';
import { request } from '../../src/cli/client';
import { makeSystemdPod, makeVmNode, type SystemdPod } from './vm-node';

const enabled = process.env.QOSD_VM === '1' && process.env.QOSD_VM_BENCH === '1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!enabled)(`contention benchmark${enabled ? '' : ' (skipped: QOSD_VM_BENCH=1 npm run bench:vm)'}`, () => {
  let node: TestNode;
  let daemon: RunningDaemon;
  let driver: string;
  const running: ChildProcess[] = [];
  const table: Record<string, unknown>[] = [];

  beforeAll(async () => {
    node = makeVmNode([
      'controller: { enabled: true, intervalMs: 250 }',
      'admission: { headroom: 0.1 }',
      'pools:',
      '  - { name: held, backend: lvm, volumeGroup: qosd-held, devices: [/dev/nvme2n1], capacity: { readIops: 4000, writeIops: 4000, readBps: 1G, writeBps: 1G } }',
      'defaults: { pool: held, size: 256Mi }',
    ]);
    daemon = await startDaemon(node);
    driver = installDriver(node);
    const init = spawnSync(process.execPath, [QOSCTL, '--socket', node.socket, 'pool', 'init', 'held', '--force'], { encoding: 'utf8' });
    expect(init.status, init.stderr).toBe(0);
  }, 300_000);

  afterAll(async () => {
    for (const p of running) p.kill('SIGKILL');
    await daemon?.stop();
    const lines = ['setting | io | victim while pressed | neighbour after victim stops (≤2 s) | victim back (≤2 s)', '---|---|---|---|---'];
    for (const r of table) lines.push(`${r.setting} | ${r.io} | ${r.victimPressed} | ${r.neighbourAlone} | ${r.victimBack}`);
    process.stdout.write(`\n${lines.join('\n')}\n`);
    fs.writeFileSync('/mnt/share/contention.json', `${JSON.stringify({ date: new Date().toISOString(), deviceIops: 4000, victimMin: 3000, rows: table }, null, 2)}\n`);
  });

  async function mount(name: string, user: Record<string, string>): Promise<{ pod: SystemdPod; device: string; deviceNumber: string; target: string }> {
    const pod = makeSystemdPod('besteffort');
    const target = podVolumeDir(node.kubeletRoot, pod.uid, name);
    fs.mkdirSync(target, { recursive: true });
    const r = await callDriver(driver, ['mount', target, mountOptions({ podUid: pod.uid, volumeName: name, user: { pool: 'held', size: '320Mi', ...user } })]);
    expect(r.reply.status, r.reply.message).toBe('Success');
    const v = (await fetchVolume(name)) as { device: string; deviceNumber: string };
    return { pod, device: v.device, deviceNumber: v.deviceNumber, target };
  }

  async function fetchVolume(name: string): Promise<unknown> {
    return (await request(node.socket, 'GET', `/v1/volumes/${name}`)).body;
  }

  function fio(container: string, file: string, rw: 'randread' | 'randwrite', depth: number, seconds: number): ChildProcess {
    const args = [
      '--name=b', '--thread', `--filename=${file}`, '--direct=1', '--ioengine=libaio', `--iodepth=${depth}`, `--rw=${rw}`, '--bs=4k',
      '--size=200M', '--time_based', `--runtime=${seconds}`, '--output=/dev/null',
    ];
    const p = spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec fio "$@"', container, ...args], { stdio: 'ignore' });
    running.push(p);
    return p;
  }

  /** IOPS of a pod on a device over the next `ms`, from the pod cgroup's io.stat. */
  async function iops(pod: string, device: string, key: 'rios' | 'wios', ms: number): Promise<number> {
    const read = () => parseIoStat(fs.readFileSync(path.join(pod, 'io.stat'), 'utf8')).get(device)?.[key] ?? 0;
    const a = read();
    const t = Date.now();
    await sleep(ms);
    return (read() - a) / ((Date.now() - t) / 1000);
  }

  async function scenario(setting: string, io: 'read' | 'write', victimQos: Record<string, string>, neighbourQos: Record<string, string>): Promise<void> {
    const tag = `${setting.replace(/[^a-z]/g, '')}${io[0]}`;
    const victim = await mount(`v-${tag}`, victimQos);
    const noisy = await mount(`n-${tag}`, neighbourQos);
    const rw = io === 'read' ? 'randread' : 'randwrite';
    const key = io === 'read' ? 'rios' : 'wios';
    // Files the fio jobs use, laid out first (layout is not measured).
    for (const m of [victim, noisy]) spawnSync('fio', ['--name=layout', `--filename=${m.target}/f`, '--size=200M', '--create_only=1', '--output=/dev/null']);
    const vFile = `${victim.target}/f`;
    const nFile = `${noisy.target}/f`;

    const n = fio(noisy.pod.container, nFile, rw, 64, 40);
    await sleep(3000);
    let v = fio(victim.pod.container, vFile, rw, 4, 10);
    await sleep(4000); // let the controller settle
    const victimPressed = await iops(victim.pod.pod, victim.deviceNumber, key, 3000);
    await new Promise((r) => v.once('exit', r));
    const neighbourAlone = await iops(noisy.pod.pod, noisy.deviceNumber, key, 2000);
    await sleep(2000);
    v = fio(victim.pod.container, vFile, rw, 4, 6);
    const victimBack = await iops(victim.pod.pod, victim.deviceNumber, key, 2000);
    v.kill('SIGKILL');
    n.kill('SIGKILL');
    await Promise.all([v, n].map((p) => (p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
    // Give the drive back for the next setting: unmount and delete both volumes.
    for (const m of [victim, noisy]) {
      const u = await callDriver(driver, ['unmount', m.target]);
      expect(u.reply.status, u.reply.message).toBe('Success');
    }
    for (const name of [`v-${tag}`, `n-${tag}`]) expect((await request(node.socket, 'DELETE', `/v1/volumes/${name}`)).status).toBe(204);
    table.push({ setting, io, victimPressed: Math.round(victimPressed), neighbourAlone: Math.round(neighbourAlone), victimBack: Math.round(victimBack) });
  }

  const read = { min: 'minReadIops', max: 'maxReadIops' };
  const write = { min: 'minWriteIops', max: 'maxWriteIops' };
  for (const [io, k] of [['read', read], ['write', write]] as const) {
    it(`${io}: no QoS`, async () => {
      await scenario('no QoS', io, {}, {});
    }, 300_000);
    it(`${io}: static cap of 1000 IOPS on the neighbour`, async () => {
      await scenario('static cap 1000', io, {}, { [k.max]: '1000' });
    }, 300_000);
    it(`${io}: qosd (victim min 3000, neighbour best-effort)`, async () => {
      await scenario('qosd', io, { [k.min]: '3000' }, {});
      const row = table.at(-1)! as { victimPressed: number; neighbourAlone: number; victimBack: number };
      expect(row.victimPressed).toBeGreaterThanOrEqual(0.95 * 3000);
      expect(row.neighbourAlone).toBeGreaterThanOrEqual(0.9 * 4000);
      expect(row.victimBack).toBeGreaterThanOrEqual(0.95 * 3000);
    }, 300_000);
  }
});
