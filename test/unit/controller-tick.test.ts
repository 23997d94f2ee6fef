// The controller's own tick, without root: the store says which volumes are attached with which
// guarantees, the device counters come from a recording (fixtures/controller-vm/noqosr.json: two
// fio readers on one drive in the VM, no limits in force, their dm devices' stat lines), and a
// fake enforcer records what the tick asks to be written. Each recorded tick is replayed at its
// recorded time through the controller's clock.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Controller, ControlledLimits } from '../../src/controller/controller';
import { hostRoot } from '../../src/host/host-root';
import { Metrics } from '../../src/metrics/registry';
import type { Attachment } from '../../src/store/attachments';
import type { Volume } from '../../src/store/volumes';
import { TimeSlice } from '../../src/util/time-slice';
import { addAttachment, addVolume, memoryStore, quietLog } from '../helpers/fixtures';

type Role = 'victim' | 'neighbour';
interface Trace {
  devices: Record<Role, string>;
  calibrated: { readIops: number };
  victimAlone: number;
  marks: { t: number; what: string }[];
  ticks: { t: number; stats: Record<Role, { diskStat: string }> }[];
}
const trace = JSON.parse(fs.readFileSync(path.join(__dirname, '../../fixtures/controller-vm/noqosr.json'), 'utf8')) as Trace;

/** The recorded tick's two stat lines as /proc/diskstats lines. */
function diskstats(tick: Trace['ticks'][number]): string {
  return (['victim', 'neighbour'] as const)
    .map((role) => `${trace.devices[role].replace(':', ' ')} dm-${role} ${tick.stats[role].diskStat.trim()}`)
    .join('\n');
}

function setUp() {
  const store = memoryStore();
  const min = Math.floor((0.75 * trace.victimAlone) / 10) * 10;
  const victim = addVolume(store, { name: 'victim', deviceNumber: trace.devices.victim, min: { readIops: min } });
  const neighbour = addVolume(store, { name: 'neighbour', deviceNumber: trace.devices.neighbour });
  addAttachment(store, victim, '0b1c2d3e-0000-4000-8000-00000000000a', '/sys/fs/cgroup/kubepods.slice/a', 'v2');
  addAttachment(store, neighbour, '0b1c2d3e-0000-4000-8000-00000000000b', '/sys/fs/cgroup/kubepods.slice/b', 'v2');
  const writes: { volume: string; reason: string; limit: number | undefined }[] = [];
  const policy = new ControlledLimits();
  // The recorded tick's counters are laid out as <proc>/diskstats in a fixture tree.
  const proc = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-tick-'));
  let tick = trace.ticks[0]!;
  const controller = new Controller({
    store,
    enforcer: {
      apply: (att: Attachment, vol: Volume, reason) => {
        writes.push({ volume: vol.name, reason, limit: policy.limitsFor(vol).readIops });
        return { attachment: att, writes: 1 };
      },
    },
    pools: { capacities: () => new Map([['default', { readIops: trace.calibrated.readIops }]]) },
    policy,
    metrics: new Metrics(),
    log: quietLog(),
    intervalMs: 250,
    clock: () => BigInt(tick.t) * 1_000_000n,
    root: hostRoot({ proc }),
  });
  const at = async (t: (typeof trace.ticks)[number]) => {
    tick = t;
    fs.writeFileSync(path.join(proc, 'diskstats'), `${diskstats(t)}\n`);
    await controller.tick(new TimeSlice());
  };
  return { controller, policy, writes, min, at };
}

describe('controller tick over recorded device counters', () => {
  it('cuts the neighbour while the victim is held below its guarantee, lifts the cut when it stops, never limits the victim', async () => {
    const { policy, writes, at, min } = setUp();
    const victimStarts = trace.marks.find((m) => m.what === 'victim starts')!.t;
    const victimStops = trace.marks.find((m) => m.what === 'victim stopped')!.t;
    const limitAt: { t: number; neighbour: number | undefined; victim: number | undefined }[] = [];
    for (const t of trace.ticks) {
      await at(t);
      limitAt.push({ t: t.t, neighbour: policy.controlled('neighbour').readIops, victim: policy.controlled('victim').readIops });
    }
    expect(limitAt.every((l) => l.victim === undefined)).toBe(true);
    const beforeVictim = limitAt.filter((l) => l.t < victimStarts);
    expect(beforeVictim.every((l) => l.neighbour === undefined)).toBe(true); // nothing to protect yet
    // The first tick where the victim, busy, got less than 80% of its guarantee: cut within two.
    const reads = (i: number, role: Role) => Number(trace.ticks[i]!.stats[role].diskStat.trim().split(/\s+/)[0]);
    const rate = (i: number, role: Role) => (reads(i, role) - reads(i - 1, role)) / ((trace.ticks[i]!.t - trace.ticks[i - 1]!.t) / 1000);
    const starved = trace.ticks.findIndex((_, i) => i > 0 && rate(i, 'victim') > 0 && rate(i, 'neighbour') > 0 && rate(i, 'victim') < 0.8 * min);
    expect(starved, 'the recording holds the victim below its guarantee').toBeGreaterThan(0);
    const firstCut = limitAt.find((l) => l.neighbour !== undefined);
    expect(firstCut, 'a cut').toBeDefined();
    expect(limitAt.findIndex((l) => l === firstCut)).toBeLessThanOrEqual(starved + 2);
    expect(firstCut!.neighbour!).toBeLessThanOrEqual(trace.calibrated.readIops - min);
    // Lifted within a few ticks of the victim going idle.
    const afterStop = limitAt.filter((l) => l.t > victimStops + 1500 && l.t < victimStops + 3000);
    expect(afterStop.length).toBeGreaterThan(0);
    expect(afterStop.every((l) => l.neighbour === undefined)).toBe(true);
    // Each change was written to the neighbour's cgroups, as the controller's, with the new limit.
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.every((w) => w.volume === 'neighbour' && w.reason === 'controller')).toBe(true);
    expect(writes.some((w) => w.limit === firstCut!.neighbour)).toBe(true);
    expect(writes.some((w) => w.limit === undefined)).toBe(true);
  });

  it('measures nothing and writes nothing while no attached volume has a guarantee', async () => {
    const store = memoryStore();
    addAttachment(store, addVolume(store, { name: 'a', deviceNumber: '254:0' }), '0b1c2d3e-0000-4000-8000-00000000000a', '/cg/a', 'v2');
    // No diskstats under this root: a tick that read the counters would throw.
    const proc = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-tick-')), 'no-proc');
    const controller = new Controller({
      store, enforcer: { apply: () => { throw new Error('no write expected'); } }, pools: { capacities: () => new Map() },
      policy: new ControlledLimits(), metrics: new Metrics(), log: quietLog(), intervalMs: 250,
      root: hostRoot({ proc }),
    });
    await expect(controller.tick()).resolves.toBeUndefined();
    await expect(controller.tick()).resolves.toBeUndefined();
    expect(fs.existsSync(proc)).toBe(false);
  });
});
