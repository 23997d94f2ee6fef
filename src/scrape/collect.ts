// Gathers what a scrape shows. Kernel stats are read with one small read per file, in chunks that
// yield to the event loop, so a scrape with a thousand attached volumes never holds an API
// request up for long. IO counters are the kernel's cumulative cgroup stats for the volume's
// device in the pod cgroup (blkio face, host/blkio.ts), so they survive a daemon restart.
import * as fs from 'node:fs';
import type { Store } from '../store/store';
import type { Volume } from '../store/volumes';
import type { PoolService, PoolView } from '../service/pools';
import type { Blkio } from '../host/blkio';
import type { AttainmentEntry } from '../model/attainment';
import type { HostRoot } from '../host/host-root';
import { readDiskstatsInPieces, type DiskCounters } from '../host/diskstats';
import type { Metrics } from '../metrics/registry';
import type { Figures } from '../model/qos';
import { familyPieces, type DeviceIoSample, type IoSample, type VolumeSample } from '../metrics/volume-families';
import type { Attachment } from '../store/attachments';
import { StoreView } from '../store/view';
import { TimeSlice } from '../util/time-slice';


/** What a scrape reads of the store and the kernel: the pools' figures, how many attachments there are, and the per-volume families' encoded pieces. */
export interface ScrapeReading {
  pools: PoolView[];
  attached: number;
  /** How long reading the store and the kernel took. */
  seconds: number;
  pieces: Iterable<Buffer> | AsyncIterable<Buffer>;
}

export interface SampleSource {
  store: Store;
  pools: Pick<PoolService, 'list'>;
  blkio: Blkio;
  /** Where the attached volumes' device counters are read (diskstats). */
  root: HostRoot;
  /** The limits written now for a volume (default its max). */
  limitsFor?: (v: Volume) => Figures;
  /** The store as periodic jobs read it (shared with the reconcile pass and the controller). */
  view?: StoreView;
  /** A volume's share of its device at the controller's last look (undefined: not measured). */
  deviceShare?: (v: Volume) => number | undefined;
  /** How a volume's guarantees fared (the controller's attainment book; none without a controller). */
  attainment?: (volume: string) => readonly AttainmentEntry[];
}

const NO_ATTAINMENT: readonly AttainmentEntry[] = [];

/** Every volume's figures, read from the store and the kernel. */
export async function sampleVolumes(src: SampleSource, slice: TimeSlice): Promise<{ attached: number; samples: VolumeSample[] }> {
  const { blkio } = src;
  const limitsFor = src.limitsFor ?? ((v: Volume) => v.qos.max);
  const deviceShare = src.deviceShare ?? (() => undefined);
  const attainment = src.attainment ?? (() => NO_ATTAINMENT);
  const snapshot = await (src.view ?? new StoreView(src.store)).read(slice);
  const attached = snapshot.attachments.filter((a) => a.state === 'attached');
  const byVolume = new Map<string, Attachment[]>();
  for (const a of attached) {
    const list = byVolume.get(a.volume);
    if (list) list.push(a);
    else byVolume.set(a.volume, [a]);
  }
  if (slice.due()) await slice.yield();
  const disks = await attachedDevices(src.root, snapshot.volumes, byVolume, slice);

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
      if (!v.deviceNumber || !a.podCgroup) continue;
      const counts = blkio.podIo(a.podCgroup, v.deviceNumber);
      if (counts) io.push({ podUid: a.podUid ?? '', ...counts });
    }
    samples.push({ name: v.name, pool: v.pool, min: v.qos.min, max: v.qos.max, effective: limitsFor(v), sizeBytes: v.sizeBytes, allocatedBytes, fsUsedBytes, deviceShare: deviceShare(v), latencyTarget: v.qos.latency, attainment: attainment(v.name), io, device: atts.length > 0 && v.deviceNumber ? deviceIo(v.deviceNumber, disks.get(v.deviceNumber)) : undefined });
  }
  return { attached: attached.length, samples };
}

/** The counters of every attached volume's device, from one diskstats read. */
async function attachedDevices(root: HostRoot, volumes: ReadonlyMap<string, Volume>, attached: ReadonlyMap<string, Attachment[]>, slice: TimeSlice): Promise<Map<string, DiskCounters>> {
  const devices = new Set<string>();
  for (const name of attached.keys()) {
    const dev = volumes.get(name)?.deviceNumber;
    if (dev) devices.add(dev);
  }
  if (devices.size === 0) return new Map();
  return readDiskstatsInPieces(root, () => slice.check(), devices);
}

function deviceIo(device: string, d: DiskCounters | undefined): DeviceIoSample | undefined {
  return d && { device, readOps: d.readIos, writeOps: d.writeIos, readSeconds: d.readTimeMs / 1000, writeSeconds: d.writeTimeMs / 1000 };
}

/** A scrape's reading done in this thread (the daemon's is done in the periodic jobs' worker). */
export function readHere(src: SampleSource): (slice: TimeSlice) => Promise<ScrapeReading> {
  return async (slice) => {
    const started = process.hrtime.bigint();
    const { attached, samples } = await sampleVolumes(src, slice);
    if (slice.due()) await slice.yield();
    // a GROUP BY over every volume per pool: 10,000 rows are milliseconds
    const pools = src.pools.list();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { pools, attached, seconds, pieces: familyPieces(samples, slice) };
  };
}

export class MetricsCollector {
  constructor(
    private readonly m: Metrics,
    /** The reading: done here (readHere), or by the periodic jobs' worker. */
    private readonly read: (slice: TimeSlice) => Promise<ScrapeReading>,
  ) {}

  /** A whole scrape: the pools' and the volumes' figures, then the exposition text, in pieces to write one after another. */
  async scrape(slice: TimeSlice = new TimeSlice()): Promise<Buffer[]> {
    const reading = await this.read(slice);
    const head = await this.head(reading, slice);
    for await (const p of reading.pieces) head.push(p);
    return head;
  }

  /**
   * The registry's part of a scrape whose reading was done elsewhere (the periodic jobs' worker,
   * which serves the metrics listener and sends the per-volume families itself): the pools'
   * gauges and the attachment count set from the reading, then the registry rendered.
   */
  async head(reading: Pick<ScrapeReading, 'pools' | 'attached' | 'seconds'>, slice: TimeSlice = new TimeSlice()): Promise<Buffer[]> {
    const m = this.m;
    m.attachments.set(reading.attached);
    m.volumes.reset();
    for (const p of reading.pools) {
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
    m.scrapeDuration.set(reading.seconds);
    return m.pieces(() => none(), () => slice.yield());
  }
}

async function* none(): AsyncIterable<Buffer> {}

