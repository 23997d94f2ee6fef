// The control law replayed against raw kernel stats recorded with no limits in force (open loop),
// parsed by the functions the daemon uses:
//   fixtures/controller-v1: this machine's real cgroup v1 (blkio.throttle.*_recursive of two pod
//     cgroups, loop device stat), recorded by fixtures/controller-v1/record.py;
//   fixtures/controller-vm: cgroup v2 in the VM harness (pod io.stat, dm device stat), recorded by
//     the contention bench's no-QoS setting (npm run bench:vm).
// The law is fed each tick's rates; what it would have written is checked against what the
// workloads were doing: nothing while the victim is idle or alone, a cut on the neighbour within
// two ticks of the victim being held below its minimum, the cut lifted within two ticks of the
// victim stopping, and the victim never limited.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LAW, lawStep, newLawMemory, type Limits, type VolumeRates } from '../../src/controller/law';
import { parseRwStat } from '../../src/host/cgroup-v1';
import { parseIoStat } from '../../src/host/cgroup-v2';
import { parseTimeInQueue } from '../../src/host/disk-queue';

type Role = 'victim' | 'neighbour';
interface Trace {
  cgroupVersion?: 'v1' | 'v2';
  io: 'read' | 'write';
  devices: Record<Role, string>;
  marks: { t: number; what: string }[];
  ticks: { t: number; stats: Record<Role, { ioStat?: string; ioServiced?: string; diskStat: string }> }[];
  calibrated?: { readIops: number; writeIops: number };
  victimAlone?: number;
}

const FIXTURES = path.join(__dirname, '../../fixtures');
const load = (file: string): Trace => JSON.parse(fs.readFileSync(path.join(FIXTURES, file), 'utf8')) as Trace;

function ops(trace: Trace, role: Role, tick: Trace['ticks'][number]): number {
  const s = tick.stats[role];
  const dev = trace.devices[role];
  if ((trace.cgroupVersion ?? 'v2') === 'v1') return parseRwStat(s.ioServiced!).get(dev)?.[trace.io] ?? 0;
  return parseIoStat(s.ioStat!).get(dev)?.[trace.io === 'read' ? 'rios' : 'wios'] ?? 0;
}

interface Step {
  t: number;
  victim: number;
  neighbour: number;
  limit: number | undefined;
  victimLimited: boolean;
}

function replay(trace: Trace, min: number, capacity: number): Step[] {
  const d = trace.io === 'read' ? 'readIops' : 'writeIops';
  let limits: Limits = new Map();
  const memory = newLawMemory();
  const steps: Step[] = [];
  for (let i = 1; i < trace.ticks.length; i++) {
    const a = trace.ticks[i - 1]!;
    const b = trace.ticks[i]!;
    const secs = (b.t - a.t) / 1000;
    const sample = (role: Role, m: number): VolumeRates => ({
      volume: role,
      pool: 'held',
      min: m ? { [d]: m } : {},
      max: {},
      rate: { [d]: (ops(trace, role, b) - ops(trace, role, a)) / secs },
      queue: (parseTimeInQueue(b.stats[role].diskStat)! - parseTimeInQueue(a.stats[role].diskStat)!) / 1000 / secs,
    });
    const samples = [sample('victim', min), sample('neighbour', 0)];
    limits = lawStep(samples, limits, new Map([['held', { [d]: capacity }]]), DEFAULT_LAW, memory).limits;
    steps.push({ t: b.t, victim: samples[0]!.rate[d]!, neighbour: samples[1]!.rate[d]!, limit: limits.get('neighbour')?.[d], victimLimited: limits.has('victim') });
  }
  return steps;
}

