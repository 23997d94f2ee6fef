// Turns a volume's limits into cgroup rules for the pods that mount it, and takes them away again.
// Which cgroups carry a pod's rules is the blkio face's business (host/blkio.ts): on v2 the pod
// cgroup, on v1 every cgroup in the pod's tree plus each new one as it appears (leaf-watcher.ts).
// Every directory written is recorded on the attachment, so detach clears exactly what qosd wrote.
import type { Logger } from 'pino';
import type { Blkio } from '../host/blkio';
import { isGone } from '../host/cgroupfs';
import type { CgroupDriverSetting, CgroupVersion } from '../model/cgroup';
import { QosdError } from '../model/errors';
import type { Attachment } from '../store/attachments';
import type { Volume } from '../store/volumes';
import { now, type Store } from '../store/store';
import { StoreView } from '../store/view';
import type { Metrics } from '../metrics/registry';
import { LeafWatcher } from './leaf-watcher';
import { RuleWatchLog, inotifyQueueLength, type RuleWatchBatch } from './rule-watch';
import type { HostRoot } from '../host/host-root';
import type { TimeSlice } from '../util/time-slice';
import { staticLimits, type LimitPolicy } from './limit-policy';
import type { Identify, OnMismatch } from './device-owner';
import * as fs from 'node:fs';

export interface EnforcerOptions {
  /** The node's block-IO cgroup face (one that refuses every write when the node has none). */
  blkio: Blkio;
  kubelet: { cgroupRoot: string; cgroupDriver: CgroupDriverSetting };
  /** Where the kernel's limits are read (the inotify queue the leaf watches share). */
  root: HostRoot;
  store: Store;
  log: Logger;
  metrics: Metrics;
  /** The store as periodic jobs read it (shared with the controller). */
  view?: StoreView;
  /** What to write for a volume (default: its max, statically). */
  policy?: LimitPolicy;
  /**
   * Whose a device is now (the volume's pool's identify), asked before any rule for it is written
   * or cleared; undefined: a recorded device is taken as its volume's (fixture trees).
   */
  identify?: Identify;
  /** Told, once per volume and device, when a volume's recorded device is another's or gone: find it again. */
  refind?: (volume: string) => void;
}

/** An attached pod's cgroup, as the leaf watches need it. */
export interface AttachedPod {
  id: number;
  podCgroup: string;
}

export function attachedPods(attachments: readonly Attachment[]): AttachedPod[] {
  const out: AttachedPod[] = [];
  for (const a of attachments) if (a.state === 'attached' && a.podCgroup) out.push({ id: a.id, podCgroup: a.podCgroup });
  return out;
}

export type WriteReason = 'attach' | 'new-cgroup' | 'reconcile' | 'qos-change' | 'detach' | 'controller';

export class Enforcer {
  private readonly watcher: LeafWatcher;
  private readonly policy: LimitPolicy;
  private readonly view: StoreView;

  /** Volume → the device number reported as not its own (each mismatch is recorded once). */
  private readonly mismatched = new Map<string, string>();

  constructor(private readonly o: EnforcerOptions) {
    this.view = o.view ?? new StoreView(o.store);
    this.watcher = new LeafWatcher((pod, dir) => this.onNewCgroup(pod, dir), new RuleWatchLog(inotifyQueueLength(o.root)));
    this.policy = o.policy ?? staticLimits;
  }

  /**
   * Whether `device` is the volume's own now; when it is not, the mismatch is recorded (an event
   * and a log line, once) and the volume's device is found again (refind).
   */
  private owns(vol: Volume, device: string): boolean {
    const id = this.o.identify?.(vol, device) ?? { is: 'ours' as const };
    if (id.is === 'ours') {
      if (this.mismatched.get(vol.name) !== undefined && vol.deviceNumber === device) this.mismatched.delete(vol.name);
      return true;
    }
    this.mismatch(vol, device, id);
    return false;
  }

