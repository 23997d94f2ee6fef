// Admission: a guarantee is promised only while the pool can still deliver it. A pool is one
// device, and every guarantee takes a share of its time (model/device-cost.ts: minReadIops m
// takes m/readIops of it, minWriteBps b takes b/writeBps, and so on); the shares of all the
// pool's guarantees, whatever their direction and size, stay within 1 − headroom. Callers run
// admit() inside the same SQLite transaction that records the new guarantee, so two requests can
// never both take the last of the device.
import type { Calibration } from '../store/calibrations';
import type { Store } from '../store/store';
import type { PoolConfig } from '../config/config';
import { BYTE_DIMENSIONS, DIMENSIONS, DIRECTIONS, type Dimension, type Figures, type LatencyTargets } from '../model/qos';
import { latencyCeiling, strictestOf, tightened } from '../model/latency-headroom';
import { formatDuration } from '../util/duration';
import { optionName } from './volume-options';
import { shareOf } from '../model/device-cost';
import { QosdError } from '../model/errors';
import { formatBytes } from '../util/quantity';
import { percent } from '../util/percent';

export interface PoolCapacity {
  figures: Figures;
  /** Where each figure came from. A calibration, once run, wins over the config file. */
  source: Partial<Record<Dimension, 'config' | 'calibration'>>;
  calibration: Calibration | undefined;
}

export function poolCapacity(pool: PoolConfig, calibration: Calibration | undefined): PoolCapacity {
  const figures: Figures = {};
  const source: PoolCapacity['source'] = {};
  for (const d of DIMENSIONS) {
    const measured = calibration?.figures[d];
    if (measured !== undefined) {
      figures[d] = measured;
      source[d] = 'calibration';
    } else if (pool.capacity[d] !== undefined) {
      figures[d] = pool.capacity[d];
      source[d] = 'config';
    }
  }
  return { figures, source, calibration };
}

/** The most a pool may promise in one dimension: capacity less headroom. */
export function admissible(capacity: number, headroom: number): number {
  return Math.floor(capacity * (1 - headroom));
}

export interface AdmissionRequest {
  pool: PoolConfig;
  /** The volume being created or changed: its current reservation is not counted against it. */
  volume: string;
  /** Its guarantees now (empty for a new volume) and as asked. */
  before: Figures;
  after: Figures;
  /** Its latency targets now and as asked (latency-headroom.ts: a target lowers what the pool may promise). */
  latencyBefore?: LatencyTargets;
  latencyAfter?: LatencyTargets;
}

/** What an admitted guarantee found: the share its pool may promise, what was left of it, and what it takes. */
export interface AdmissionRoom {
  promisable: number;
  left: number;
  need: number;
}

/**
 * Throws ResourceExhausted, naming the pool, what the guarantee needs of the device (in all and
 * per figure) and what is left, when a raised guarantee does not fit the pool's one budget.
 * Lowering or keeping a guarantee is always allowed (even in a pool a new calibration found
 * smaller, or one whose volumes hold more than its budget: `qosctl doctor` says so). Call inside the recording transaction.
 * Returns the room it was admitted into, or undefined when nothing was raised (nothing to admit).
 */
export function admit(store: Store, headroom: number, req: AdmissionRequest): AdmissionRoom | undefined {
  const raised = DIMENSIONS.filter((d) => (req.after[d] ?? 0) > (req.before[d] ?? 0));
  const stricter = tightened(req.latencyBefore, req.latencyAfter);
  if (raised.length === 0 && !stricter) return undefined;
  checkTargets(req.pool, req.latencyAfter);
  const cap = poolCapacity(req.pool, store.calibrations.latestDone().get(req.pool.name));
  for (const d of raised) {
    if (cap.figures[d] === undefined) {
      throw new QosdError(
        'ResourceExhausted',
        `pool ${req.pool.name} has no ${d} capacity figure, so it admits no ${d} guarantee (set pools[].capacity.${d} in the config or run: qosctl calibrate ${req.pool.name})`,
      );
    }
  }
  const ceiling = latencyCeiling(req.pool.unloadedLatency ?? {}, strictestOf(store.volumes.strictestTargets(req.pool.name, req.volume), req.latencyAfter));
  const promisable = Math.min(1 - headroom, ceiling?.share ?? 1);
  const held = promisedShare(cap.figures, store.volumes.poolTotals().get(req.pool.name)?.guaranteed) - shareOf(cap.figures, req.before).total;
  const need = shareOf(cap.figures, req.after);
  const left = Math.max(0, promisable - held);
  if (!fits(need.total, left)) {
    const parts = need.parts.map((p) => `${optionName(`min.${p.dimension}`)} ${BYTE_DIMENSIONS.has(p.dimension) ? formatBytes(p.figure) : p.figure} = ${percent(p.share)}`).join(', ');
    const why = ceiling && ceiling.share < 1 - headroom
      ? ` (a ${ceiling.direction} latency target of ${formatDuration(ceiling.target)} on a device that takes ${formatDuration(ceiling.unloaded)} for one IO alone leaves ${percent(ceiling.share)} to promise)`
      : '';
    throw new QosdError(
      'ResourceExhausted',
      `pool ${req.pool.name}: this guarantee needs ${apart(need.total, left)} of the device (${parts}); ${apart(left, need.total)} of the ${percent(promisable)} promisable is left${why}`,
    );
  }
  return { promisable, left, need: need.total };
}

/**
 * A latency target is admitted only on a pool that knows its device's own latency for one IO, and
 * only above it: a target the device cannot meet even alone is refused, not promised.
 */
function checkTargets(pool: PoolConfig, targets: LatencyTargets | undefined): void {
  for (const dir of DIRECTIONS) {
    const t = targets?.[dir];
    if (t === undefined) continue;
    const s = pool.unloadedLatency?.[dir];
    if (s === undefined) {
      throw new QosdError(
        'ResourceExhausted',
        `pool ${pool.name} has no unloadedLatency.${dir} figure, so it admits no ${dir} latency target (set pools[].unloadedLatency.${dir}: the device's latency for one 4 KiB IO at queue depth 1)`,
      );
    }
    if (t <= s) {
      throw new QosdError('ResourceExhausted', `pool ${pool.name}: a ${dir} latency target of ${formatDuration(t)} is not above the ${formatDuration(s)} the device takes for one IO alone`);
    }
  }
}

/** Admission's one test: a need fits what is left (a rounding's worth of slack, never more). */
function fits(need: number, left: number): boolean {
  return need <= left + 1e-9;
}

/**
 * The largest guarantee of one dimension alone that `left` (a share of the device) still admits,
 * for a corner figure `capacity`: by the same test as admit, so the two never disagree.
 */
export function largestAdmissible(left: number, capacity: number): number {
  let m = Math.floor((left + 1e-9) * capacity);
  while (m > 0 && !fits(m / capacity, left)) m--;
  return m;
}

/** The share of the device a pool's guarantees take together (their per-dimension sums priced at the corners). */
export function promisedShare(capacity: Figures, guaranteed: Figures | undefined): number {
  return guaranteed ? shareOf(capacity, guaranteed).total : 0;
}

/** `share` as a percentage with as many decimals as it takes to tell it from `other` (90.1% vs 90%). */
function apart(share: number, other: number): string {
  for (let digits = 0; digits < 3; digits++) {
    const f = 10 ** digits;
    if (Math.round(share * 100 * f) !== Math.round(other * 100 * f)) return digits === 0 ? percent(share) : `${Math.round(share * 100 * f) / f}%`;
  }
  return `${Math.round(share * 100_000) / 1000}%`;
}
