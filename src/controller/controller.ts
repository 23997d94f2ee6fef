// The work-conserving controller: every interval it measures each attached volume's IO (the
// pod cgroups' cumulative stats, as the metrics do), runs the control law (law.ts) per pool, and
// rewrites the cgroup rules of the volumes whose controller limit changed. It only ever tightens
// a volume between its own guarantee and its configured max, so switching it off (config
// `controller.enabled: false`) leaves exactly the static limits. Its state is in memory: a
// restart starts from the configured limits and converges again.
import type { Logger } from 'pino';
import type { Store } from '../store/store';
import type { Volume } from '../store/volumes';
import type { Enforcer } from '../service/enforcer';
import type { Metrics } from '../metrics/registry';
import type { PoolService } from '../service/pools';
import { limitsOf, type Dimension, type Figures } from '../service/qos-spec';
import type { LimitPolicy } from '../service/limit-policy';
import { readPodIo } from '../metrics/collect';
import { timeInQueueMs } from '../host/disk-queue';
import { DEFAULT_LAW, lawStep, newLawMemory, type LawParams, type Limits, type VolumeRates } from './law';

/** The limit policy with the controller in it: the configured max, tightened by the controller. */
export class ControlledLimits implements LimitPolicy {
  limits: Limits = new Map();

  limitsFor(volume: Volume): Figures {
    const out = limitsOf(volume.qos);
    const c = this.limits.get(volume.name);
    if (!c) return out;
    for (const [d, v] of Object.entries(c) as [Dimension, number][]) out[d] = Math.min(out[d] ?? Infinity, v);
    return out;
  }

  /** The controller's own limit for a volume (empty: not tightened). */
  controlled(volume: string): Figures {
    return { ...this.limits.get(volume) };
  }
}

interface Counters {
  at: bigint;
  readIops: number;
  writeIops: number;
  readBps: number;
  writeBps: number;
  /** The volume's device's time_in_queue (ms), when readable. */
  timeInQueue: number | undefined;
}

export class Controller {
  private last = new Map<string, Counters>();
  private readonly memory = newLawMemory();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly o: {
      store: Store;
      enforcer: Enforcer;
      pools: PoolService;
      policy: ControlledLimits;
      metrics: Metrics;
      log: Logger;
      intervalMs: number;
      law?: LawParams;
    },
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      try {
        this.tick();
      } catch (err) {
        this.o.log.error({ err: (err as Error).message }, 'controller tick failed');
      }
    }, this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One control step: measure, decide, write. Exposed for tests. */
  tick(): void {
    const { store, policy } = this.o;
    const now = process.hrtime.bigint();
    const volumes = new Map(store.volumes.list().map((v) => [v.name, v]));
    const counters = new Map<string, Counters>();
    for (const a of store.attachments.list()) {
      if (a.state !== 'attached' || !a.podCgroup || !a.cgroupVersion) continue;
      const v = volumes.get(a.volume);
      if (!v?.deviceNumber) continue;
      const io = readPodIo(a.cgroupVersion, a.podCgroup, v.deviceNumber);
      if (!io) continue;
      const c = counters.get(v.name) ?? { at: now, readIops: 0, writeIops: 0, readBps: 0, writeBps: 0, timeInQueue: timeInQueueMs(v.deviceNumber) };
      c.readIops += io.readOps;
      c.writeIops += io.writeOps;
      c.readBps += io.readBytes;
      c.writeBps += io.writeBytes;
      counters.set(v.name, c);
    }
    const samples: VolumeRates[] = [];
    for (const [name, c] of counters) {
      const prev = this.last.get(name);
      const v = volumes.get(name)!;
      if (!prev) continue;
      const secs = Number(c.at - prev.at) / 1e9;
      if (secs <= 0) continue;
      const rate: Figures = {};
      for (const d of ['readIops', 'writeIops', 'readBps', 'writeBps'] as const) rate[d] = Math.max(0, (c[d] - prev[d]) / secs);
      const queue = c.timeInQueue !== undefined && prev.timeInQueue !== undefined ? Math.max(0, c.timeInQueue - prev.timeInQueue) / 1000 / secs : undefined;
      samples.push({ volume: name, pool: v.pool, min: v.qos.min, max: v.qos.max, rate, queue });
    }
    this.last = counters;
    // Volumes no longer attached keep no controller limit.
    for (const name of policy.limits.keys()) if (!counters.has(name)) policy.limits.delete(name);

    const capacity = new Map(this.o.pools.list({ space: false }).map((p) => [p.name, p.capacity]));
    const { limits, adjustments } = lawStep(samples, policy.limits, capacity, this.o.law ?? DEFAULT_LAW, this.memory);
    if (adjustments.length === 0) return;
    policy.limits = limits;
    const changed = new Set(adjustments.map((a) => a.volume));
    for (const a of adjustments) {
      this.o.metrics.controllerAdjustments.inc({ direction: a.to === undefined || (a.from !== undefined && a.to > a.from) ? 'up' : 'down' });
    }
    for (const att of store.attachments.list()) {
      if (att.state !== 'attached' || !changed.has(att.volume)) continue;
      const v = volumes.get(att.volume);
      if (v) this.o.enforcer.apply(att, v, 'controller');
    }
    this.o.log.debug({ adjustments }, 'controller adjusted limits');
  }
}
