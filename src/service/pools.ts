// The pools view: per pool, what it can deliver (capacity, from config or a calibration), what
// is promised (the sum of guarantees, and the share of the device they take together), what can
// still be promised, and its space.
import * as fs from 'node:fs';
import type { Config, PoolConfig } from '../config/config';
import type { Store } from '../store/store';
import { DIMENSIONS, type Figures } from '../model/qos';
import type { MixCheck } from '../model/device-cost';
import { admissible, poolCapacity, promisedShare } from './admission';
import { QosdError, notFound } from '../model/errors';
import type { VolumePool } from '../pools/pool';
import { LvmPool } from '../pools/lvm';
import { now } from '../store/store';
import type { Source } from '../store/attachments';

export interface PoolView {
  name: string;
  backend: string;
  path: string | null;
  headroom: number;
  capacity: Figures;
  capacitySource: Partial<Record<keyof Figures, 'config' | 'calibration'>>;
  calibration: { method: string; startedAt: string; finishedAt: string | null; figures: Figures; mixes: MixCheck[] } | null;
  admissible: Figures;
  guaranteed: Figures;
  /** Per dimension, the most a new guarantee of that figure alone could still get (the budget left, at that corner). */
  available: Figures;
  /** The one budget: the share of the device the guarantees take, the share that may be promised (1 − headroom), and what is left. */
  share: { promised: number; promisable: number; available: number };
  volumes: number;
  provisionedBytes: number;
  allocatedBytes: number;
  freeBytes: number | null;
}

function allocatedBytes(files: (string | null)[]): number {
  let total = 0;
  for (const f of files) {
    if (!f) continue;
    try {
      total += fs.statSync(f).blocks * 512;
    } catch {
      /* gone: counts as nothing */
    }
  }
  return total;
}

export class PoolService {
  constructor(
    private readonly store: Store,
    private readonly config: Pick<Config, 'pools' | 'headroom'>,
    private readonly pools: Map<string, VolumePool> = new Map(),
  ) {}

  /**
   * Builds an lvm pool's volume group on its devices (the config's, or `devices`). Refuses a
   * device with any signature unless `force`, and one in use always; an existing VG is success.
   */
  async initialize(name: string, devices: string[] | undefined, force: boolean, source: Source): Promise<PoolView> {
    const cfg = this.poolConfig(name);
    const pool = this.pools.get(name);
    if (cfg.backend !== 'lvm' || !(pool instanceof LvmPool)) {
      throw new QosdError('InvalidArgument', `pool ${name} is a ${cfg.backend} pool; only lvm pools are initialized`);
    }
    const use = devices ?? cfg.devices;
    const vg = await pool.initialize(use, force);
    this.store.events.add({ time: now(), volume: null, kind: 'pool-initialized', source, detail: { pool: name, volumeGroup: vg.name, devices: use, force, sizeBytes: vg.sizeBytes } });
    return this.get(name);
  }

  poolConfig(name: string): PoolConfig {
    const p = this.config.pools.find((x) => x.name === name);
    if (!p) throw notFound(`pool ${name} not found (have: ${this.config.pools.map((x) => x.name).join(', ')})`);
    return p;
  }

  /** Every pool; `space: false` skips the per-volume file stats (the metrics scrape has them). */
  list(opts: { space?: boolean } = {}): PoolView[] {
    return this.config.pools.map((p) => this.view(p, opts.space ?? true));
  }

  /** Every pool's capacity figures (a calibration's over the config's), without the rest of the
   *  view: the controller needs only these, four times a second. */
  capacities(): Map<string, Figures> {
    const calibrations = this.store.calibrations.latestDone();
    return new Map(this.config.pools.map((p) => [p.name, poolCapacity(p, calibrations.get(p.name)).figures]));
  }

  get(name: string): PoolView {
    return this.view(this.poolConfig(name));
  }

  private view(p: PoolConfig, space = true): PoolView {
    const cal = this.store.calibrations.latestDone().get(p.name);
    const cap = poolCapacity(p, cal);
    const totals = this.store.volumes.poolTotals().get(p.name);
    const guaranteed: Figures = {};
    const adm: Figures = {};
    const available: Figures = {};
    const promised = promisedShare(cap.figures, totals?.guaranteed);
    const promisable = 1 - this.config.headroom;
    const left = Math.max(0, promisable - promised);
    for (const d of DIMENSIONS) {
      guaranteed[d] = totals?.guaranteed[d] ?? 0;
      const c = cap.figures[d];
      if (c !== undefined) {
        adm[d] = admissible(c, this.config.headroom);
        available[d] = Math.floor(left * c * (1 + 1e-9)); // 0.08 of 10000 is 800, not 799.99…
      }
    }
    const path = p.backend === 'file' ? p.path : null;
    let freeBytes: number | null = null;
    if (path && space) {
      try {
        const st = fs.statfsSync(path);
        freeBytes = st.bavail * st.bsize;
      } catch {
        freeBytes = null;
      }
    }
    const backing = space ? this.store.volumes.list().filter((v) => v.pool === p.name).map((v) => v.backing) : [];
    return {
      name: p.name,
      backend: p.backend,
      path,
      headroom: this.config.headroom,
      capacity: cap.figures,
      capacitySource: cap.source,
      calibration: cal ? { method: cal.method, startedAt: cal.startedAt, finishedAt: cal.finishedAt, figures: cal.figures, mixes: cal.mixes } : null,
      admissible: adm,
      guaranteed,
      available,
      share: { promised, promisable, available: left },
      volumes: totals?.volumes ?? 0,
      provisionedBytes: totals?.sizeBytes ?? 0,
      allocatedBytes: allocatedBytes(backing),
      freeBytes,
    };
  }
}