  private readonly mismatch: OnMismatch = (vol, device, id) => {
    if (this.mismatched.get(vol.name) === device) return;
    this.mismatched.set(vol.name, device);
    this.o.metrics.deviceMismatches.inc({ found: id.is });
    this.o.log.error({ volume: vol.name, device, found: id.is, why: id.why }, 'the device recorded for a volume is not its own any more: no rule is written or cleared for it; finding the volume\'s device again');
    this.o.store.events.add({ time: now(), volume: vol.name, kind: 'device-mismatch', source: 'reconcile', detail: { device, found: id.is, why: id.why } });
    this.o.refind?.(vol.name);
  };

  /**
   * Throws FailedPrecondition when the volume's recorded device is not its own now (recording
   * why and finding it again): an attach checks before it mounts.
   */
  confirmDevice(vol: Volume): void {
    if (!vol.deviceNumber || this.owns(vol, vol.deviceNumber)) return;
    throw new QosdError('FailedPrecondition', `device ${vol.deviceNumber} recorded for volume ${vol.name} is not its own any more; qosd is finding its device again: retry`);
  }

  /** The pod's cgroup, or a FailedPrecondition saying why it cannot be found (or there is no controller). */
  locatePod(podUid: string): { version: CgroupVersion; podCgroup: string } {
    const found = this.o.blkio.findPod(podUid, this.o.kubelet);
    return { version: found.version, podCgroup: found.dir };
  }

  /** Writes the volume's limits for the attachment and keeps new v1 leaves covered. */
  apply(att: Attachment, vol: Volume, reason: WriteReason): { attachment: Attachment; writes: number; refused?: string } {
    const blkio = this.o.blkio;
    if (!att.podCgroup || !att.cgroupVersion || !vol.deviceNumber) return { attachment: att, writes: 0 };
    if (!this.owns(vol, vol.deviceNumber)) return { attachment: att, writes: 0, refused: `device ${vol.deviceNumber} recorded for volume ${vol.name} is not its own any more` };
    let result: { dirs: string[]; writes: number };
    try {
      result = this.sync(blkio, att, vol, reason);
    } catch (err) {
      this.o.metrics.enforcementErrors.inc({ reason });
      throw err;
    }
    const { dirs, writes } = result;
    if (blkio.leavesNeedRules) this.watcher.watch(att.podCgroup, att.id);
    return { attachment: this.recordPaths(att, dirs), writes };
  }

  /** Removes the rules qosd wrote for this attachment. */
  clear(att: Attachment): void {
    const blkio = this.o.blkio;
    if (!att.podCgroup || !att.cgroupVersion || !att.device) return;
    this.watcher.unwatch(att.podCgroup, att.id);
    // A number the kernel has given to another's device is not cleared: its rules are not ours now.
    const vol = this.o.store.volumes.get(att.volume);
    if (vol && this.o.identify?.(vol, att.device).is === 'other') {
      if (att.device === vol.deviceNumber) this.owns(vol, att.device); // the volume's own record is stale: say so, find it again
      else this.o.log.info({ volume: att.volume, target: att.target, device: att.device, now: vol.deviceNumber }, "detach: the volume has another device since this attachment was made (a reboot), and its old number is another's now: the rules there are left alone");
      return;
    }
    // Another attachment of the same device in the same pod still wants the rules.
    const shared = this.o.store.attachments
      .inPod(att.podCgroup)
      .some((o) => o.id !== att.id && o.device === att.device && o.state === 'attached');
    if (shared) return;
    const dirs = [...new Set([...att.cgroupPaths, ...blkio.ruleDirs(att.podCgroup)])];
    let writes = 0;
    for (const dir of dirs) {
      try {
        writes += blkio.clearRules(dir, att.device);
      } catch (err) {
        if (isGone(err)) continue; // the container or pod already went away: nothing to clear
        this.o.metrics.enforcementErrors.inc({ reason: 'detach' });
        throw err;
      }
    }
    if (writes) this.o.metrics.ruleWrites.inc({ version: blkio.version, reason: 'detach' }, writes);
  }