/** Checks the law's decisions over a replayed trace; returns the ticks the checks looked at. */
function check(trace: Trace, min: number, capacity: number): { cuts: number; lifts: number } {
  const steps = replay(trace, min, capacity);
  expect(steps.some((s) => s.victimLimited)).toBe(false);
  let cuts = 0;
  let lifts = 0;
  const at = (i: number): Step => steps[i]!;
  for (let i = 0; i < steps.length; i++) {
    const s = at(i);
    if (i > 0 && at(i - 1).limit !== undefined && s.limit === undefined) lifts++;
    if (s.victim === 0 || s.neighbour === 0) {
      // Nothing to protect (victim idle) or nobody to cut (victim alone): no limit two ticks on.
      if (i >= 2 && at(i - 1).victim === 0 && at(i - 2).victim === 0) expect(s.limit, `tick at ${s.t} ms`).toBeUndefined();
      continue;
    }
    // Both busy and the victim held well below its minimum: the neighbour is cut within 2 ticks,
    // to no more than the room the guarantee leaves.
    if (s.victim < 0.8 * min && i + 2 < steps.length && at(i + 1).victim > 0 && at(i + 2).victim > 0) {
      const cut = s.limit ?? at(i + 1).limit ?? at(i + 2).limit;
      expect(cut, `cut after the tick at ${s.t} ms (victim ${Math.round(s.victim)} of ${min})`).toBeDefined();
      expect(cut!).toBeLessThanOrEqual(Math.max(capacity - min, DEFAULT_LAW.floorIops));
      cuts++;
    }
  }
  return { cuts, lifts };
}

describe('control law replayed against recorded stats', () => {
  it('cgroup v1 on this machine (loop devices, direct-IO dd readers)', () => {
    const trace = load('controller-v1/trace.json');
    // No calibration here: the pool's capacity is what the two pods did together at most, and the
    // victim's minimum is 75% of its median rate alone (the first two seconds).
    const steps = replay(trace, 1, 1);
    const firstNeighbour = trace.marks.find((m) => m.what === 'neighbour starts')!.t;
    const alone = steps.filter((s) => s.t < firstNeighbour && s.victim > 0).map((s) => s.victim).sort((a, b) => a - b);
    const min = Math.floor(0.75 * alone[Math.floor(alone.length / 2)]!);
    const capacity = Math.max(...steps.map((s) => s.victim + s.neighbour));
    const { cuts, lifts } = check(trace, min, capacity);
    expect(cuts).toBeGreaterThanOrEqual(2); // each time the victim meets the neighbour
    expect(lifts).toBeGreaterThanOrEqual(1); // after the victim stops
  });

  for (const [file, io] of [['controller-vm/noqosr.json', 'read'], ['controller-vm/noqosw.json', 'write']] as const) {
    it(`cgroup v2 in the VM, ${io}s (fio QD4 victim, QD64 neighbour, held drive)`, () => {
      const trace = load(file);
      const min = Math.floor((0.75 * trace.victimAlone!) / 10) * 10;
      const capacity = io === 'read' ? trace.calibrated!.readIops : trace.calibrated!.writeIops;
      const { cuts, lifts } = check(trace, min, capacity);
      expect(cuts).toBeGreaterThanOrEqual(2);
      expect(lifts).toBeGreaterThanOrEqual(1);
    });
  }
});

