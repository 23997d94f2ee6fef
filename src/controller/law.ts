// The control law of the work-conserving controller, as a pure function of one tick's measured
// rates (plus a little memory), so it can be tested against recorded samples.
//
// Per pool (the shared device) and per dimension, every tick:
//   - a volume with a guarantee m is ACTIVE when its rate r > activeAbove·m, and STARVED when it
//     is active, r < starvedBelow·m, and it wants more: either the pool's total rate is at least
//     saturatedAbove·capacity, or the volume kept at least queuedAbove IOs in flight on average
//     over the tick (its own device's time_in_queue). The second test matters because a
//     capacity figure is measured with one workload and a mix of others gets less from the same
//     drive (in the VM, where the guest's CPU bounds IO, 3000 of a calibrated 3800); a volume
//     that idles between requests (a paced reader: rate × latency ≪ 1) is never starved;
//   - if any volume is starved, the AGGRESSORS (volumes above their own guarantee, best-effort
//     ones with m = 0) are cut, each in proportion to its excess e = r − m, to the smaller of
//     r − D·e/Σe (the starved volumes' deficit D = Σ(m' − r)) and m + R·e/Σe, where R is the room
//     the active guarantees leave: capacity − Σm' over the active guaranteed volumes, and
//     m' = m·(1 + cutMargin) aims the cut a little above each guarantee, so that a capacity figure
//     a few percent optimistic, or one probe step, still leaves the victim at m. Never below
//     m or the floor, and never raised in such a tick. The tick after a cut only watches: the
//     victim's rate lags a cut by a tick while the device queue drains, and cutting again on that
//     lag would take the neighbours far below the room (measured: to the floor, with the victim
//     then well above m);
//   - a volume SHORT of its m (between starvedBelow·m and m, wanting more) for probeAfterTicks
//     ticks in a row is treated as starved: the same cut, by its shortfall. Without this the
//     victim, once a probe has taken it just under m, would sit there, above the starvation
//     threshold but below its guarantee;
//   - else, once every active guaranteed volume has had at least m for probeAfterTicks ticks in
//     a row, every controlled limit rises by probeStep·capacity per tick (additive probing: the
//     victim dips by at most one step before it is short, and the holds keep the cut/probe
//     cycle slow, so the victim's rate stays at m rather than swinging around it);
//   - else (no guarantee active on the pool) every controlled limit is dropped at once: there is
//     nothing left to protect, and the idle guarantee's share goes back to the neighbours
//     within a tick or two (work conservation). When the guarantee comes back, the first starved
//     tick cuts the neighbours to the room again;
//   - a limit that reaches the volume's configured max, or the pool's capacity, is dropped: the
//     volume is back on its configured limits.
// Limits never go below a volume's own guarantee, nor above its configured max (the policy takes
// the smaller of the two).
import { DIMENSIONS, type Dimension, type Figures } from '../model/qos';

export interface LawParams {
  starvedBelow: number;
  saturatedAbove: number;
  queuedAbove: number;
  activeAbove: number;
  probeStep: number;
  probeAfterTicks: number;
  settleTicks: number;
  cutMargin: number;
  /** The lowest limit ever written for a best-effort volume, per dimension kind. */
  floorIops: number;
  floorBps: number;
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
  floorBps: 1024 * 1024,
};

export interface VolumeRates {
  volume: string;
  pool: string;
  min: Figures;
  max: Figures;
  rate: Figures;
  /** IOs the volume had in flight on average over the tick; absent: unknown. */
  queue?: number;
}

/** Controller limits: volume → dimension → limit (absent: not controlled). */
export type Limits = Map<string, Figures>;

/**
 * What the law remembers between ticks, per pool and dimension: how many ticks in a row every
 * active guarantee has been met, and how many a wanting guarantee has been short of its minimum.
 */
export interface LawMemory {
  metTicks: Map<string, number>;
  shortTicks: Map<string, number>;
  sinceCut: Map<string, number>;
}

export const newLawMemory = (): LawMemory => ({ metTicks: new Map(), shortTicks: new Map(), sinceCut: new Map() });

export interface Adjustment {
  volume: string;
  dimension: Dimension;
  from: number | undefined;
  to: number | undefined;
}

