// The control law of the work-conserving controller, as a pure function of one tick's measured
// rates (plus a little memory), so it can be tested against recorded samples.
//
// A pool is one device and one budget of device time (model/device-cost.ts): each volume's IO
// this tick, whatever its mix of reads and writes, small and large, costs a share of the device,
// and the pool's utilisation is the sum. Per pool, every tick:
//   - a guaranteed volume is ACTIVE in a direction (reads, writes) when it does more than
//     activeAbove of its minimum there, or any IO there with queuedAbove IOs in flight (a victim
//     starved to 1% of its minimum is not idle). A tick in which an active guarantee completed no
//     IO at all while IOs are in flight brings no news: it stands as it did the tick before. One
//     that had IO in flight all tick and completed none is stuck from its first IO: active, at 0,
//     needing its guarantee priced at the corners. In a direction its guarantee is kept when it gets its
//     IOPS minimum or its bandwidth minimum (both price the same device time, for small IOs and
//     for large); `best` is the worst over its active directions of rate/minimum in the better
//     of the two figures. It is STARVED when best < starvedBelow and it wants more: either the
//     pool is saturated (utilisation ≥ saturatedAbove), or it kept at least queuedAbove IOs in
//     flight on average over the tick (its device's time_in_queue), or it has IOs in flight and
//     completed none. The second test matters
//     because a capacity figure is measured with one workload and a mix of others gets less
//     from the same drive; a volume that idles between requests (a paced reader) is never starved;
//   - a volume's NEED is its cost at its aim: the IO of each active guaranteed direction scaled
//     to (1 + cutMargin) of its minimum there (0 for best-effort and idle volumes; IO in a
//     direction it has no guarantee for is not needed), and never more than (1 + cutMargin) of
//     the share its guarantee was admitted for (its minimums priced at the corners). The cutMargin aims a
//     little above each guarantee, so that a capacity figure a few percent optimistic, or one
//     probe step, still leaves the victim at its minimum;
//   - if any volume is starved, the AGGRESSORS are the others whose cost exceeds their need,
//     whatever kind of IO they do (a writer starves a reader as surely as another reader does).
//     Each is cut, in proportion to its excess e = cost − need, to the smaller of cost − D·e/Σe
//     (D: the starved volumes' deficit in their guaranteed directions, Σ(need − their cost
//     there)) and need + R·e/Σe (R: the room the active guarantees leave, 1 − Σ need over the
//     active guaranteed volumes). The cut lands on the directions the aggressor uses, its IO
//     there scaled by target/cost so that its cost falls to the target, and is written as an IOPS
//     limit for IOs under LARGE_CUT_BYTES and as a bandwidth limit for larger ones; never below
//     its own minimum, its aim in a guaranteed direction, or the floor, and never raised in such a
//     tick. The tick after a cut that changed a limit only watches: the victim's rate lags a cut
//     by a tick while the device queue drains, and cutting again on that lag would take the
//     neighbours far below the room;
//   - a volume SHORT of its minimum (best between starvedBelow and 1, wanting more) for
//     probeAfterTicks ticks in a row is treated as starved: the same cut, by its shortfall.
//     Without this the victim, once a probe has taken it just under its minimum, would sit there;
//   - else, once every active guarantee has been met for probeAfterTicks ticks in a row, every
//     controlled limit rises by probeStep of the device per tick, in the volume's own IOs (additive
//     probing: the victim dips by at most one step before it is short, and the holds keep the
//     cut/probe cycle slow, so the victim's rate stays at its minimum rather than swinging round it);
//   - else (no guarantee active on the pool) every controlled limit is dropped at once: there is
//     nothing left to protect, and the idle guarantee's share goes back to the neighbours
//     within a tick or two (work conservation). When the guarantee comes back, the first starved
//     tick cuts the neighbours to the room again;
//   - a limit that reaches the volume's configured max, or the pool's capacity, is dropped: the
//     volume is back on its configured limits.
// Limits never go below a volume's own guarantee, nor above its configured max (the policy takes
// the smaller of the two). With one dimension in play it cuts and lifts exactly as a law of that
// dimension alone would (test/unit/controller-law.test.ts holds it to that).
import type { Dimension, Figures } from '../model/qos';
import { SMALL_IO_BYTES, costOf, deviceCost, shareOf, type DeviceCost } from '../model/device-cost';