  /**
   * What the leaf watches saw since the last call, for the next pass (rule-watch.ts); `resync`
   * when that pass runs in a worker that knows nothing yet.
   */
  takeRuleWatches(resync: boolean): RuleWatchBatch {
    return this.watcher.log.take(resync ? () => this.watcher.watchedDirs() : undefined);
  }

  /** Stops watching everything (daemon shutdown; rules stay, the next start re-adopts them). */
  close(): void {
    this.watcher.close();
  }

  /**
   * What the reconcile pass (reconcile/rule-pass.ts) reads and writes through: the blkio face, the
   * store and the limits policy, and the device checks asked before each write.
   */
  repairParts(): { blkio: Blkio; kubelet: EnforcerOptions['kubelet']; store: Store; view: StoreView; policy: LimitPolicy; identify: Identify | undefined; onMismatch: OnMismatch } {
    return { blkio: this.o.blkio, kubelet: this.o.kubelet, store: this.o.store, view: this.view, policy: this.policy, identify: this.o.identify, onMismatch: this.mismatch };
  }

  /** v1: the attached pods whose cgroups exist and that have no leaf watch get one. */
  async watchPods(pods: readonly AttachedPod[], slice: TimeSlice): Promise<void> {
    for (const p of pods) {
      if (!this.watcher.watching(p.podCgroup, p.id) && fs.existsSync(p.podCgroup) && this.o.store.attachments.byId(p.id)?.state === 'attached') {
        this.watcher.watch(p.podCgroup, p.id);
      }
      if (slice.due()) await slice.yield();
    }
    slice.end();
  }

  private sync(blkio: Blkio, att: Attachment, vol: Volume, reason: WriteReason): { dirs: string[]; writes: number } {
    const limits = this.policy.limitsFor(vol);
    const device = vol.deviceNumber!;
    const podCgroup = att.podCgroup!;
    let writes = 0;
    // Without limits nothing else may make the kernel count this device for the pod's metrics.
    if (reason === 'attach' && Object.keys(limits).length === 0) blkio.startCounting(podCgroup, device);
    const dirs: string[] = [];
    for (const dir of blkio.ruleDirs(podCgroup)) {
      try {
        writes += blkio.syncRules(dir, device, limits);
        dirs.push(dir);
      } catch (err) {
        if (!isGone(err)) throw err; // a container (or the pod) that went away meanwhile
      }
    }
    if (writes) this.o.metrics.ruleWrites.inc({ version: blkio.version, reason }, writes);
    // A volume without limits leaves the cgroups untouched, so there is nothing to record.
    return { dirs: Object.keys(limits).length > 0 || writes ? dirs : [], writes };
  }

  private recordPaths(att: Attachment, dirs: string[]): Attachment {
    const merged = [...new Set([...att.cgroupPaths, ...dirs])];
    if (merged.length === att.cgroupPaths.length) return att;
    return this.o.store.attachments.update(att.id, { cgroupPaths: merged }, now());
  }

  private onNewCgroup(podCgroup: string, dir: string): void {
    const blkio = this.o.blkio;
    const started = process.hrtime.bigint();
    for (const att of this.o.store.attachments.inPod(podCgroup)) {
      if (att.state !== 'attached') continue;
      const vol = this.o.store.volumes.get(att.volume);
      if (!vol?.deviceNumber || !this.owns(vol, vol.deviceNumber)) continue;
      try {
        const writes = blkio.syncRules(dir, vol.deviceNumber, this.policy.limitsFor(vol));
        if (writes) this.o.metrics.ruleWrites.inc({ version: blkio.version, reason: 'new-cgroup' }, writes);
        this.o.metrics.leafDelay.observe(Number(process.hrtime.bigint() - started) / 1e9);
        this.recordPaths(att, [dir]);
      } catch (err) {
        if (isGone(err)) continue;
        this.o.metrics.enforcementErrors.inc({ reason: 'new-cgroup' });
        this.o.log.error({ dir, volume: vol.name, err: (err as Error).message }, 'could not write rules to a new cgroup');
      }
    }
  }
}
