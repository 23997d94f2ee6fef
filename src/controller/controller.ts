// The work-conserving controller: every interval it measures each attached volume's IO (its own
// device's counters, every device from one read of /proc/diskstats), runs the control law
// (law.ts) per pool, and rewrites the cgroup rules of the volumes whose controller limit changed.
// It only ever tightens a volume between its own guarantee and its configured max, so switching
// it off (config `controller.enabled: false`) leaves exactly the static limits. Its state is in
// memory: a restart starts from the configured limits and converges again. In the daemon it
// measures and decides in the periodic jobs' worker thread (decide), and the daemon's thread
// writes what it decided (applyTick); tests run both in one thread (tick).
import type { Logger } from 'pino';
import type { Store } from '../store/store';
import { StoreView, type StoreSnapshot } from '../store/view';
import type { Volume } from '../store/volumes';
import type { Enforcer } from '../enforce/enforcer';
import type { Metrics } from '../metrics/registry';
import type { PoolService } from '../service/pools';
import { limitsOf, type Dimension, type Figures } from '../model/qos';
import type { LimitPolicy } from '../enforce/limit-policy';
import { readDiskstatsInPieces, type DiskCounters } from '../host/diskstats';
import type { HostRoot } from '../host/host-root';
import { TimeSlice } from '../util/time-slice';
import { AttainmentBook } from './attainment';
import { DEFAULT_LAW, lawSteps, newLawMemory, type Adjustment, type Completed, type LawParams, type Limits, type VolumeRates } from './law';

/** The limit policy with the controller in it: the configured max, tightened by the controller. */
export class ControlledLimits implements LimitPolicy {
  limits: Limits = new Map();
  /** The controller's last view of the device budget: each volume's IO cost as a share of its pool's device. */
  shares = new Map<string, number>();

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

/** The attached volumes of one store snapshot, worked out once per snapshot. */
interface AttachedView {
  snapshot: StoreSnapshot;
  volumes: Map<string, Volume>;
  devices: Set<string>;
  anyGuarantee: boolean;
}

export interface ControllerOptions {
  store: Store;
  /** The store as periodic jobs read it (shared with the reconcile pass). */
  view?: StoreView;
  enforcer: Pick<Enforcer, 'apply'>;
  pools: Pick<PoolService, 'capacities'>;
  policy: ControlledLimits;
  metrics: Metrics;
  log: Logger;
  /** The interval it is ticked at (the timer is periodic/jobs.ts's). */
  intervalMs: number;
  law?: LawParams;
  /** Now, in ns (tests replay recorded ticks); default the monotonic clock. */
  clock?: () => bigint;
  /** Now, in ms since the epoch, for the attainment's minutes; default Date.now. */
  wallClock?: () => number;
  /** Where every device's counters are read (diskstats under its proc; tests give fixture trees). */
  root: HostRoot;
}

export class Controller {
  /** Each measured volume's device counters at the last tick (the parsed ones, kept as they are). */
  private last = new Map<string, DiskCounters>();
  private lastAt = 0n;
  private readonly memory = newLawMemory();
  private readonly view: StoreView;
  private attachedView: AttachedView | undefined;
  /** How each guarantee fared, tick by tick (attainment.ts). */
  readonly attainment = new AttainmentBook();

  constructor(private readonly o: ControllerOptions) {
    this.view = o.view ?? new StoreView(o.store);
  }

  /** The attached volumes, worked out again only when the store has changed since the last tick. */
  private attachedOf(snapshot: StoreSnapshot): AttachedView {
    if (this.attachedView?.snapshot === snapshot) return this.attachedView;
    const attached = snapshot.attachments.filter((a) => a.state === 'attached' && a.podCgroup && a.cgroupVersion);
    const volumes = new Map<string, Volume>();
    const devices = new Set<string>();
    let anyGuarantee = false;
    for (const a of attached) {
      const v = snapshot.volumes.get(a.volume);
      if (!v || volumes.has(v.name)) continue;
      volumes.set(v.name, v);
      if (v.deviceNumber) devices.add(v.deviceNumber);
      if (Object.values(v.qos.min).some((m) => m !== undefined && m > 0)) anyGuarantee = true;
    }
    this.attachedView = { snapshot, volumes, devices, anyGuarantee };
    return this.attachedView;
  }

  /** One control step: measure, decide, write, giving the event loop back as it goes. */
  async tick(slice: TimeSlice = new TimeSlice()): Promise<void> {
    const outcome = await this.decide(slice);
    await applyTick({ store: this.o.store, enforcer: this.o.enforcer, policy: this.o.policy, metrics: this.o.metrics, log: this.o.log }, outcome, slice);
  }

