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
// Latency targets (a mean completion latency per direction, over the volume's newest ticks that
// hold latencyWindowIos IOs, or fewer once even the least that mean can be is over the target,
// since its pool's last cut): an active guaranteed volume whose latency in a direction is above
// its target there, while it does no more than latencyRateBound of its guarantee (beyond that the
// wait is its own queue), is STARVED whatever its rate. The aggressors then each give up a part
// of their excess over their need, shed = 1 − target/latency of the latest victim (at most
// latencyCutMost, three quarters, a tick), together with any rate deficit. Every active
// guarantee counts as met for the probe while each target is held; while one is held but not
// comfortably (latency above latencyComfort of it) the probe steps only once every
// latencyHeldProbeTicks: a target set close to the latency the device gives alone is never
// comfortably under, and holding there ratcheted the neighbours down with every late tick
// until the victim went idle (measured in the VM: a third of the drive used).
// Limits never go below a volume's own guarantee, nor above its configured max (the policy takes
// the smaller of the two). With one dimension in play it cuts and lifts exactly as a law of that
// dimension alone would (test/unit/controller-law.test.ts holds it to that).
import type { Dimension, Direction, Figures, LatencyTargets } from '../model/qos';
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
  /** Latency at most this part of its target: comfortably held (the probe may lift the neighbours). */
  latencyComfort: number;
  /** While a target is held but not comfortably, the probe steps once every this many met ticks. */
  latencyHeldProbeTicks: number;
  /** A target is held for IO up to this multiple of the volume's guarantee in its direction. */
  latencyRateBound: number;
  /** The most of their excess the aggressors give up in one tick for a latency target. */
  latencyCutMost: number;
  /**
   * A targeted volume's latency is the mean over its newest ticks that hold latencyWindowIos IOs
   * (or all of its last latencyWindowTicks), since the last cut that changed a limit in its pool:
   * the kernel counts IO time in whole milliseconds, which over one tick of a paced volume can be
   * coarser than its target (at 100 IOs, a tenth of a millisecond). Fewer ticks do when even the
   * least the mean can be, a millisecond off, is over the target.
   */
  latencyWindowTicks: number;
  latencyWindowIos: number;
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
  latencyComfort: 0.8,
  latencyHeldProbeTicks: 4,
  latencyRateBound: 1.5,
  latencyCutMost: 0.75,
  latencyWindowTicks: 4,
  latencyWindowIos: 100,
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
  /** Its latency targets (seconds), if any. */
  latencyTarget?: LatencyTargets;
  /** Per direction in which IOs completed this tick: how many, and their issue-to-completion time summed (seconds). */
  completed?: Completed;
}

export type Completed = Partial<Record<Direction, { ios: number; seconds: number }>>;

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
  /** Per volume with a latency target: its completed IO over its last ticks (latencyWindowTicks). */
  latencyWindows: Map<string, Completed[]>;
}

export const newLawMemory = (): LawMemory => ({ metTicks: new Map(), shortTicks: new Map(), sinceCut: new Map(), standing: new Map(), ioBytes: new Map(), latencyWindows: new Map() });

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
  /** Per active guarantee (a volume's rate or latency in a direction): what it got this tick. */
  attained: Attained[];
}

/** How one guarantee fared in a tick: the part of it delivered, and whether that was short. */
export interface Attained {
  volume: string;
  pool: string;
  direction: Direction;
  guarantee: 'rate' | 'latency';
  /** Rate: its rate over its minimum (the better of IOPS and bandwidth); latency: target over measured latency. */
  delivered: number;
  /**
   * Short of what was promised: a rate under attainedAbove of its minimum while the volume wanted
   * more (IO waiting, or its pool's device saturated: a paced volume asking for less is not short),
   * a latency over its target by more than 1/attainedAbove.
   */
  short: boolean;
}

