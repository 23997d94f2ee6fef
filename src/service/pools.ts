// The pools view: per pool, what it can deliver (capacity, from config or a calibration), what
// is promised (the sum of guarantees, and the share of the device they take together), what can
// still be promised, and its space.
import * as fs from 'node:fs';
import type { Config, PoolConfig } from '../config/config';
import type { Store } from '../store/store';
import { DIMENSIONS, type Figures } from '../model/qos';
import type { MixCheck } from '../model/device-cost';
import { latencyCeiling } from '../model/latency-headroom';
import { admissible, largestAdmissible, poolCapacity, promisedShare } from './admission';
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
  /** A file pool's overcommit (pools[].overcommit: how far sizes may exceed the free space); null for lvm. */
  overcommit: number | null;
}

/** The blocks the volumes' files hold, stat'ed off the daemon's thread (a pool may have thousands). */
async function allocatedBytes(files: (string | null)[]): Promise<number> {
  const sizes = await Promise.all(files.map((f) => (f ? fs.promises.stat(f).then((st) => st.blocks * 512, () => 0) : 0)));
  return sizes.reduce((a, b) => a + b, 0);
}

/** The bytes free for the pool's files (statfs off the daemon's thread), or null when unknown. */
async function freeBytesAt(dir: string): Promise<number | null> {
  try {
    const st = await fs.promises.statfs(dir);
    return st.bavail * st.bsize;
  } catch {
    return null;
  }
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
    // Only what the node's config names: the API socket must not be a way to wipe any disk.
    const unnamed = use.filter((d) => !cfg.devices.includes(d));
    if (unnamed.length > 0) {
      throw new QosdError('InvalidArgument', `devices: ${unnamed.join(', ')} ${unnamed.length > 1 ? 'are' : 'is'} not among pool ${name}'s devices in the config (pools[].devices: ${cfg.devices.join(', ') || 'none'}); qosd initializes only those`);
    }
    const vg = await pool.initialize(use, force);
    this.store.events.add({ time: now(), volume: null, kind: 'pool-initialized', source, detail: { pool: name, volumeGroup: vg.name, devices: use, force, sizeBytes: vg.sizeBytes } });
    return this.get(name);
  }

  poolConfig(name: string): PoolConfig {
    const p = this.config.pools.find((x) => x.name === name);
    if (!p) throw notFound(`pool ${name} not found (have: ${this.config.pools.map((x) => x.name).join(', ')})`);
    return p;
  }

  /**
   * Every pool without its space (freeBytes null, allocatedBytes 0): the figures, read from the
   * store alone (the metrics scrape and the status; the scrape reads the files' space itself).
   */
  list(): PoolView[] {
    return this.config.pools.map((p) => this.view(p));
  }

  /** Every pool with its space: the free bytes and each volume's allocated blocks, read off the loop. */
  async listWithSpace(): Promise<PoolView[]> {
    return Promise.all(this.config.pools.map((p) => this.withSpace(this.view(p))));
  }

  /** Every pool's capacity figures (a calibration's over the config's), without the rest of the
   *  view: the controller needs only these, four times a second. */
  capacities(): Map<string, Figures> {
    const calibrations = this.store.calibrations.latestDone();
    return new Map(this.config.pools.map((p) => [p.name, poolCapacity(p, calibrations.get(p.name)).figures]));
  }

  /** One pool with its space; NotFound for a pool the config does not name. */
  async get(name: string): Promise<PoolView> {
    return this.withSpace(this.view(this.poolConfig(name)));
  }

  private async withSpace(v: PoolView): Promise<PoolView> {
    if (v.path === null) return v;
    const backing = this.store.volumes.list().filter((x) => x.pool === v.name).map((x) => x.backing);
    const [freeBytes, allocated] = await Promise.all([freeBytesAt(v.path), allocatedBytes(backing)]);
    return { ...v, freeBytes, allocatedBytes: allocated };
  }

  private view(p: PoolConfig): PoolView {
    const cal = this.store.calibrations.latestDone().get(p.name);
    const cap = poolCapacity(p, cal);
    const totals = this.store.volumes.poolTotals().get(p.name);
    const guaranteed: Figures = {};
    const adm: Figures = {};
    const available: Figures = {};
    const promised = promisedShare(cap.figures, totals?.guaranteed);
    // The pool's latency targets lower what it may promise (model/latency-headroom.ts).
    const ceiling = latencyCeiling(p.unloadedLatency ?? {}, totals?.strictest ?? {});
    const promisable = Math.min(1 - this.config.headroom, ceiling?.share ?? 1);
    const left = Math.max(0, promisable - promised);
    for (const d of DIMENSIONS) {
      guaranteed[d] = totals?.guaranteed[d] ?? 0;
      const c = cap.figures[d];
      if (c !== undefined) {
        adm[d] = admissible(c, 1 - promisable);
        available[d] = largestAdmissible(left, c);
      }
    }
    const path = p.backend === 'file' ? p.path : null;
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
      allocatedBytes: 0,
      freeBytes: null,
      overcommit: p.backend === 'file' ? p.overcommit : null,
    };
  }
}