  /**
   * Measure and decide: the policy's limits and shares become the tick's, and what the daemon's
   * thread must write and count is returned (applyTick). The periodic jobs' worker runs this; the
   * daemon's thread applies it.
   */
  async decide(slice: TimeSlice): Promise<TickOutcome> {
    const { policy } = this.o;
    const snapshot = await this.view.read(slice);
    const { volumes, devices, anyGuarantee } = this.attachedOf(snapshot);
    // No guarantee attached and nothing tightened: there is nothing to measure or decide.
    if (policy.limits.size === 0 && !anyGuarantee) {
      this.last.clear();
      return { utilisations: new Map(), adjustments: [] };
    }
    // Each volume has a device of its own, so the device's counters are the volume's IO, from
    // every pod that mounts it, whether or not the pod's cgroup counts the device (cgroup v1
    // lists a device in a cgroup's stats only once a rule was set for it).
    const now = (this.o.clock ?? process.hrtime.bigint)();
    const pause = () => slice.check();
    const disks = await readDiskstatsInPieces(this.o.root, pause, devices);
    const counters = new Map<string, DiskCounters>();
    const samples: VolumeRates[] = [];
    const secs = Number(now - this.lastAt) / 1e9;
    for (const v of volumes.values()) {
      const d = v.deviceNumber ? disks.get(v.deviceNumber) : undefined;
      if (!d) continue;
      counters.set(v.name, d);
      const prev = this.last.get(v.name);
      if (!prev || secs <= 0) continue;
      const rate: Figures = {
        readIops: Math.max(0, (d.readIos - prev.readIos) / secs),
        writeIops: Math.max(0, (d.writeIos - prev.writeIos) / secs),
        readBps: Math.max(0, (d.readBytes - prev.readBytes) / secs),
        writeBps: Math.max(0, (d.writeBytes - prev.writeBytes) / secs),
      };
      const queue = Math.max(0, d.timeInQueueMs - prev.timeInQueueMs) / 1000 / secs;
      const busy = Math.max(0, d.ioTicksMs - prev.ioTicksMs) / 1000 / secs;
      const sample: VolumeRates = { volume: v.name, pool: v.pool, min: v.qos.min, max: v.qos.max, rate, queue, inFlight: d.inFlight, busy };
      if (v.qos.latency) {
        sample.latencyTarget = v.qos.latency;
        sample.completed = completedIo(prev, d);
      }
      samples.push(sample);
      if (slice.due()) await slice.yield();
    }
    this.last = counters;
    this.lastAt = now;
    // Volumes no longer attached keep no controller limit.
    let dropped = false;
    for (const name of policy.limits.keys()) {
      if (!counters.has(name)) {
        policy.limits.delete(name);
        dropped = true;
      }
    }
    if (slice.due()) await slice.yield();

    const steps = lawSteps(samples, policy.limits, this.o.pools.capacities(), this.o.law ?? DEFAULT_LAW, this.memory);
    let step = steps.next();
    for (; !step.done; step = steps.next()) if (slice.due()) await slice.yield();
    const { limits, adjustments, utilisations, shares, attained } = step.value;
    if (attained.length > 0) this.attainment.record(attained, secs, (this.o.wallClock ?? Date.now)());
    // What it saw of the volumes it protects or limits, for following a decision (benches record it).
    const trace = this.o.log.isLevelEnabled('trace')
      ? { samples: samples.filter((s) => policy.limits.has(s.volume) || limits.has(s.volume) || Object.keys(s.min).length > 0), limits: Object.fromEntries(limits) }
      : undefined;
    policy.shares = shares;
    if (adjustments.length > 0) policy.limits = limits;
    return { limits: adjustments.length > 0 || dropped ? policy.limits : undefined, utilisations, adjustments, trace };
  }
}

/**
 * The IOs a device completed between two readings and the time they took from issue to
 * completion, summed (seconds), per direction in which it completed any (the kernel counts both
 * per device, in /proc/diskstats; the time in whole milliseconds, so the law averages it over a
 * window of ticks).
 */
export function completedIo(prev: DiskCounters, now: DiskCounters): Completed {
  const out: Completed = {};
  const reads = now.readIos - prev.readIos;
  const writes = now.writeIos - prev.writeIos;
  if (reads > 0) out.read = { ios: reads, seconds: Math.max(0, now.readTimeMs - prev.readTimeMs) / 1000 };
  if (writes > 0) out.write = { ios: writes, seconds: Math.max(0, now.writeTimeMs - prev.writeTimeMs) / 1000 };
  return out;
}

/** What a tick decided, for the daemon's thread to write and count. */
export interface TickOutcome {
  /** The controller's limits after the tick, when they changed (undefined: as they were). */
  limits?: Limits;
  /** Per pool: the device time all its volumes' IO cost. */
  utilisations: Map<string, number>;
  adjustments: Adjustment[];
  /** The samples and limits of the volumes it protects or limits, when trace logging is on. */
  trace?: { samples: VolumeRates[]; limits: Record<string, Figures> };
}

export interface ApplyContext {
  store: Store;
  enforcer: Pick<Enforcer, 'apply'>;
  policy: ControlledLimits;
  metrics: Metrics;
  log: Logger;
}

/**
 * A tick's outcome made true on the node: the policy takes the new limits, and the cgroups of
 * every attachment of a volume whose limit changed are rewritten. Attachments are read from the
 * store as it is now (the tick gave the loop back, or ran in another thread, since it read it:
 * a detach may have come in between).
 */
export async function applyTick(c: ApplyContext, outcome: TickOutcome, slice: TimeSlice): Promise<void> {
  if (outcome.trace) c.log.trace(outcome.trace, 'controller tick');
  for (const [pool, u] of outcome.utilisations) c.metrics.poolUtilisation.set({ pool }, u);
  if (outcome.limits) c.policy.limits = outcome.limits;
  if (outcome.adjustments.length === 0) {
    slice.end();
    return;
  }
  const changed = new Set(outcome.adjustments.map((a) => a.volume));
  for (const a of outcome.adjustments) {
    c.metrics.controllerAdjustments.inc({ direction: a.to === undefined || (a.from !== undefined && a.to > a.from) ? 'up' : 'down' });
  }
  if (slice.due()) await slice.yield();
  for (const name of changed) {
    const v = c.store.volumes.get(name);
    for (const att of v ? c.store.attachments.list(name) : []) {
      if (att.state === 'attached' && att.podCgroup && att.cgroupVersion) c.enforcer.apply(att, v!, 'controller');
    }
    if (slice.due()) await slice.yield();
  }
  slice.end();
  c.log.debug({ adjustments: outcome.adjustments }, 'controller adjusted limits');
}