describe('control law on one device budget, replayed against recorded stats (cgroup v1 on this machine)', () => {
  it('a read victim against a write neighbour: the writer is cut in its writes while the victim is held below its minimum, and lifted after', () => {
    // fixtures/controller-v1/trace-write-neighbour.json: the victim reads its loop device (one dd),
    // the neighbour writes its own (two dd), no limits in force. Both loop devices sit on this
    // machine's root disk, which the pool's budget stands for: its corners are what each did
    // alone at most (no calibration here), the victim's minimum 90% of its median rate alone.
    const trace = load('controller-v1/trace-write-neighbour.json') as Trace & { neighbourIo: string };
    expect(trace.neighbourIo).toBe('write');
    const rwOps = (role: Role, tick: Trace['ticks'][number]) => parseRwStat(tick.stats[role].ioServiced!).get(trace.devices[role]) ?? { read: 0, write: 0 };
    const rwBytes = (role: Role, tick: Trace['ticks'][number]) => parseRwStat((tick.stats[role] as { ioServiceBytes?: string }).ioServiceBytes!).get(trace.devices[role]) ?? { read: 0, write: 0 };
    const rates = (role: Role, a: Trace['ticks'][number], b: Trace['ticks'][number]) => {
      const secs = (b.t - a.t) / 1000;
      const [oa, ob, ba, bb] = [rwOps(role, a), rwOps(role, b), rwBytes(role, a), rwBytes(role, b)];
      return { readIops: (ob.read - oa.read) / secs, writeIops: (ob.write - oa.write) / secs, readBps: (bb.read - ba.read) / secs, writeBps: (bb.write - ba.write) / secs };
    };
    const ticks = trace.ticks.slice(1).map((b, i) => ({ t: b.t, victim: rates('victim', trace.ticks[i]!, b), neighbour: rates('neighbour', trace.ticks[i]!, b), a: trace.ticks[i]!, b }));
    const firstNeighbour = trace.marks.find((m) => m.what === 'neighbour starts')!.t;
    const alone = ticks.filter((s) => s.t < firstNeighbour && s.victim.readIops > 0).map((s) => s.victim.readIops).sort((x, y) => x - y);
    const min = Math.floor(0.9 * alone[Math.floor(alone.length / 2)]!);
    const capacity = new Map([['held', {
      readIops: Math.max(...ticks.map((s) => s.victim.readIops)), writeIops: Math.max(...ticks.map((s) => s.neighbour.writeIops)),
      readBps: Math.max(...ticks.map((s) => s.victim.readBps)), writeBps: Math.max(...ticks.map((s) => s.neighbour.writeBps)),
    }]]);
    let limits: Limits = new Map();
    const memory = newLawMemory();
    const seen = ticks.map((s) => {
      const queue = (role: Role) => (parseTimeInQueue(s.b.stats[role].diskStat)! - parseTimeInQueue(s.a.stats[role].diskStat)!) / 1000 / ((s.b.t - s.a.t) / 1000);
      const samples: VolumeRates[] = [
        { volume: 'victim', pool: 'held', min: { readIops: min }, max: {}, rate: s.victim, queue: queue('victim') },
        { volume: 'neighbour', pool: 'held', min: {}, max: {}, rate: s.neighbour, queue: queue('neighbour') },
      ];
      limits = lawStep(samples, limits, capacity, DEFAULT_LAW, memory).limits;
      return { t: s.t, victim: s.victim.readIops, writing: s.neighbour.writeIops > 0, limit: limits.get('neighbour'), victimLimited: limits.has('victim') };
    });
    expect(seen.some((s) => s.victimLimited)).toBe(false);
    // only what the neighbour does is cut: its writes, never its (absent) reads
    for (const s of seen) if (s.limit) expect(Object.keys(s.limit).every((d) => d.startsWith('write'))).toBe(true);
    let cuts = 0;
    seen.forEach((s, i) => {
      if (!s.writing || s.victim === 0 || s.victim >= DEFAULT_LAW.starvedBelow * min || i + 2 >= seen.length || seen[i + 2]!.victim === 0) return;
      expect(s.limit ?? seen[i + 1]!.limit ?? seen[i + 2]!.limit, `a cut after the tick at ${s.t} ms (victim ${Math.round(s.victim)} of ${min})`).toBeDefined();
      cuts++;
    });
    expect(cuts).toBeGreaterThanOrEqual(2);
    // the victim stops: within two ticks the writer is back on its own limits (none)
    const stopped = seen.findIndex((s) => s.t > trace.marks.find((m) => m.what === 'victim stopped')!.t);
    expect(seen[stopped + 2]!.limit).toBeUndefined();
  });
});
