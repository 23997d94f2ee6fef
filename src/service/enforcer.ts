// Turns a volume's limits into cgroup rules for the pods that mount it, and takes them away again.
// cgroup v2: one io.max line on the pod cgroup (hierarchical, covers later containers).
// cgroup v1: the pod cgroup and every cgroup below it, plus each new one as it appears (the v1
// throttle hierarchy is flat). Every directory written is recorded on the attachment, so detach
// clears exactly what qosd wrote.
import type { Logger } from 'pino';
import type { CgroupLayout } from '../host/cgroup-layout';
import { findPodCgroup, type CgroupDriver } from '../host/pod-cgroup';
import * as v1 from '../host/cgroup-v1';
import * as v2 from '../host/cgroup-v2';
import { LeafWatcher } from '../reconcile/leaf-watcher';
import { reconcilePass } from '../reconcile/pass';
import * as fs from 'node:fs';
import type { Attachment } from '../store/attachments';
import type { Volume } from '../store/volumes';
import { now, type Store } from '../store/store';
import { staticLimits, type LimitPolicy } from './limit-policy';
import { QosdError } from './errors';
import type { Metrics } from '../metrics/registry';

export interface EnforcerOptions {
  layout: CgroupLayout | { error: string };
  kubelet: { cgroupRoot: string; cgroupDriver: 'auto' | CgroupDriver };
  store: Store;
  log: Logger;
  metrics: Metrics;
  /** What to write for a volume (default: its max, statically). */
  policy?: LimitPolicy;
}

export type WriteReason = 'attach' | 'new-cgroup' | 'reconcile' | 'qos-change' | 'detach' | 'controller';

function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENODEV';
}

export class Enforcer {
  private readonly watcher: LeafWatcher;
  private readonly policy: LimitPolicy;

  constructor(private readonly o: EnforcerOptions) {
    this.watcher = new LeafWatcher((pod, dir) => this.onNewCgroup(pod, dir));
    this.policy = o.policy ?? staticLimits;
  }

  get layout(): CgroupLayout | { error: string } {
    return this.o.layout;
  }

  /**
   * The pod's cgroup, or a FailedPrecondition explaining why it cannot be found. Kubelet creates
   * the pod cgroup before it calls flex mount, so "not found" means the config (cgroupRoot,
   * cgroupDriver, cgroup.mountPoint) does not match the node.
   */
  locatePod(podUid: string): { version: CgroupLayout['version']; podCgroup: string } {
    const layout = this.o.layout;
    if ('error' in layout) throw new QosdError('FailedPrecondition', layout.error);
    const found = findPodCgroup(layout.base, podUid, this.o.kubelet.cgroupRoot, this.o.kubelet.cgroupDriver);
    if ('tried' in found) {
      throw new QosdError(
        'FailedPrecondition',
        `cgroup of pod ${podUid} not found (tried ${found.tried.join(', ')}); check kubelet.cgroupRoot and kubelet.cgroupDriver`,
      );
    }
    return { version: layout.version, podCgroup: found.dir };
  }

  /** Writes the volume's limits for the attachment and keeps new v1 leaves covered. */
  apply(att: Attachment, vol: Volume, reason: WriteReason): { attachment: Attachment; writes: number } {
    if (!att.podCgroup || !att.cgroupVersion || !vol.deviceNumber) return { attachment: att, writes: 0 };
    let result: { dirs: string[]; writes: number };
    try {
      result = this.sync(att, vol, reason);
    } catch (err) {
      this.o.metrics.enforcementErrors.inc({ reason });
      throw err;
    }
    const { dirs, writes } = result;
    if (att.cgroupVersion === 'v1') this.watcher.watch(att.podCgroup, att.id);
    return { attachment: this.recordPaths(att, dirs), writes };
  }

  /** Removes the rules qosd wrote for this attachment (v1: "0", v2: "max"). */
  clear(att: Attachment): void {
    if (!att.podCgroup || !att.cgroupVersion || !att.device) return;
    if (att.cgroupVersion === 'v1') this.watcher.unwatch(att.podCgroup, att.id);
    // Another attachment of the same device in the same pod still wants the rules.
    const shared = this.o.store.attachments
      .list()
      .some((o) => o.id !== att.id && o.podCgroup === att.podCgroup && o.device === att.device && o.state === 'attached');
    if (shared) return;
    const dirs = att.cgroupVersion === 'v2' ? [att.podCgroup] : [...new Set([...att.cgroupPaths, ...v1.cgroupTree(att.podCgroup)])];
    let writes = 0;
    for (const dir of dirs) {
      try {
        writes += att.cgroupVersion === 'v2' ? v2.clearIoMax(dir, att.device) : v1.clearRules(dir, att.device);
      } catch (err) {
        if (isGone(err)) continue; // the container or pod already went away: nothing to clear
        this.o.metrics.enforcementErrors.inc({ reason: 'detach' });
        throw err;
      }
    }
    if (writes) this.o.metrics.ruleWrites.inc({ version: att.cgroupVersion, reason: 'detach' }, writes);
  }

