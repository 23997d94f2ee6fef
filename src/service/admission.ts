// Admission: a guarantee is promised only while the pool can still deliver it. Per dimension, the
// sum of the guarantees in a pool stays within capacity × (1 − headroom). Callers run admit()
// inside the same SQLite transaction that records the new guarantee, so two requests can never
// both take the last of the capacity.
import type { Calibration } from '../store/calibrations';
import type { Store } from '../store/store';
import type { PoolConfig } from '../config/config';
import { DIMENSIONS, type Dimension, type Figures } from '../model/qos';
import { QosdError } from '../model/errors';

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
}

/**
 * Throws ResourceExhausted naming the pool, the dimension, what was asked and what is left, for
 * the first raised guarantee that does not fit. Lowering or keeping a guarantee is always allowed
 * (even in a pool a new calibration found smaller). Call inside the recording transaction.
 */
export function admit(store: Store, headroom: number, req: AdmissionRequest): void {
  const cap = poolCapacity(req.pool, store.calibrations.latestDone().get(req.pool.name));
  const totals = store.volumes.poolTotals().get(req.pool.name);
  for (const d of DIMENSIONS) {
    const want = req.after[d] ?? 0;
    if (want <= (req.before[d] ?? 0)) continue;
    const capacity = cap.figures[d];
    if (capacity === undefined) {
      throw new QosdError(
        'ResourceExhausted',
        `pool ${req.pool.name} has no ${d} capacity figure, so it admits no ${d} guarantee (set pools[].capacity.${d} in the config or run: qosctl calibrate ${req.pool.name})`,
      );
    }
    const limit = admissible(capacity, headroom);
    const othersHold = (totals?.guaranteed[d] ?? 0) - (req.before[d] ?? 0);
    const available = Math.max(0, limit - othersHold);
    if (want > available) {
      throw new QosdError(
        'ResourceExhausted',
        `pool ${req.pool.name}: ${d} guarantee ${want} exceeds the ${available} still available of ${limit} (capacity ${capacity} less ${Math.round(headroom * 100)}% headroom)`,
      );
    }
  }
}
