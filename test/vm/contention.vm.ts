// The contention benchmark (issue 8), inside the VM: a drive qemu holds to QOSD_VM_HELD_IOPS (1500
// by default: under TCG the guest's CPU bounds IO at 2000-4000 IOPS, varying with the host's
// load, so a 4000 hold would measure CPU contention, not the drive's), a victim reading (then
// writing) at queue depth 4 and a best-effort neighbour at 64, fio for both, in pods laid out by
// the systemd cgroup driver on cgroup v2. The figures are taken in the run: the pool is
// calibrated, the victim's workload is measured alone and its minimum set to 75% of that (the
// issue's 3000 of 4058). Three settings, each from fresh volumes: no QoS, a static
// cap on the neighbour (calibrated capacity less the minimum), and qosd's controller. Each: the
// neighbour alone, the victim while the neighbour presses, the neighbour over the second second
// after the victim stops, and the victim over the second second after it starts again. Prints
// the table and writes bench/results/contention.json (through the VM share). Runs with
// QOSD_VM_BENCH=1 only:
//   npm run bench:vm
import * as fs from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningDaemon, TestNode } from '../helpers/daemon';
import { benchKit, recorder, sleep, startHeldNode, type Mounted } from './bench-kit';

const enabled = process.env.QOSD_VM === '1' && process.env.QOSD_VM_BENCH === '1';

