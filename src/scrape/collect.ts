// Gathers what a scrape shows. Kernel stats are read with one small read per file, in chunks that
// yield to the event loop, so a scrape with a thousand attached volumes never holds an API
// request up for long. IO counters are the kernel's cumulative cgroup stats for the volume's
// device in the pod cgroup (blkio face, host/blkio.ts), so they survive a daemon restart.
import * as fs from 'node:fs';
import type { Store } from '../store/store';
import type { Volume } from '../store/volumes';
import type { PoolService } from '../service/pools';
import type { Blkio } from '../host/blkio';
import type { Metrics } from '../metrics/registry';
import type { Figures } from '../model/qos';
import { familyPieces, type IoSample, type VolumeSample } from '../metrics/volume-families';
import type { Attachment } from '../store/attachments';
import { StoreView } from '../store/view';
import { TimeSlice } from '../util/time-slice';


export class MetricsCollector {
  private samples: VolumeSample[] = [];

  constructor(
    private readonly m: Metrics,
    store: Store,
    private readonly pools: PoolService,
    private readonly blkio: Blkio | undefined,
    private readonly limitsFor: (v: Volume) => Figures = (v) => v.qos.max,
    /** The store as periodic jobs read it (shared with the reconcile pass and the controller). */
    private readonly view: StoreView = new StoreView(store),
    /** A volume's share of its device at the controller's last look (undefined: not measured). */
    private readonly deviceShare: (v: Volume) => number | undefined = () => undefined,
  ) {}

  /** Reads the store and the kernel; then `families()` renders what was read. */
  async refresh(slice: TimeSlice = new TimeSlice()): Promise<void> {
    const started = process.hrtime.bigint();
    const m = this.m;
    const snapshot = await this.view.read(slice);
    const attached = snapshot.attachments.filter((a) => a.state === 'attached');
    const byVolume = new Map<string, Attachment[]>();
    for (const a of attached) {
      const list = byVolume.get(a.volume);
      if (list) list.push(a);
      else byVolume.set(a.volume, [a]);
    }
    if (slice.due()) await slice.yield();

    const samples: VolumeSample[] = [];
    for (const v of snapshot.volumes.values()) {
      if (slice.due()) await slice.yield();
      const atts = byVolume.get(v.name) ?? [];
      let allocatedBytes: number | undefined;
      let fsUsedBytes: number | undefined;
      if (v.backing) {
        try {
          allocatedBytes = fs.statSync(v.backing).blocks * 512;
        } catch {
          /* storage gone: no series */
        }
      }
      if (atts[0]) {
        try {
          const st = fs.statfsSync(atts[0].target);
          fsUsedBytes = (st.blocks - st.bfree) * st.bsize;
        } catch {
          /* unmounted meanwhile */
        }
      }
      const io: IoSample[] = [];
      for (const a of atts) {
        if (!v.deviceNumber || !a.podCgroup || !this.blkio) continue;
        const counts = this.blkio.podIo(a.podCgroup, v.deviceNumber);
        if (counts) io.push({ podUid: a.podUid ?? '', ...counts });
      }
      samples.push({ name: v.name, pool: v.pool, min: v.qos.min, max: v.qos.max, effective: this.limitsFor(v), sizeBytes: v.sizeBytes, allocatedBytes, fsUsedBytes, deviceShare: this.deviceShare(v), io });
    }
    this.samples = samples;
    m.attachments.set(attached.length);
    if (slice.due()) await slice.yield();

    m.volumes.reset();
    for (const p of this.pools.list({ space: false })) {
      m.volumes.set({ pool: p.name }, p.volumes);
      m.poolPromisedShare.set({ pool: p.name }, p.share.promised);
      m.poolPromisableShare.set({ pool: p.name }, p.share.promisable);
      for (const [g, f] of [
        [[m.poolCapacityIops, m.poolCapacityBps], p.capacity],
        [[m.poolGuaranteedIops, m.poolGuaranteedBps], p.guaranteed],
        [[m.poolAvailableIops, m.poolAvailableBps], p.available],
      ] as const) {
        const [iops, bps] = g;
        if (f.readIops !== undefined) iops.set({ pool: p.name, direction: 'read' }, f.readIops);
        if (f.writeIops !== undefined) iops.set({ pool: p.name, direction: 'write' }, f.writeIops);
        if (f.readBps !== undefined) bps.set({ pool: p.name, direction: 'read' }, f.readBps);
        if (f.writeBps !== undefined) bps.set({ pool: p.name, direction: 'write' }, f.writeBps);
      }
    }
    m.scrapeDuration.set(Number(process.hrtime.bigint() - started) / 1e9);
    slice.end();
  }

  /** A whole scrape: refresh, then the exposition text, in pieces to write one after another. */
  async scrape(slice: TimeSlice = new TimeSlice()): Promise<Buffer[]> {
    await this.refresh(slice);
    // the per-volume families from this refresh, in encoded pieces (see familyPieces)
    return this.m.pieces(() => familyPieces(this.samples, slice), () => slice.yield());
  }
}