  /** Stops watching everything (daemon shutdown; rules stay, the next start re-adopts them). */
  close(): void {
    this.watcher.close();
  }

  /**
   * One full reconcile pass (reconcile/pass.ts), then the v1 watches every attached pod needs.
   * Each repair is counted and logged with what was wrong. Returns the number of repairs.
   */
  reconcileAll(): number {
    const layout = this.o.layout;
    if ('error' in layout) return 0;
    const timer = this.o.metrics.reconcileDuration.startTimer();
    let repairs: ReturnType<typeof reconcilePass>['repairs'];
    try {
      repairs = reconcilePass({ layout, kubelet: this.o.kubelet, store: this.o.store, policy: this.policy }).repairs;
    } catch (err) {
      this.o.metrics.enforcementErrors.inc({ reason: 'reconcile' });
      throw err;
    } finally {
      timer();
    }
    for (const r of repairs) {
      this.o.metrics.reconcileRepairs.inc({ kind: r.kind === 'stray' ? 'stray-rule' : 'cgroup-rule' });
      this.o.log.warn(
        { dir: r.dir, device: r.device, found: r.found, want: r.want },
        r.kind === 'stray' ? 'reconcile: cleared a rule that no attachment wants' : 'reconcile: cgroup rules differed from SQLite and were rewritten',
      );
    }
    if (repairs.length) this.o.metrics.ruleWrites.inc({ version: layout.version, reason: 'reconcile' }, repairs.length);
    for (const att of this.o.store.attachments.list()) {
      if (att.state === 'attached' && att.cgroupVersion === 'v1' && att.podCgroup && fs.existsSync(att.podCgroup)) this.watcher.watch(att.podCgroup, att.id);
    }
    return repairs.length;
  }

  private sync(att: Attachment, vol: Volume, reason: WriteReason): { dirs: string[]; writes: number } {
    const limits = this.policy.limitsFor(vol);
    const device = vol.deviceNumber!;
    const podCgroup = att.podCgroup!;
    let writes = 0;
    let dirs: string[];
    if (att.cgroupVersion === 'v2') {
      writes += v2.syncIoMax(podCgroup, device, limits);
      dirs = [podCgroup];
    } else {
      // Without limits nothing else makes the kernel count this device for the pod's metrics.
      if (reason === 'attach' && Object.keys(limits).length === 0) v1.primeStats(podCgroup, device);
      dirs = [];
      for (const dir of v1.cgroupTree(podCgroup)) {
        try {
          writes += v1.syncRules(dir, device, limits);
          dirs.push(dir);
        } catch (err) {
          if (!isGone(err)) throw err;
        }
      }
    }
    if (writes) this.o.metrics.ruleWrites.inc({ version: att.cgroupVersion!, reason }, writes);
    // A volume without limits leaves the cgroups untouched, so there is nothing to record.
    return { dirs: Object.keys(limits).length > 0 || writes ? dirs : [], writes };
  }

  private recordPaths(att: Attachment, dirs: string[]): Attachment {
    const merged = [...new Set([...att.cgroupPaths, ...dirs])];
    if (merged.length === att.cgroupPaths.length) return att;
    return this.o.store.attachments.update(att.id, { cgroupPaths: merged }, now());
  }

  private onNewCgroup(podCgroup: string, dir: string): void {
    const started = process.hrtime.bigint();
    for (const att of this.o.store.attachments.list()) {
      if (att.state !== 'attached' || att.podCgroup !== podCgroup || att.cgroupVersion !== 'v1') continue;
      const vol = this.o.store.volumes.get(att.volume);
      if (!vol?.deviceNumber) continue;
      try {
        const writes = v1.syncRules(dir, vol.deviceNumber, this.policy.limitsFor(vol));
        if (writes) this.o.metrics.ruleWrites.inc({ version: 'v1', reason: 'new-cgroup' }, writes);
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