export interface LawParams {
  starvedBelow: number;
  saturatedAbove: number;
  queuedAbove: number;
  activeAbove: number;
  probeStep: number;
  probeAfterTicks: number;
  settleTicks: number;
  cutMargin: number;
  /**
   * The lowest IOPS limit ever written for a best-effort volume: floorIops, or as many of its IOs
   * as cost floorShare of the device where that is fewer (a few large IOs a second can be a large
   * part of a slow drive), and never below 1.
   */
  floorIops: number;
  floorShare: number;
}

export const DEFAULT_LAW: LawParams = {
  starvedBelow: 0.95,
  saturatedAbove: 0.9,
  queuedAbove: 0.5,
  activeAbove: 0.05,
  probeStep: 0.02,
  probeAfterTicks: 4,
  settleTicks: 1,
  cutMargin: 0.03,
  floorIops: 10,
  floorShare: 0.01,
};

export interface VolumeRates {
  volume: string;
  pool: string;
  min: Figures;
  max: Figures;
  rate: Figures;
  /** IOs the volume had in flight on average over the tick (completed IOs' time over the tick); absent: unknown. */
  queue?: number;
  /** IOs in flight at the end of the tick; absent: unknown. */
  inFlight?: number;
  /** The part of the tick the volume's device had IO in flight (0..1); absent: unknown. */
  busy?: number;
}

/** Controller limits: volume → dimension → limit (absent: not controlled). */
export type Limits = Map<string, Figures>;

/**
 * What the law remembers between ticks, per pool: how many ticks in a row every active guarantee
 * has been met, how many a wanting guarantee has been short of its minimum, and since the last cut.
 */
export interface LawMemory {
  metTicks: Map<string, number>;
  shortTicks: Map<string, number>;
  sinceCut: Map<string, number>;
  /** Per volume: how its guarantee stood last tick, while it was active (see guaranteeView). */
  standing: Map<string, Standing>;
  /** Per controlled volume and direction: the bytes per IO it last did (what its IOPS limit costs). */
  ioBytes: Map<string, Partial<Record<Direction, number>>>;
}

export const newLawMemory = (): LawMemory => ({ metTicks: new Map(), shortTicks: new Map(), sinceCut: new Map(), standing: new Map(), ioBytes: new Map() });

export interface Adjustment {
  volume: string;
  dimension: Dimension;
  from: number | undefined;
  to: number | undefined;
}

export interface LawResult {
  limits: Limits;
  adjustments: Adjustment[];
  /** Per pool the controller looked at: the device time all its volumes' IO cost this tick (1 = the whole device). */
  utilisations: Map<string, number>;
  /** Per volume of those pools: the device time its own IO cost. */
  shares: Map<string, number>;
}

