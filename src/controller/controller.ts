// The work-conserving controller: every interval it measures each attached volume's IO (its own
// device's counters, every device from one read of /proc/diskstats), runs the control law
// (law.ts) per pool, and rewrites the cgroup rules of the volumes whose controller limit changed.
// It only ever tightens a volume between its own guarantee and its configured max, so switching
// it off (config `controller.enabled: false`) leaves exactly the static limits. Its state is in
// memory: a restart starts from the configured limits and converges again.
import type { Logger } from 'pino';
import type { Store } from '../store/store';
import type { Volume } from '../store/volumes';
import type { Attachment } from '../store/attachments';
import type { Enforcer } from '../service/enforcer';
import type { Metrics } from '../metrics/registry';
import type { PoolService } from '../service/pools';
import { limitsOf, type Dimension, type Figures } from '../service/qos-spec';
import type { LimitPolicy } from '../service/limit-policy';
import { readDiskstats, type DiskCounters } from '../host/diskstats';
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
      /** Every device's counters (tests give fixtures). */
      readDisks?: () => Map<string, DiskCounters>;
    },
  ) {}

  private view: { generation: number; attached: Attachment[]; volumes: Map<string, Volume> } | undefined;

  /**
   * The attached volumes, read again only when the store has changed since the last tick: four
   * times a second, one lookup per attached volume is most of a tick on a large node.
   */
  private attachedVolumes(): { attached: Attachment[]; volumes: Map<string, Volume> } {
    const { store } = this.o;
    const generation = store.generation();
    if (this.view?.generation === generation) return this.view;
    const attached = store.attachments.list().filter((a) => a.state === 'attached' && a.podCgroup && a.cgroupVersion);
    const volumes = new Map<string, Volume>();
    for (const a of attached) {
      if (volumes.has(a.volume)) continue;
      const v = store.volumes.get(a.volume);
      if (v) volumes.set(v.name, v);
    }
    this.view = { generation, attached, volumes };
    return this.view;
  }

  private readDisks(): Map<string, DiskCounters> {
    return (this.o.readDisks ?? readDiskstats)();
  }

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
    const { policy } = this.o;
    const now = process.hrtime.bigint();
    const { attached, volumes } = this.attachedVolumes();
    // No guarantee attached and nothing tightened: there is nothing to measure or decide.
    const guaranteed = (v: Volume) => Object.values(v.qos.min).some((m) => m !== undefined && m > 0);
    if (policy.limits.size === 0 && ![...volumes.values()].some(guaranteed)) {
      this.last.clear();
      return;
    }
    // Each volume has a device of its own, so the device's counters are the volume's IO, from
    // every pod that mounts it, whether or not the pod's cgroup counts the device (cgroup v1
    // lists a device in a cgroup's stats only once a rule was set for it).
    const disks = this.readDisks();
    const counters = new Map<string, Counters>();
    for (const v of volumes.values()) {
      const d = v.deviceNumber ? disks.get(v.deviceNumber) : undefined;
      if (!d) continue;
      counters.set(v.name, { at: now, readIops: d.readIos, writeIops: d.writeIos, readBps: d.readBytes, writeBps: d.writeBytes, timeInQueue: d.timeInQueueMs });
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

    const { limits, adjustments } = lawStep(samples, policy.limits, this.o.pools.capacities(), this.o.law ?? DEFAULT_LAW, this.memory);
    if (adjustments.length === 0) return;
    policy.limits = limits;
    const changed = new Set(adjustments.map((a) => a.volume));
    for (const a of adjustments) {
      this.o.metrics.controllerAdjustments.inc({ direction: a.to === undefined || (a.from !== undefined && a.to > a.from) ? 'up' : 'down' });
    }
    for (const att of attached) {
      if (!changed.has(att.volume)) continue;
      const v = volumes.get(att.volume);
      if (v) this.o.enforcer.apply(att, v, 'controller');
    }
    this.o.log.debug({ adjustments }, 'controller adjusted limits');
  }
}
