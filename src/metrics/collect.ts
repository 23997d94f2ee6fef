// Fills the per-volume, per-pod and per-pool families before each scrape. Kernel stats are read
// with one small read per file, in chunks that yield to the event loop, so a scrape with a
// thousand attached volumes never holds an API request up for long. IO counters are the kernel's
// cumulative cgroup stats for the volume's device in the pod cgroup (recursive on v1, where the
// pod cgroup's own stats would miss its containers), so they survive a daemon restart.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Store } from '../store/store';
import type { PoolService } from '../service/pools';
import { readSmall } from '../host/read-small';
import { parseRwStat } from '../host/cgroup-v1';
import { parseIoStat } from '../host/cgroup-v2';
import type { Figures } from '../service/qos-spec';
import type { Metrics } from './registry';

const CHUNK = 200;
const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

interface IoCounts {
  readOps: number;
  writeOps: number;
  readBytes: number;
  writeBytes: number;
}

/** The volume's IO as the pod cgroup's stats count it, or undefined when the cgroup is gone. */
export function readPodIo(version: 'v1' | 'v2', podCgroup: string, device: string): IoCounts | undefined {
  try {
    if (version === 'v2') {
      const s = parseIoStat(readSmall(path.join(podCgroup, 'io.stat'))).get(device) ?? {};
      return { readOps: s.rios ?? 0, writeOps: s.wios ?? 0, readBytes: s.rbytes ?? 0, writeBytes: s.wbytes ?? 0 };
    }
    const ops = parseRwStat(readSmall(path.join(podCgroup, 'blkio.throttle.io_serviced_recursive'))).get(device);
    const bytes = parseRwStat(readSmall(path.join(podCgroup, 'blkio.throttle.io_service_bytes_recursive'))).get(device);
    return { readOps: ops?.read ?? 0, writeOps: ops?.write ?? 0, readBytes: bytes?.read ?? 0, writeBytes: bytes?.write ?? 0 };
  } catch {
    return undefined;
  }
}

export class MetricsCollector {
  constructor(
    private readonly m: Metrics,
    private readonly store: Store,
    private readonly pools: PoolService,
  ) {}

  async refresh(): Promise<void> {
    const started = process.hrtime.bigint();
    const m = this.m;
    const volumes = this.store.volumes.list();
    const attachments = this.store.attachments.list();
    for (const g of [m.volumes, m.volumeGuaranteedIops, m.volumeGuaranteedBps, m.volumeLimitIops, m.volumeLimitBps, m.volumeSize, m.volumeAllocated, m.volumeFsUsed]) g.reset();
    m.volumeIoOps.reset();
    m.volumeIoBytes.reset();

    const setDims = (f: Figures, iops: typeof m.volumeLimitIops, bps: typeof m.volumeLimitBps, volume: string, pool: string) => {
      if (f.readIops !== undefined) iops.set({ volume, pool, direction: 'read' }, f.readIops);
      if (f.writeIops !== undefined) iops.set({ volume, pool, direction: 'write' }, f.writeIops);
      if (f.readBps !== undefined) bps.set({ volume, pool, direction: 'read' }, f.readBps);
      if (f.writeBps !== undefined) bps.set({ volume, pool, direction: 'write' }, f.writeBps);
    };
    const mountedAt = new Map<string, string>();
    for (const a of attachments) if (a.state === 'attached' && !mountedAt.has(a.volume)) mountedAt.set(a.volume, a.target);

    for (let i = 0; i < volumes.length; i++) {
      if (i > 0 && i % CHUNK === 0) await yieldToLoop();
      const v = volumes[i]!;
      setDims(v.qos.min, m.volumeGuaranteedIops, m.volumeGuaranteedBps, v.name, v.pool);
      setDims(v.qos.max, m.volumeLimitIops, m.volumeLimitBps, v.name, v.pool);
      m.volumeSize.set({ volume: v.name, pool: v.pool }, v.sizeBytes);
      if (v.backing) {
        try {
          m.volumeAllocated.set({ volume: v.name, pool: v.pool }, fs.statSync(v.backing).blocks * 512);
        } catch {
          /* storage gone: no series */
        }
      }
      const target = mountedAt.get(v.name);
      if (target) {
        try {
          const st = fs.statfsSync(target);
          m.volumeFsUsed.set({ volume: v.name, pool: v.pool }, (st.blocks - st.bfree) * st.bsize);
        } catch {
          /* unmounted meanwhile */
        }
      }
    }

    const byName = new Map(volumes.map((v) => [v.name, v]));
    let attached = 0;
    for (let i = 0; i < attachments.length; i++) {
      if (i > 0 && i % CHUNK === 0) await yieldToLoop();
      const a = attachments[i]!;
      if (a.state !== 'attached') continue;
      attached++;
      const v = byName.get(a.volume);
      if (!v?.deviceNumber || !a.podCgroup || !a.cgroupVersion) continue;
      const io = readPodIo(a.cgroupVersion, a.podCgroup, v.deviceNumber);
      if (!io) continue;
      const labels = { volume: v.name, pool: v.pool, pod_uid: a.podUid ?? '' };
      m.volumeIoOps.inc({ ...labels, direction: 'read' }, io.readOps);
      m.volumeIoOps.inc({ ...labels, direction: 'write' }, io.writeOps);
      m.volumeIoBytes.inc({ ...labels, direction: 'read' }, io.readBytes);
      m.volumeIoBytes.inc({ ...labels, direction: 'write' }, io.writeBytes);
    }
    m.attachments.set(attached);

    for (const p of this.pools.list()) {
      m.volumes.set({ pool: p.name }, p.volumes);
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
  }
}