export function lawStep(
  samples: VolumeRates[],
  current: Limits,
  capacity: Map<string, Figures>,
  p: LawParams = DEFAULT_LAW,
  memory: LawMemory = newLawMemory(),
): LawResult {
  const steps = lawSteps(samples, current, capacity, p, memory);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** How many volumes the law looks at between pauses. */
const CHUNK = 256;

/**
 * lawStep, pausing (yielding) before each pool and every CHUNK volumes within one, so a caller
 * on the event loop can give the loop back on a node with thousands of volumes in one pool.
 */
export function* lawSteps(
  samples: VolumeRates[],
  current: Limits,
  capacity: Map<string, Figures>,
  p: LawParams = DEFAULT_LAW,
  memory: LawMemory = newLawMemory(),
): Generator<void, LawResult> {
  const next: Limits = new Map([...current].map(([v, f]) => [v, { ...f }]));
  const adjustments: Adjustment[] = [];
  const utilisations = new Map<string, number>();
  const shares = new Map<string, number>();
  const set = setter(next, adjustments);

  for (const [pool, vols] of byPool(samples)) {
    yield;
    const cap = capacity.get(pool) ?? {};
    const model = deviceCost(cap);
    const priced = (min: Figures) => shareOf(cap, min).total;
    const views: GuaranteeView[] = [];
    let controlled = false;
    let utilisation = 0;
    for (let i = 0; i < vols.length; i++) {
      if (i % CHUNK === CHUNK - 1) yield;
      const v = vols[i]!;
      const cost = costOf(model, v.rate);
      utilisation += cost;
      controlled ||= current.has(v.volume);
      views.push(guaranteeView(v, cost, model, priced, p, memory.standing));
    }
    const guaranteed = views.filter((g) => g.guaranteed);
    // No guarantee here and nothing controlled: nothing to protect or lift (most pools of most nodes).
    if (guaranteed.length === 0 && !controlled) {
      memory.metTicks.delete(pool);
      memory.shortTicks.delete(pool);
      memory.sinceCut.delete(pool);
      continue;
    }
    utilisations.set(pool, utilisation);
    for (const g of views) shares.set(g.v.volume, g.cost);
    const saturated = utilisation >= p.saturatedAbove;
    const tick: PoolTick = { cap, model, current, memory, p, set };
    const wants = (g: GuaranteeView) => saturated || g.waiting;
    const active = guaranteed.filter((g) => g.active);
    const short = active.filter((g) => g.best < 1 && wants(g));
    const shortTicks = short.length > 0 ? (memory.shortTicks.get(pool) ?? 0) + 1 : 0;
    let starved = active.filter((g) => g.best < p.starvedBelow && wants(g));
    if (starved.length === 0 && shortTicks > p.probeAfterTicks) starved = short;

    const sinceCut = (memory.sinceCut.get(pool) ?? Infinity) + 1;
    memory.sinceCut.set(pool, sinceCut);
    if (starved.length > 0 && sinceCut <= p.settleTicks) {
      memory.metTicks.set(pool, 0);
      continue; // the last cut is still taking effect
    }
    if (starved.length > 0) {
      memory.metTicks.set(pool, 0);
      memory.shortTicks.set(pool, 0);
      const cutsBefore = adjustments.length;
      cutAggressors(tick, views, active, starved);
      // A tick that changed no limit starts no settling time.
      if (adjustments.length > cutsBefore) memory.sinceCut.set(pool, 0);
      continue;
    }

    memory.shortTicks.set(pool, shortTicks);
    const met = active.length > 0 && active.every((g) => g.best >= 1);
    const metTicks = met ? (memory.metTicks.get(pool) ?? 0) + 1 : 0;
    memory.metTicks.set(pool, metTicks);
    yield* probeUp(tick, vols, active.length > 0, metTicks);
  }
  // Volumes gone since (detached, deleted) leave no standing behind, nor IO sizes once uncontrolled.
  if (memory.standing.size > samples.length) {
    const seen = new Set(samples.map((v) => v.volume));
    for (const name of memory.standing.keys()) if (!seen.has(name)) memory.standing.delete(name);
  }
  for (const name of memory.ioBytes.keys()) if (!next.has(name)) memory.ioBytes.delete(name);
  return { limits: next, adjustments, utilisations, shares };
}

/** Sets (or, given undefined, drops) one limit in `next`, recording each change as an adjustment. */
function setter(next: Limits, adjustments: Adjustment[]): PoolTick['set'] {
  return (volume, d, to) => {
    const f = next.get(volume) ?? {};
    const from = f[d];
    if (from === to) return;
    if (to === undefined) delete f[d];
    else f[d] = to;
    if (Object.keys(f).length) next.set(volume, f);
    else next.delete(volume);
    adjustments.push({ volume, dimension: d, from, to });
  };
}

function byPool(samples: readonly VolumeRates[]): Map<string, VolumeRates[]> {
  const pools = new Map<string, VolumeRates[]>();
  for (const s of samples) {
    const list = pools.get(s.pool);
    if (list) list.push(s);
    else pools.set(s.pool, [s]);
  }
  return pools;
}

/** What one pool's tick changes limits through. */
interface PoolTick {
  cap: Figures;
  model: ReturnType<typeof deviceCost>;
  current: Limits;
  memory: LawMemory;
  p: LawParams;
  set: (volume: string, d: Dimension, to: number | undefined) => void;
}

/**
 * The cut: every volume using more device time than it needs gives up its part of what the
 * starved guarantees lack, in every direction it uses, never below its own guarantee or the floor.
 */
function cutAggressors(t: PoolTick, views: readonly GuaranteeView[], active: readonly GuaranteeView[], starved: readonly GuaranteeView[]): void {
  const { model, memory, current, p, set } = t;
  // In device time: what the starved volumes lack to reach their aim in the directions they are
  // guaranteed (a reader's own journal writes are not what it lacks), and the room the active
  // guarantees leave once each has its aim.
  const deficit = starved.reduce((s, g) => s + Math.max(0, g.need - g.guaranteedCost), 0);
  const victims = new Set(starved.map((g) => g.v));
  const aggressors = views.filter((g) => !victims.has(g.v) && g.cost > g.need);
  const totalExcess = aggressors.reduce((s, g) => s + (g.cost - g.need), 0);
  const room = Math.max(0, 1 - active.reduce((s, g) => s + g.need, 0));
  for (const a of aggressors) {
    const part = totalExcess > 0 ? (a.cost - a.need) / totalExcess : 0;
    const target = Math.max(0, Math.min(a.cost - deficit * part, a.need + room * part));
    // Its cost falls to the target in every direction it uses, whatever kind of IO it does.
    const k = a.cost > 0 ? target / a.cost : 1;
    for (const [dir, iops, bps] of DIRECTIONS) {
      const ios = a.v.rate[iops] ?? 0;
      if (ios <= 0) continue;
      const bytes = (a.v.rate[bps] ?? 0) / ios;
      const perIo = ioCost(model, dir, bytes, memory, a.v.volume);
      if (perIo === undefined) continue;
      // In IOs a second: never below its own guarantee, its aim in a guaranteed direction, or
      // the floor (floorIops, or fewer where its IOs are large).
      const own = Math.max(a.v.min[iops] ?? 0, bytes > 0 ? (a.v.min[bps] ?? 0) / bytes : 0);
      const aim = a.aimScale[dir];
      const floor = Math.min(p.floorIops, p.floorShare / perIo);
      const ioRate = Math.max(own, floor, aim === undefined ? 0 : ios * aim, ios * k);
      // Written in the figure the kernel holds steadily for this size (see LARGE_CUT_BYTES).
      const d = bytes >= LARGE_CUT_BYTES ? bps : iops;
      let to = d === bps ? Math.max(1, Math.floor(ioRate * bytes)) : Math.max(1, aim === undefined && own === 0 ? Math.floor(ioRate) : Math.ceil(ioRate));
      const now = current.get(a.v.volume)?.[d];
      if (now !== undefined) to = Math.min(to, now); // never raise in a starved tick
      if (a.v.max[d] !== undefined) to = Math.min(to, a.v.max[d]!);
      set(a.v.volume, d, to);
    }
  }
}

/**
 * The probe: after enough met ticks each controlled limit goes up a step of the device; a limit
 * that would let its volume take the whole device, or that no guarantee needs any more, is dropped.
 */
function* probeUp(t: PoolTick, vols: readonly VolumeRates[], anyActive: boolean, metTicks: number): Generator<void> {
  const { cap, model, memory, current, p, set } = t;
  for (let i = 0; i < vols.length; i++) {
    if (i % CHUNK === CHUNK - 1) yield;
    const v = vols[i]!;
    const limits = current.get(v.volume);
    if (!limits) continue;
    for (const [d, now] of Object.entries(limits) as [Dimension, number][]) {
      if (!anyActive) {
        set(v.volume, d, undefined);
        continue;
      }
      if (metTicks <= p.probeAfterTicks) continue;
      // Up by probeStep of the device, in the volume's own IOs (for 4 KiB IOs probeStep of the
      // IOPS figure); dropped once it would let the volume take the whole device.
      const dir = DIRECTION_OF[d];
      const [iops, bps] = dir === 'read' ? (['readIops', 'readBps'] as const) : (['writeIops', 'writeBps'] as const);
      const ios = v.rate[iops] ?? 0;
      const perIo = ioCost(model, dir, ios > 0 ? (v.rate[bps] ?? 0) / ios : undefined, memory, v.volume);
      // a bandwidth limit in bytes of the volume's IO size: the device time of a byte of it
      const size = memory.ioBytes.get(v.volume)?.[dir] ?? SMALL_IO_BYTES;
      const unit = perIo === undefined ? undefined : d === bps ? perIo / size : perIo;
      const raised = now + Math.max(1, Math.floor(unit ? p.probeStep / unit : p.probeStep * (cap[d] ?? now)));
      const ceiling = Math.min(v.max[d] ?? Infinity, unit ? 1 / unit : Infinity, cap[d] ?? Infinity);
      set(v.volume, d, raised >= ceiling ? undefined : raised);
    }
  }
}

/** How a volume's guarantee stood on its last active tick: carried over a tick that brings no news. */
export interface Standing {
  best: number;
  need: number;
  guaranteedCost: number;
  aimScale: Partial<Record<Direction, number>>;
}

/** How a volume stands against its guarantee this tick, in device time (see the header). */
interface GuaranteeView {
  v: VolumeRates;
  cost: number;
  guaranteed: boolean;
  /** Active in some guaranteed direction (above activeAbove of its minimum there). */
  active: boolean;
  /** IO waiting: queuedAbove IOs in flight on average, or IOs in flight and none completed this tick. */
  waiting: boolean;
  /** The worst of its active directions: rate over minimum in the better of the direction's two figures. */
  best: number;
  /** Its cost at its aim: every active guaranteed direction at (1 + cutMargin) of its minimum; 0 for a best-effort or idle volume. */
  need: number;
  /** What its IO in those directions costs now. */
  guaranteedCost: number;
  /** Per active guaranteed direction: by how much its rates must scale to be at its aim. */
  aimScale: Partial<Record<Direction, number>>;
}

type Direction = 'read' | 'write';
/** Busy for this much of a tick with nothing completed: the volume's IO is stuck behind others'. */
const STUCK_BUSY = 0.9;

/**
 * From this IO size up, a cut is a bandwidth limit; below it, an IOPS limit. Measured on Debian
 * 12's kernel (6.1) in the VM: a bandwidth limit on 4 KiB IO written after an earlier deep one
 * went unenforced for 1-4 s, while IOPS limits were held; and an IOPS limit of a few 128 KiB IOs a
 * second let a queue's worth through at each change (half a second of the drive), while a
 * bandwidth limit held them evenly.
 */
const LARGE_CUT_BYTES = 64 * 1024;

/**
 * Device time one IO of a volume costs in a direction, at `bytes` per IO (this tick's mix), or
 * at the size it last did (remembered for the volumes the law limits: a volume cut near zero
 * shows no mix), or else a small IO (4 KiB); undefined when the pool has no figures for the direction.
 */
function ioCost(model: DeviceCost, dir: Direction, bytes: number | undefined, memory: LawMemory, volume: string): number | undefined {
  const m = model[dir];
  if (!m) return undefined;
  let size = bytes;
  if (size) memory.ioBytes.set(volume, { ...memory.ioBytes.get(volume), [dir]: size });
  else size = memory.ioBytes.get(volume)?.[dir] ?? SMALL_IO_BYTES;
  const c = m.perIo + size * m.perByte;
  return c > 0 ? c : undefined;
}
const NO_AIM: Partial<Record<Direction, number>> = Object.freeze({});
const DIRECTIONS = [['read', 'readIops', 'readBps'], ['write', 'writeIops', 'writeBps']] as const;
const DIRECTION_OF: Record<Dimension, Direction> = { readIops: 'read', readBps: 'read', writeIops: 'write', writeBps: 'write' };

function guaranteeView(v: VolumeRates, cost: number, model: DeviceCost, priced: (min: Figures) => number, p: LawParams, standing: Map<string, Standing>): GuaranteeView {
  // Most volumes of a large node: no guarantee, or one that is idle.
  const { min } = v;
  if (!min.readIops && !min.readBps && !min.writeIops && !min.writeBps) return { v, cost, guaranteed: false, active: false, waiting: false, best: 0, need: 0, guaranteedCost: 0, aimScale: NO_AIM };
  const { rate } = v;
  const nothingDone = !rate.readIops && !rate.readBps && !rate.writeIops && !rate.writeBps;
  if (nothingDone && !v.inFlight && !standing.has(v.volume)) return { v, cost, guaranteed: true, active: false, waiting: false, best: 0, need: 0, guaranteedCost: 0, aimScale: NO_AIM };
  const waiting = (v.queue ?? 0) >= p.queuedAbove || (nothingDone && (v.inFlight ?? 0) >= 1);
  let guaranteed = false;
  let best = Infinity;
  let need = 0;
  let guaranteedCost = 0;
  const aimScale: Partial<Record<Direction, number>> = {};
  for (const [dir, iops, bps] of DIRECTIONS) {
    const ratios = [iops, bps].filter((d) => (v.min[d] ?? 0) > 0).map((d) => (v.rate[d] ?? 0) / v.min[d]!);
    if (ratios.length === 0) continue;
    guaranteed = true;
    const r = Math.max(...ratios);
    // A volume with IO waiting is active however little gets through: a small-IO reader behind a
    // large-IO streamer gets a sliver of its minimum, which the rate test alone would take for idle.
    if (!(r > p.activeAbove || (waiting && r > 0))) continue;
    best = Math.min(best, r);
    aimScale[dir] = (1 + p.cutMargin) / r;
    const now = costOf(model, { [iops]: v.rate[iops] ?? 0, [bps]: v.rate[bps] ?? 0 });
    guaranteedCost += now;
    need += now * aimScale[dir]!;
  }
  const last = standing.get(v.volume);
  if (best !== Infinity) {
    // Never more than the share its guarantee was admitted for (priced at the corners): a volume
    // with an IOPS minimum doing large IOs, or starting with a burst of them (measured in the VM:
    // fio's first writes, 73 KB each, made the "aim" thirteen times the device), is not owed more.
    need = Math.min(need, priced(v.min) * (1 + p.cutMargin));
    standing.set(v.volume, { best, need, guaranteedCost, aimScale });
    return { v, cost, guaranteed, active: true, waiting, best, need, guaranteedCost, aimScale };
  }
  // Starved so far that no IO completed this tick, with IOs still in flight (measured in the VM:
  // a 4k reader at 7 IOPS behind a 128k streamer completes nothing in many 250 ms ticks): no news,
  // so it stands as it stood last tick and wants more. Taking it for idle dropped every cut.
  if (guaranteed && last && nothingDone && (v.inFlight ?? 0) >= 1) {
    return { v, cost, guaranteed, active: true, waiting: true, ...last };
  }
  // Starved from its first IO: IO in flight all tick and none completed (measured in the VM: a
  // 4k reader starting behind a 128k streamer waited 500 ms for its first completion). It needs
  // its guarantee priced at the corners; there is no mix of its own to scale yet.
  if (guaranteed && nothingDone && (v.inFlight ?? 0) >= 1 && (v.busy ?? 0) >= STUCK_BUSY) {
    return { v, cost, guaranteed, active: true, waiting: true, best: 0, need: priced(v.min) * (1 + p.cutMargin), guaranteedCost: 0, aimScale: NO_AIM };
  }
  standing.delete(v.volume);
  return { v, cost, guaranteed, active: false, waiting, best: 0, need: 0, guaranteedCost: 0, aimScale: NO_AIM };
}