describe.skipIf(!enabled)(`contention benchmark${enabled ? '' : ' (skipped: QOSD_VM_BENCH=1 npm run bench:vm)'}`, () => {
  let node: TestNode;
  let daemon: RunningDaemon;
  let driver: string;
  const running: ChildProcess[] = [];
  interface Row {
    setting: string;
    io: string;
    neighbourBefore: number;
    victimPressed: number;
    neighbourAfter: number;
    victimBack: number;
    victimMin?: number;
  }
  const table: (Row | { setting: string; io: string; victimAlone: number })[] = [];
  const held = Number(process.env.QOSD_VM_HELD_IOPS || 4000);
  let capacity: { readIops: number; writeIops: number } = { readIops: held, writeIops: held };
  const capacityOf = (io: 'read' | 'write') => (io === 'read' ? capacity.readIops : capacity.writeIops);
  // The issue's scenario: a minimum of 3000 for a victim that gets 4058 alone (74%).
  const alone: Record<'read' | 'write', number> = { read: 0, write: 0 };
  const minFor = (io: 'read' | 'write') => Math.floor((0.75 * alone[io]) / 10) * 10;

  beforeAll(async () => {
    const h = await startHeldNode(held);
    ({ node, daemon, driver } = h);
    capacity = h.calibration.capacity as typeof capacity;
  }, 300_000);

  afterAll(async () => {
    for (const p of running) p.kill('SIGKILL');
    await daemon?.stop();
    const lines = [
      'setting | io | victim alone | neighbour alone | victim while pressed | neighbour 1–2 s after the victim stops | victim 1–2 s after it starts again',
      '---|---|---|---|---|---|---',
    ];
    for (const r of table) {
      if ('victimAlone' in r) lines.push(`${r.setting} | ${r.io} | ${r.victimAlone} | | | |`);
      else lines.push(`${r.setting}${r.victimMin ? ` (min ${r.victimMin})` : ''} | ${r.io} | | ${r.neighbourBefore} | ${r.victimPressed} | ${r.neighbourAfter} | ${r.victimBack}`);
    }
    process.stdout.write(`\n${lines.join('\n')}\n`);
    const doc = { date: new Date().toISOString(), qemuThrottleIops: held, calibrated: capacity, victimAlone: alone, victimMin: { read: minFor('read'), write: minFor('write') }, rows: table };
    fs.writeFileSync('/mnt/share/contention.json', `${JSON.stringify(doc, null, 2)}\n`);
  });

  const kit = benchKit(() => ({ node, driver }), running);
  const { mount, iops, firstIo, stop, cleanUp, layOut } = kit;
  const fio = (m: Mounted, rw: 'randread' | 'randwrite', depth: number, seconds: number) => kit.fio(m, { rw, bs: '4k', depth }, seconds);

  /** The victim's workload alone on the drive: what its minimum is set from. */
  async function victimAlone(io: 'read' | 'write'): Promise<void> {
    const name = `alone-${io}`;
    const m = await mount(name, {});
    layOut(m);
    const key = io === 'read' ? 'rios' : 'wios';
    const v = fio(m, io === 'read' ? 'randread' : 'randwrite', 4, 60);
    await firstIo(m, key);
    await sleep(1000);
    const rate = await iops(m, key, 3000);
    await stop(v);
    await cleanUp([m]);
    alone[io] = Math.round(rate);
    table.push({ setting: 'victim alone', io, victimAlone: alone[io] });
  }

  async function scenario(setting: string, io: 'read' | 'write', victimQos: Record<string, string>, neighbourQos: Record<string, string>): Promise<Row> {
    const tag = `${setting.replace(/[^a-z]/g, '')}${io[0]}`;
    const victim = await mount(`v-${tag}`, victimQos);
    const noisy = await mount(`n-${tag}`, neighbourQos);
    const rw = io === 'read' ? 'randread' : 'randwrite';
    const key = io === 'read' ? 'rios' : 'wios';
    layOut(victim, noisy);

    const rec = recorder({ victim, neighbour: noisy });
    // The neighbour alone first: "the device" as the neighbour's workload sees it, this run.
    rec.mark('neighbour starts');
    const n = fio(noisy, rw, 64, 120);
    await firstIo(noisy, key);
    await sleep(1000);
    const neighbourBefore = await iops(noisy, key, 2000);
    // The victim joins; each figure below is timed from the victim's own first IO or its stop.
    rec.mark('victim starts');
    let v = fio(victim, rw, 4, 120);
    await firstIo(victim, key);
    await sleep(2000); // the controller's first cuts and hold
    const victimPressed = await iops(victim, key, 4000);
    await stop(v);
    rec.mark('victim stopped');
    await sleep(1000);
    const neighbourAfter = await iops(noisy, key, 1000); // its rate over the stop's second second
    await sleep(2000);
    rec.mark('victim starts');
    v = fio(victim, rw, 4, 120);
    await firstIo(victim, key);
    await sleep(1000);
    const victimBack = await iops(victim, key, 1000); // its rate over its second second
    await stop(v);
    await stop(n);
    rec.mark('both stopped');
    rec.save(`${tag}.json`, { setting, io, victimQos, neighbourQos, calibrated: capacity, victimAlone: alone[io] });
    await cleanUp([victim, noisy]);
    const row: Row = {
      setting,
      io,
      neighbourBefore: Math.round(neighbourBefore),
      victimPressed: Math.round(victimPressed),
      neighbourAfter: Math.round(neighbourAfter),
      victimBack: Math.round(victimBack),
    };
    table.push(row);
    return row;
  }

  const read = { min: 'minReadIops', max: 'maxReadIops' };
  const write = { min: 'minWriteIops', max: 'maxWriteIops' };
  for (const [io, k] of [['read', read], ['write', write]] as const) {
    it(`${io}: the victim's workload alone`, async () => {
      await victimAlone(io);
      expect(alone[io]).toBeGreaterThan(0);
    }, 300_000);
    it(`${io}: no QoS`, async () => {
      await scenario('no QoS', io, {}, {});
    }, 300_000);
    it(`${io}: static cap on the neighbour (calibrated capacity less the victim's minimum)`, async () => {
      await scenario('static cap', io, {}, { [k.max]: String(Math.max(10, capacityOf(io) - minFor(io))) });
    }, 300_000);
    it(`${io}: qosd (victim min 75% of its rate alone, neighbour best-effort)`, async () => {
      const min = minFor(io);
      const row = await scenario('qosd', io, { [k.min]: String(min) }, {});
      row.victimMin = min;
      expect(row.victimPressed, 'victim while the neighbour presses').toBeGreaterThanOrEqual(0.95 * min);
      expect(row.neighbourAfter, 'neighbour within 2 s of the victim stopping').toBeGreaterThanOrEqual(0.9 * row.neighbourBefore);
      expect(row.victimBack, 'victim within 2 s of starting again').toBeGreaterThanOrEqual(0.95 * min);
    }, 300_000);
  }
});
