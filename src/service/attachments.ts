// Attach (mount a volume for a pod and throttle the pod) and detach (the reverse). Both are
// idempotent, as kubelet retries every call, and an attach that fails part-way undoes itself so
// nothing is left mounted (kubelet would otherwise take the leftover mount for success).
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import type { Attachment, AttachmentKind, Source } from '../store/attachments';
import type { Volume } from '../store/volumes';
import { now, type Store } from '../store/store';
import type { PoolDevice, VolumePool } from '../pools/pool';
import { bindDevice, mountDevice, remountReadOnly, unmount } from '../host/mount';
import { makeTarget, pinTarget, refuseSymlinkOn, removeMadeTarget } from './targets';
import { byMountPoint, mountsAt, readMountinfo, readMountinfoInPieces, type MountEntry } from '../host/mountinfo';
import { QosdError, notFound } from '../model/errors';
import { deviceAt, deviceOf, formatDevice } from '../host/block-device';
import { holdsDevice } from './mount-sweep';
import { crashPoint, holdPoint } from './crash-points';
import { hasLimits } from '../model/qos';
import { checkTenantMount } from './tenancy';
import { lockKey, type Held, type KeyedLock } from './locks';
import type { Enforcer } from '../enforce/enforcer';
import type { Metrics } from '../metrics/registry';
import type { VolumeRequest, VolumeService } from './volumes';
import { StoreView } from '../store/view';
import { TimeSlice } from '../util/time-slice';

export interface AttachRequest {
  volume: VolumeRequest;
  target: string;
  podUid: string | undefined;
  readOnly: boolean;
  source: Source;
  /** mount (default): the filesystem on a directory; block: the device node on a file. */
  kind?: AttachmentKind;
  /** Create the volume when it does not exist (flex, the default); false: NotFound instead (CSI). */
  create?: boolean;
  /**
   * The namespace of a tenant's mount (flex): the volume must be that namespace's (or nobody's,
   * then claimed), and the mount never changes its QoS (service/tenancy.ts).
   */
  tenant?: string;
}

export interface AttachmentServiceOptions {
  store: Store;
  pools: Map<string, VolumePool>;
  volumes: VolumeService;
  enforcer: Enforcer;
  locks: KeyedLock;
  log: Logger;
  metrics?: Metrics;
  /** The store as periodic jobs read it (shared with the reconcile pass and the controller). */
  view?: StoreView;
  /** The mount table, given the pause between pieces (tests and benchmarks give fixtures). */
  readMounts?: (pause: () => Promise<void>) => Promise<MountEntry[]>;
}

/** What a sweep looks at: attachments, and the mount table by mount point. */
export interface SweepInputs {
  attachments: readonly Attachment[];
  mounts: Map<string, MountEntry[]>;
}

export interface MountCheck {
  /** Attached volumes mounted at their target with their own device. */
  mounted: number;
  /** Found unmounted while their pod lives, and mounted again. */
  remounted: number;
  /** Unmounted and could not be mounted again, or their target holds another device. */
  notMounted: number;
}

export class AttachmentService {
  /** Problems already put in the event log, so a lasting one is recorded once, not every pass. */
  private readonly reported = new Set<number>();

  private readonly view: StoreView;

  constructor(private readonly o: AttachmentServiceOptions) {
    this.view = o.view ?? new StoreView(o.store);
  }

  /** The store and the mount table for a periodic sweep, read giving the loop back as they go. */
  private async sweepInputs(slice: TimeSlice): Promise<SweepInputs> {
    const { attachments } = await this.view.read(slice);
    const mounts = byMountPoint(await (this.o.readMounts ?? readMountinfoInPieces)(() => slice.check()));
    return { attachments, mounts };
  }