export interface LawResult {
  limits: Limits;
  adjustments: Adjustment[];
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

/**
 * lawStep one pool and dimension at a time: it pauses (yields) after each, so a caller on the
 * event loop can give the loop back between them on a node with thousands of volumes.
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
  const set = (volume: string, d: Dimension, to: number | undefined) => {
    const f = next.get(volume) ?? {};
    const from = f[d];
    if (from === to) return;
    if (to === undefined) delete f[d];
    else f[d] = to;
    if (Object.keys(f).length) next.set(volume, f);
    else next.delete(volume);
    adjustments.push({ volume, dimension: d, from, to });
  };

  const pools = new Map<string, VolumeRates[]>();
  for (const s of samples) {
    const list = pools.get(s.pool);
    if (list) list.push(s);
    else pools.set(s.pool, [s]);
  }

  for (const [pool, vols] of pools) {
    for (const d of DIMENSIONS) {
      yield;
      const key = `${pool}/${d}`;
      const floor = d.endsWith('Iops') ? p.floorIops : p.floorBps;
      const cap = capacity.get(pool)?.[d];
      const rate = (v: VolumeRates) => v.rate[d] ?? 0;
      const min = (v: VolumeRates) => v.min[d] ?? 0;
      const guaranteed = vols.filter((v) => min(v) > 0);
      // No guarantee in this dimension and nothing controlled in it: nothing to protect or lift.
      // (Most dimensions of most pools: a database guarantees reads, say, and the rest is free.)
      if (guaranteed.length === 0 && !vols.some((v) => current.get(v.volume)?.[d] !== undefined)) {
        memory.metTicks.delete(key);
        memory.shortTicks.delete(key);
        memory.sinceCut.delete(key);
        continue;
      }
      const active = guaranteed.filter((v) => rate(v) > p.activeAbove * min(v));
      const activeMins = active.reduce((s, v) => s + min(v), 0);
      const total = vols.reduce((sum, v) => sum + rate(v), 0);
      const saturated = cap !== undefined && total >= p.saturatedAbove * cap;
      const wants = (v: VolumeRates) => saturated || (v.queue ?? 0) >= p.queuedAbove;
      const short = active.filter((v) => rate(v) < min(v) && wants(v));
      const shortTicks = short.length > 0 ? (memory.shortTicks.get(key) ?? 0) + 1 : 0;
      let starved = active.filter((v) => rate(v) < p.starvedBelow * min(v) && wants(v));
      if (starved.length === 0 && shortTicks > p.probeAfterTicks) starved = short;

      const sinceCut = (memory.sinceCut.get(key) ?? Infinity) + 1;
      memory.sinceCut.set(key, sinceCut);
      if (starved.length > 0 && sinceCut <= p.settleTicks) {
        memory.metTicks.set(key, 0);
        continue; // the last cut is still taking effect
      }
      if (starved.length > 0) {
        memory.sinceCut.set(key, 0);
        memory.metTicks.set(key, 0);
        memory.shortTicks.set(key, 0);
        const aim = (v: VolumeRates) => min(v) * (1 + p.cutMargin);
        const deficit = starved.reduce((s, v) => s + (aim(v) - rate(v)), 0);
        const victims = new Set(starved);
        const aggressors = vols.filter((v) => !victims.has(v) && rate(v) > min(v));
        const totalExcess = aggressors.reduce((s, v) => s + (rate(v) - min(v)), 0);
        const room = cap === undefined ? Infinity : Math.max(0, cap - active.reduce((s, v) => s + aim(v), 0));
        for (const a of aggressors) {
          const part = totalExcess > 0 ? (rate(a) - min(a)) / totalExcess : 0;
          const target = Math.min(rate(a) - deficit * part, min(a) + room * part);
          let to = Math.max(min(a), floor, Math.floor(target));
          const now = current.get(a.volume)?.[d];
          if (now !== undefined) to = Math.min(to, now); // never raise in a starved tick
          if (a.max[d] !== undefined) to = Math.min(to, a.max[d]!);
          set(a.volume, d, to);
        }
        continue;
      }

      memory.shortTicks.set(key, shortTicks);
      const met = active.length > 0 && active.every((v) => rate(v) >= min(v));
      const metTicks = met ? (memory.metTicks.get(key) ?? 0) + 1 : 0;
      memory.metTicks.set(key, metTicks);
      for (const v of vols) {
        const now = current.get(v.volume)?.[d];
        if (now === undefined) continue;
        if (active.length === 0) {
          set(v.volume, d, undefined);
          continue;
        }
        if (metTicks <= p.probeAfterTicks) continue;
        const raised = now + Math.max(1, Math.floor(p.probeStep * (cap ?? activeMins)));
        const ceiling = Math.min(v.max[d] ?? Infinity, cap ?? Infinity);
        set(v.volume, d, raised >= ceiling ? undefined : raised);
      }
    }
  }
  return { limits: next, adjustments };
}