/** The part of a guarantee delivered in a tick below which the tick counts as short (users' alert: 90%). */
export const ATTAINED_ABOVE = 0.9;

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
  const attained: Attained[] = [];
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
      views.push(guaranteeView(v, cost, model, priced, p, memory.standing, windowedLatency(v, p, memory.latencyWindows)));
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
    for (const g of active) {
      for (const k of g.kept) {
        const short = k.delivered < ATTAINED_ABOVE && (k.guarantee === 'latency' || wants(g));
        attained.push({ volume: g.v.volume, pool, direction: k.direction, guarantee: k.guarantee, delivered: k.delivered, short });
      }
    }
    const short = active.filter((g) => g.best < 1 && wants(g));
    const shortTicks = short.length > 0 ? (memory.shortTicks.get(pool) ?? 0) + 1 : 0;
    let starved = active.filter((g) => (g.best < p.starvedBelow && wants(g)) || g.late > 1);
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
      // A tick that changed no limit starts no settling time. One that did starts the pool's
      // latency windows again: the IO before the cut says nothing of the neighbours after it.
      if (adjustments.length > cutsBefore) {
        memory.sinceCut.set(pool, 0);
        for (const v of vols) memory.latencyWindows.delete(v.volume);
      }
      continue;
    }

    memory.shortTicks.set(pool, shortTicks);
    const met = active.length > 0 && active.every((g) => g.best >= 1 && g.late <= 1);
    const metTicks = met ? (memory.metTicks.get(pool) ?? 0) + 1 : 0;
    memory.metTicks.set(pool, metTicks);
    const comfortable = active.every((g) => g.late <= p.latencyComfort);
    const probe = metTicks > p.probeAfterTicks && (comfortable || (metTicks - p.probeAfterTicks) % p.latencyHeldProbeTicks === 0);
    yield* probeUp(tick, vols, active.length > 0, probe);
  }
  // Volumes gone since (detached, deleted) leave no standing behind, nor IO sizes once uncontrolled.
  if (memory.standing.size > samples.length) {
    const seen = new Set(samples.map((v) => v.volume));
    for (const name of memory.standing.keys()) if (!seen.has(name)) memory.standing.delete(name);
  }
  for (const name of memory.ioBytes.keys()) if (!next.has(name)) memory.ioBytes.delete(name);
  if (memory.latencyWindows.size > 0) {
    const seen = new Set(samples.filter((v) => v.latencyTarget).map((v) => v.volume));
    for (const name of memory.latencyWindows.keys()) if (!seen.has(name)) memory.latencyWindows.delete(name);
  }
  return { limits: next, adjustments, utilisations, shares, attained };
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
  const rateDeficit = starved.reduce((s, g) => s + Math.max(0, g.need - g.guaranteedCost), 0);
  const victims = new Set(starved.map((g) => g.v));
  const aggressors = views.filter((g) => !victims.has(g.v) && g.cost > g.need);
  const totalExcess = aggressors.reduce((s, g) => s + (g.cost - g.need), 0);
  // A latency target over by a factor late asks the neighbours for 1 − 1/late of their excess.
  const late = Math.max(0, ...starved.map((g) => g.late));
  const shed = late > 1 ? Math.min(p.latencyCutMost, 1 - 1 / late) : 0;
  const deficit = Math.max(rateDeficit, shed * totalExcess);
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
function* probeUp(t: PoolTick, vols: readonly VolumeRates[], anyActive: boolean, step: boolean): Generator<void> {
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
      if (!step) continue;
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

/** One guarantee of a volume in force this tick: a direction's rate, or its latency target. */
interface Kept {
  direction: Direction;
  guarantee: 'rate' | 'latency';
  delivered: number;
}
const NOTHING_KEPT: Kept[] = [];
const rateKeptAtZero = (dirs: Direction[]): Kept[] => [...new Set(dirs)].map((direction) => ({ direction, guarantee: 'rate', delivered: 0 }));

/** How a volume's guarantee stood on its last active tick: carried over a tick that brings no news. */
export interface Standing {
  best: number;
  late: number;
  kept: Kept[];
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
  /** The worst of its targeted directions held to their target: latency over target (0: none measured, or beyond its promise). */
  late: number;
  /** Its cost at its aim: every active guaranteed direction at (1 + cutMargin) of its minimum; 0 for a best-effort or idle volume. */
  need: number;
  /** What its IO in those directions costs now. */
  guaranteedCost: number;
  /** Each of its guarantees in force this tick, and the part of it delivered. */
  kept: Kept[];
  /** Per active guaranteed direction: by how much its rates must scale to be at its aim. */
  aimScale: Partial<Record<Direction, number>>;
}

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

/**
 * A targeted volume's mean completion latency per direction over its window (this tick, and as
 * many before it as it takes to count latencyWindowIos IOs, up to latencyWindowTicks in all, since
 * its pool's last cut); undefined for a volume without a target, or idle.
 */
function windowedLatency(v: VolumeRates, p: LawParams, windows: Map<string, Completed[]>): Partial<Record<Direction, number>> | undefined {
  if (!v.latencyTarget) return undefined;
  const done = v.completed ?? {};
  if (!done.read && !done.write && !v.inFlight) {
    windows.delete(v.volume); // idle: its next IO starts a window of its own
    return undefined;
  }
  const window = windows.get(v.volume) ?? [];
  window.push(done);
  if (window.length > p.latencyWindowTicks) window.shift();
  windows.set(v.volume, window);
  const out: Partial<Record<Direction, number>> = {};
  for (const [dir] of DIRECTIONS) {
    const target = v.latencyTarget[dir];
    if (target === undefined) continue;
    // The newest ticks first, until enough IOs for the kernel's milliseconds to resolve the mean,
    // or until even the least the mean can be (each reading truncates the summed time to a whole
    // millisecond: two readings are less than one apart) is over the target: a victim that
    // starts behind a deep queue is late from its first IOs, and waiting for 100 of them at tens
    // of milliseconds each left it there for a second.
    let ios = 0;
    let seconds = 0;
    for (let i = window.length - 1; i >= 0; i--) {
      ios += window[i]![dir]?.ios ?? 0;
      seconds += window[i]![dir]?.seconds ?? 0;
      if (ios === 0) continue;
      if ((seconds - KERNEL_TIME_RESOLUTION_S) / ios > target) break; // late, whatever the milliseconds hide
      if (ios >= p.latencyWindowIos) break;
    }
    if (ios > 0) out[dir] = seconds / ios;
  }
  return out;
}

/** How finely diskstats gives IO time: whole milliseconds. */
const KERNEL_TIME_RESOLUTION_S = 0.001;

function guaranteeView(v: VolumeRates, cost: number, model: DeviceCost, priced: (min: Figures) => number, p: LawParams, standing: Map<string, Standing>, latency: Partial<Record<Direction, number>> | undefined): GuaranteeView {
  // Most volumes of a large node: no guarantee, or one that is idle.
  const { min } = v;
  if (!min.readIops && !min.readBps && !min.writeIops && !min.writeBps) return { v, cost, guaranteed: false, active: false, waiting: false, best: 0, late: 0, need: 0, guaranteedCost: 0, aimScale: NO_AIM, kept: NOTHING_KEPT };
  const { rate } = v;
  const nothingDone = !rate.readIops && !rate.readBps && !rate.writeIops && !rate.writeBps;
  if (nothingDone && !v.inFlight && !standing.has(v.volume)) return { v, cost, guaranteed: true, active: false, waiting: false, best: 0, late: 0, need: 0, guaranteedCost: 0, aimScale: NO_AIM, kept: NOTHING_KEPT };
  const waiting = (v.queue ?? 0) >= p.queuedAbove || (nothingDone && (v.inFlight ?? 0) >= 1);
  let guaranteed = false;
  let best = Infinity;
  let late = 0;
  const kept: Kept[] = [];
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
    const target = v.latencyTarget?.[dir];
    const measured = latency?.[dir];
    kept.push({ direction: dir, guarantee: 'rate', delivered: r });
    if (target !== undefined && measured !== undefined && r <= p.latencyRateBound) {
      late = Math.max(late, measured / target);
      kept.push({ direction: dir, guarantee: 'latency', delivered: measured > 0 ? target / measured : Infinity });
    }
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
    standing.set(v.volume, { best, late, kept, need, guaranteedCost, aimScale });
    return { v, cost, guaranteed, active: true, waiting, best, late, need, guaranteedCost, aimScale, kept };
  }
  // Starved so far that no IO completed this tick, with IOs still in flight (measured in the VM:
  // a 4k reader at 7 IOPS behind a 128k streamer completes nothing in many 250 ms ticks): no news,
  // so it stands as it stood last tick and wants more. Taking it for idle dropped every cut.
  if (guaranteed && last && nothingDone && (v.inFlight ?? 0) >= 1) {
    // for its attainment, a tick in which nothing it waits for completes delivers none of its rate
    return { v, cost, guaranteed, active: true, waiting: true, ...last, kept: rateKeptAtZero(last.kept.map((k) => k.direction)) };
  }
  // Starved from its first IO: IO in flight all tick and none completed (measured in the VM: a
  // 4k reader starting behind a 128k streamer waited 500 ms for its first completion). It needs
  // its guarantee priced at the corners; there is no mix of its own to scale yet.
  if (guaranteed && nothingDone && (v.inFlight ?? 0) >= 1 && (v.busy ?? 0) >= STUCK_BUSY) {
    const dirs = DIRECTIONS.filter(([, iops, bps]) => (v.min[iops] ?? 0) > 0 || (v.min[bps] ?? 0) > 0).map(([dir]) => dir);
    return { v, cost, guaranteed, active: true, waiting: true, best: 0, late: 0, need: priced(v.min) * (1 + p.cutMargin), guaranteedCost: 0, aimScale: NO_AIM, kept: rateKeptAtZero(dirs) };
  }
  standing.delete(v.volume);
  return { v, cost, guaranteed, active: false, waiting, best: 0, late: 0, need: 0, guaranteedCost: 0, aimScale: NO_AIM, kept: NOTHING_KEPT };
}