  /**
   * Both sweeps over what the periodic jobs' worker found (mountSuspects): only the attachments
   * whose target did not hold their device there, read again from the store, against the mount
   * table as it is now (read only when there is something to look at).
   */
  async sweepSuspects(suspects: readonly number[], mountedElsewhere: number, slice: TimeSlice = new TimeSlice()): Promise<{ closed: number; mounts: MountCheck }> {
    const attachments: Attachment[] = [];
    for (const id of suspects) {
      const a = this.o.store.attachments.byId(id);
      if (a) attachments.push(a);
    }
    const inputs: SweepInputs = {
      attachments,
      mounts: attachments.length > 0 ? byMountPoint(await (this.o.readMounts ?? readMountinfoInPieces)(() => slice.check())) : new Map(),
    };
    const closed = await this.closeVanished(slice, inputs);
    const mounts = await this.checkMounts(slice, inputs);
    mounts.mounted += mountedElsewhere;
    return { closed, mounts };
  }

  list(): Attachment[] {
    return this.o.store.attachments.list();
  }

  /**
   * What is wrong with an attachment now, or undefined when nothing is: its volume's device
   * node gone or changed, or its target no longer holding that device (CSI VOLUME_CONDITION).
   */
  problemOf(att: Attachment): string | undefined {
    const vol = this.o.store.volumes.get(att.volume);
    if (!vol) return `volume ${att.volume} is not in qosd's store`;
    if (!vol.device || !fs.existsSync(vol.device)) return `the device of volume ${vol.name} (${vol.device ?? 'none recorded'}) is gone`;
    try {
      const now = formatDevice(deviceOf(vol.device));
      if (now !== vol.deviceNumber) return `${vol.device} is ${now} now, not the volume's ${vol.deviceNumber}`;
    } catch (err) {
      return `the device of volume ${vol.name}: ${(err as Error).message}`;
    }
    if (att.state !== 'attached') return `the attachment at ${att.target} is ${att.state}`;
    // One stat, not the mount table: kubelet asks this of every volume every stats period.
    let found: string;
    try {
      found = deviceAt(att.target);
    } catch (err) {
      return `${att.target} is not mounted (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
    if (found !== vol.deviceNumber) return `${att.target} is not mounted with the volume's device ${vol.deviceNumber} (it is on ${found})`;
    return undefined;
  }

  async attach(req: AttachRequest): Promise<{ attachment: Attachment; volume: Volume }> {
    return this.o.locks.run([lockKey.volume(req.volume.name), lockKey.target(req.target)], (held) => this.attachLocked(held, req));
  }

  private async attachLocked(held: Held, req: AttachRequest): Promise<{ attachment: Attachment; volume: Volume }> {
    held.require(lockKey.target(req.target));
    const { store, enforcer } = this.o;
    const kind = req.kind ?? 'mount';
    const existing = store.attachments.byTarget(req.target);
    if (existing) {
      if (existing.volume !== req.volume.name) {
        throw new QosdError('FailedPrecondition', `${req.target} already holds volume ${existing.volume}`);
      }
      if (existing.state === 'attached' && (existing.readOnly !== req.readOnly || existing.kind !== kind)) {
        const had = `${existing.kind}, ${existing.readOnly ? 'read-only' : 'read-write'}`;
        throw new QosdError('AlreadyExists', `volume ${existing.volume} is already at ${req.target} (${had}); it cannot be made ${kind}, ${req.readOnly ? 'read-only' : 'read-write'} there without taking it away first`);
      }
      if (existing.state === 'attached' && mountsAt(req.target).length > 0) {
        // A repeated mount: make sure the rules are in place and report success, mounting nothing.
        const volume = this.o.volumes.get(existing.volume);
        return { attachment: enforcer.apply(existing, volume, 'attach').attachment, volume };
      }
      // An earlier attempt stopped part-way: take it apart and start again.
      await this.detachLocked(held, existing, req.source);
    }
    const foreign = mountsAt(req.target);
    if (foreign.length > 0) {
      throw new QosdError('FailedPrecondition', `${req.target} is already a mount point (of ${foreign[0]!.source}) that qosd did not make`);
    }

    // Find the pod's cgroup before touching anything: a volume with limits must not be mounted
    // (or even created) for a pod qosd cannot throttle.
    const known = store.volumes.get(req.volume.name);
    if (!known && req.create === false) throw notFound(`volume ${req.volume.name} does not exist`);
    const namesQos = req.volume.qos !== undefined || req.volume.class !== undefined;
    if (known && req.tenant !== undefined) checkTenantMount(known, req.tenant, namesQos ? this.o.volumes.resolve(req.volume) : undefined);
    const qos = known && (!namesQos || req.tenant !== undefined) ? known.qos : this.o.volumes.resolve(req.volume).qos;
    let pod: ReturnType<Enforcer['locatePod']> | undefined;
    if (req.podUid !== undefined) {
      try {
        pod = enforcer.locatePod(req.podUid);
      } catch (err) {
        if (hasLimits(qos)) throw err;
      }
    } else if (hasLimits(qos)) {
      throw new QosdError('InvalidArgument', `volume ${req.volume.name} has limits, but no pod uid was given to apply them to`);
    }

    const { volume: found, created } = await this.o.volumes.ensure(held, req.volume, req.source, req.tenant);
    let attachment: Attachment | undefined;
    let mounted = false;
    try {
      const { dev, volume } = await this.openDevice(held, found);
      enforcer.confirmDevice(volume);

      attachment = store.tx(() => {
        const a = store.attachments.insert(
          { volume: volume.name, podUid: req.podUid ?? null, target: req.target, readOnly: req.readOnly, kind, state: 'attaching', source: req.source },
          now(),
        );
        store.events.add({ time: now(), volume: volume.name, kind: 'attach-started', source: req.source, detail: { target: req.target, podUid: req.podUid ?? null, readOnly: req.readOnly, ...(kind === 'block' ? { block: true } : {}) } });
        return store.attachments.update(a.id, { cgroupVersion: pod?.version ?? null, podCgroup: pod?.podCgroup ?? null, device: volume.deviceNumber }, now());
      });

      crashPoint('attach:intent');
      makeTarget(req.target, kind);
      await holdPoint('attach:target-made');
      mounted = await mountPinned(dev.device, req.target, kind, volume.fsType, req.readOnly);
      crashPoint('attach:mounted');
      // One commit for the outcome: attached, the cgroups written, the event. If writing the
      // rules fails, the row stays "attaching" and the undo below takes the mount away again.
      const attaching = attachment;
      attachment = store.tx(() => {
        const applied = enforcer.apply(store.attachments.update(attaching.id, { state: 'attached' }, now()), volume, 'attach');
        if (applied.refused) throw new QosdError('FailedPrecondition', `${applied.refused}; qosd is finding its device again: retry`);
        const a = applied.attachment;
        store.events.add({ time: now(), volume: volume.name, kind: 'attached', source: req.source, detail: { target: req.target, podCgroup: a.podCgroup, cgroupPaths: a.cgroupPaths } });
        return a;
      });
      crashPoint('attach:attached');
      return { attachment, volume };
    } catch (err) {
      await this.undoAttach(held, attachment, mounted, req, created, err);
      throw err;
    }
  }

  private async undoAttach(held: Held, att: Attachment | undefined, mounted: boolean, req: AttachRequest, created: boolean, cause: unknown): Promise<void> {
    try {
      if (mounted) {
        refuseSymlinkOn(req.target);
        await unmount(req.target);
      }
      if (att) {
        const current = this.o.store.attachments.byId(att.id);
        if (current) this.o.enforcer.clear(current);
      }
      if (att) {
        this.o.store.tx(() => {
          this.o.store.attachments.delete(att.id);
          this.o.store.events.add({ time: now(), volume: req.volume.name, kind: 'attach-undone', source: req.source, detail: { target: req.target, reason: (cause as Error).message } });
        });
      }
      if (created) await this.o.volumes.deleteLocked(held, req.volume.name, req.source);
    } catch (err) {
      this.o.log.error({ target: req.target, err: (err as Error).message }, 'could not undo a failed attach');
    }
  }

  /** Unmounts whatever qosd mounted at target; Success when nothing is there. */
  async detach(target: string, source: Source): Promise<void> {
    // The volume to lock is read before the lock is held; if another volume took the target
    // meanwhile, lock again with the right keys.
    for (;;) {
      const att = this.o.store.attachments.byTarget(target);
      const keys = [lockKey.target(target), ...(att ? [lockKey.volume(att.volume)] : [])];
      const done = await this.o.locks.run(keys, async (held) => {
        const current = this.o.store.attachments.byTarget(target);
        if (current && current.volume !== att?.volume) return false;
        if (current) {
          await this.detachLocked(held, current, source);
          return true;
        }
        // No record: unmount only a mount of a device qosd knows; leave anything else alone.
        const mounts = mountsAt(target);
        if (mounts.length === 0) return true;
        const ours = new Set(this.o.store.volumes.list().map((v) => v.deviceNumber));
        if (mounts.every((m) => ours.has(m.device))) {
          refuseSymlinkOn(target);
          for (let i = 0; i < mounts.length; i++) await unmount(target);
          return true;
        }
        throw new QosdError('FailedPrecondition', `${target} is mounted (${mounts[0]!.source}) but not by qosd; leaving it alone`);
      });
      if (done) return;
    }
  }

  private async detachLocked(held: Held, att: Attachment, source: Source): Promise<void> {
    // The row may have moved to another volume's target since the keys were chosen: check both.
    held.volume(att.volume);
    held.require(lockKey.target(att.target));
    const { store } = this.o;
    store.tx(() => {
      store.attachments.update(att.id, { state: 'detaching' }, now());
      store.events.add({ time: now(), volume: att.volume, kind: 'detach-started', source, detail: { target: att.target } });
    });
    crashPoint('detach:intent');
    // Unmounted first: a mount that cannot go (a process still holds it) keeps its rules.
    try {
      await this.unmountOurs(att);
    } catch (err) {
      const reason = (err as Error).message.trim();
      store.tx(() => {
        store.attachments.update(att.id, { state: 'attached' }, now());
        store.events.add({ time: now(), volume: att.volume, kind: 'detach-failed', source, detail: { target: att.target, reason } });
      });
      throw new QosdError('FailedPrecondition', `${att.target} could not be unmounted, so volume ${att.volume} stays attached and its limits stay in place: ${reason}`);
    }
    crashPoint('detach:unmounted');
    this.o.enforcer.clear({ ...att, state: 'detaching' });
    crashPoint('detach:cleared');
    const vol = store.volumes.get(att.volume);
    store.tx(() => {
      store.attachments.delete(att.id);
      store.events.add({ time: now(), volume: att.volume, kind: 'detached', source, detail: { target: att.target } });
    });
    if (vol?.ephemeral && store.attachments.list(vol.name).length === 0) {
      await this.o.volumes.deleteLocked(held, vol.name, source);
    }
  }

  /** A target can carry the same device more than once if something mounted it again; take all. */
  private async unmountOurs(att: Attachment): Promise<void> {
    while (holdsDevice(att, readMountinfo().filter((m) => m.mountPoint === att.target), att.device)) {
      refuseSymlinkOn(att.target); // umount(8) would follow it to another mount
      await unmount(att.target);
    }
  }

  /**
   * Start-up recovery. "attaching": the attach never answered kubelet, which retries it, so take
   * it apart (rules, mount, row) and keep the volume. "detaching": finish the detach.
   */
  async recover(att: Attachment): Promise<void> {
    await this.o.locks.run([lockKey.volume(att.volume), lockKey.target(att.target)], async (held) => {
      if (att.state === 'detaching') {
        await this.detachLocked(held, att, 'reconcile');
        // A CSI target is the driver's to remove (the spec); the unpublish that would have is done.
        if (att.source === 'csi') removeMadeTarget(att.target);
        return;
      }
      if (att.state !== 'attaching') return;
      await this.unmountOurs(att);
      this.o.enforcer.clear(att);
      this.o.store.tx(() => {
        this.o.store.attachments.delete(att.id);
        this.o.store.events.add({ time: now(), volume: att.volume, kind: 'attach-rolled-back', source: 'reconcile', detail: { target: att.target } });
      });
    });
  }

  /**
   * Attachments whose pod is gone: not mounted any more, and the pod cgroup (or, without one, the
   * target directory) has disappeared: the pod was deleted while qosd was down, or kubelet never
   * called unmount. They are closed: rules forgotten, row removed, an ephemeral volume deleted,
   * a persistent one kept.
   */
  async closeVanished(slice: TimeSlice = new TimeSlice(), inputs?: SweepInputs): Promise<number> {
    let closed = 0;
    const { attachments, mounts } = inputs ?? (await this.sweepInputs(slice));
    for (const att of attachments) {
      if (slice.due()) await slice.yield();
      if (att.state !== 'attached' || mounts.has(att.target)) continue;
      const podGone = att.podCgroup ? !fs.existsSync(att.podCgroup) : !fs.existsSync(att.target);
      if (!podGone) continue;
      try {
        await this.o.locks.run([lockKey.volume(att.volume), lockKey.target(att.target)], async (held) => {
          const current = this.o.store.attachments.byId(att.id);
          if (!current || current.state !== 'attached') return;
          this.o.store.events.add({ time: now(), volume: att.volume, kind: 'pod-vanished', source: 'reconcile', detail: { target: att.target, podUid: att.podUid, podCgroup: att.podCgroup } });
          this.o.log.warn({ volume: att.volume, target: att.target, pod: att.podUid }, 'reconcile: pod is gone without an unmount; closing its attachment');
          await this.detachLocked(held, current, 'reconcile');
          closed++;
        });
      } catch (err) {
        // One attachment that cannot be closed must not stop the others, or the daemon's start.
        this.o.log.error({ volume: att.volume, target: att.target, err: (err as Error).message }, 'reconcile: could not close the attachment of a vanished pod; it is tried again (at the next pass, or at the next start if it was left detaching)');
      }
    }
    slice.end();
    return closed;
  }

  /**
   * Attached means mounted. Every attached volume must be mounted at its target, in the host's
   * mount namespace (qosd refuses to run in another), with the volume's own device. A volume
   * whose mount was lost while its pod lives (a reboot, an umount by hand, a daemon that once
   * mounted in a private namespace) is mounted again, on the device its pool opens now; a target
   * that holds another device is reported and left alone. Pods that are gone are left to
   * closeVanished. Each problem is an event (once) and a log line; the counts are metrics.
   */
  async checkMounts(slice: TimeSlice = new TimeSlice(), inputs?: SweepInputs): Promise<MountCheck> {
    const out: MountCheck = { mounted: 0, remounted: 0, notMounted: 0 };
    const { attachments, mounts } = inputs ?? (await this.sweepInputs(slice));
    const seen = new Set<number>();
    for (const att of attachments) {
      if (slice.due()) await slice.yield();
      if (att.state !== 'attached') continue;
      const here = mounts.get(att.target) ?? [];
      const want = att.device ?? this.o.store.volumes.get(att.volume)?.deviceNumber ?? null;
      if (here.length > 0 && holdsDevice(att, here, want)) {
        out.mounted++;
        this.reported.delete(att.id);
        continue;
      }
      if (here.length > 0) {
        out.notMounted++;
        seen.add(att.id);
        this.reportOnce(att, 'mount-wrong-device', { target: att.target, want, found: here.map((m) => `${m.device} (${m.source})`) },
          'reconcile: the target of an attached volume holds another device; leaving it alone');
        continue;
      }
      const podAlive = att.podCgroup ? fs.existsSync(att.podCgroup) : fs.existsSync(att.target);
      if (!podAlive) continue; // closeVanished closes it
      const outcome = await this.remount(att);
      if (outcome === 'remounted') out.remounted++;
      if (outcome === 'failed') {
        out.notMounted++;
        seen.add(att.id);
      }
    }
    for (const id of this.reported) if (!seen.has(id)) this.reported.delete(id);
    this.o.metrics?.attachmentsNotMounted.set(out.notMounted);
    slice.end();
    return out;
  }

  private async remount(att: Attachment): Promise<'remounted' | 'failed' | 'skipped'> {
    return this.o.locks.run([lockKey.volume(att.volume), lockKey.target(att.target)], async (held) => {
      // Looked at again under the lock: a flex call may have changed it meanwhile.
      const current = this.o.store.attachments.byId(att.id);
      if (!current || current.state !== 'attached' || mountsAt(current.target).length > 0) return 'skipped';
      const { store } = this.o;
      const found = store.volumes.get(current.volume);
      try {
        if (!found) throw new Error(`volume ${current.volume} is not in the store`);
        const wanted = current.kind === 'block' ? 'file' : 'directory';
        const st = fs.existsSync(current.target) ? fs.lstatSync(current.target) : undefined;
        if (!st || (current.kind === 'block' ? !st.isFile() : !st.isDirectory())) {
          throw new Error(`target ${current.target} is not a ${wanted} any more`);
        }
        const { dev, volume } = await this.openDevice(held, found);
        await mountPinned(dev.device, current.target, current.kind, volume.fsType, current.readOnly);
        const att2 = current.device === volume.deviceNumber ? current : store.attachments.update(current.id, { device: volume.deviceNumber }, now());
        this.o.enforcer.apply(att2, volume, 'reconcile');
        store.events.add({ time: now(), volume: volume.name, kind: 'mount-repaired', source: 'reconcile', detail: { target: current.target, device: dev.device, deviceNumber: volume.deviceNumber } });
        this.o.log.warn({ volume: volume.name, target: current.target, device: dev.device }, 'reconcile: an attached volume was not mounted at its target; mounted it again');
        this.o.metrics?.mountRepairs.inc({ outcome: 'remounted' });
        this.reported.delete(current.id);
        return 'remounted';
      } catch (err) {
        this.o.metrics?.mountRepairs.inc({ outcome: 'failed' });
        this.reportOnce(current, 'mount-missing', { target: current.target, reason: (err as Error).message },
          'reconcile: an attached volume is not mounted at its target and could not be mounted again');
        return 'failed';
      }
    });
  }

  /**
   * The volume's device as its pool opens it now, recorded when it changed since the volume was
   * last seen (a reboot re-attaches loop devices under other numbers).
   */
  private async openDevice(held: Held, found: Volume): Promise<{ dev: PoolDevice; volume: Volume }> {
    const dev = await this.o.pools.get(found.pool)!.open(found);
    return { dev, volume: this.o.volumes.recordDevice(held, found, dev) };
  }

  private reportOnce(att: Attachment, kind: string, detail: Record<string, unknown>, message: string): void {
    if (this.reported.has(att.id)) return;
    this.reported.add(att.id);
    this.o.log.error({ volume: att.volume, target: att.target, ...detail }, message);
    this.o.store.events.add({ time: now(), volume: att.volume, kind, source: 'reconcile', detail });
  }
}

/**
 * Mounts the volume's device on the target through its pinned descriptor (service/targets.ts):
 * on the very directory (or file) checked, whatever its path says meanwhile. Returns true once
 * mounted (a read-only bind that fails its second step is mounted, and the caller's undo takes it).
 */
async function mountPinned(device: string, target: string, kind: AttachmentKind, fsType: string, readOnly: boolean): Promise<true> {
  const pinned = pinTarget(target, kind);
  try {
    if (kind === 'mount') {
      await mountDevice(device, pinned.procPath, fsType, readOnly);
      return true;
    }
    await bindDevice(device, pinned.procPath);
  } finally {
    pinned.close();
  }
  if (readOnly) {
    try {
      refuseSymlinkOn(target);
      await remountReadOnly(target);
    } catch (err) {
      await unmount(target).catch(() => undefined);
      throw err;
    }
  }
  return true;
}
