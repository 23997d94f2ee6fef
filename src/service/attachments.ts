// Attach (mount a volume for a pod and throttle the pod) and detach (the reverse). Both are
// idempotent, as kubelet retries every call, and an attach that fails part-way undoes itself so
// nothing is left mounted (kubelet would otherwise take the leftover mount for success).
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import type { Attachment, AttachmentKind, Source } from '../store/attachments';
import type { Volume } from '../store/volumes';
import { now, type Store } from '../store/store';
import type { VolumePool } from '../pools/pool';
import { unmount } from '../host/mount';
import { holdsDevice, makeTarget, refuseSymlinkOn, removeMadeTarget } from './targets';
import { mountPinned } from './mount-pinned';
import { mountsAt } from '../host/mountinfo';
import type { HostRoot } from '../host/host-root';
import { QosdError, notFound } from '../model/errors';
import { deviceAt, deviceOf, formatDevice } from '../host/block-device';
import { crashPoint, holdPoint } from './crash-points';
import { hasLimits } from '../model/qos';
import { checkTenantMount } from './tenancy';
import { lockKey, type Held, type KeyedLock } from './locks';
import type { Enforcer } from '../enforce/enforcer';
import type { VolumeRequest, VolumeService } from './volumes';

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
  /** Where the mount table is read and a target pinned. */
  root: HostRoot;
}

export class AttachmentService {
  constructor(private readonly o: AttachmentServiceOptions) {}

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
    const repeated = await this.repeatedAttach(held, req, kind);
    if (repeated) return repeated;
    const foreign = mountsAt(this.o.root, req.target);
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
      const opened = await this.o.volumes.openDevice(held, found);
      const dev = opened.dev;
      const volume = kind === 'mount' ? await this.o.volumes.formatForMount(held, opened.volume, dev.device) : opened.volume;
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
      mounted = await mountPinned(this.o.root, dev.device, req.target, kind, volume.fsType, req.readOnly);
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

  /**
   * What is already at the target: the same attach repeated (kubelet retries) answers as it did,
   * mounting nothing; an earlier attempt that stopped part-way is taken apart to start again;
   * another volume, or this one otherwise mounted, is refused.
   */
  private async repeatedAttach(held: Held, req: AttachRequest, kind: AttachmentKind): Promise<{ attachment: Attachment; volume: Volume } | undefined> {
    const existing = this.o.store.attachments.byTarget(req.target);
    if (!existing) return undefined;
    if (existing.volume !== req.volume.name) {
      throw new QosdError('FailedPrecondition', `${req.target} already holds volume ${existing.volume}`);
    }
    if (existing.state === 'attached' && (existing.readOnly !== req.readOnly || existing.kind !== kind)) {
      const had = `${existing.kind}, ${existing.readOnly ? 'read-only' : 'read-write'}`;
      throw new QosdError('AlreadyExists', `volume ${existing.volume} is already at ${req.target} (${had}); it cannot be made ${kind}, ${req.readOnly ? 'read-only' : 'read-write'} there without taking it away first`);
    }
    if (existing.state === 'attached' && mountsAt(this.o.root, req.target).length > 0) {
      const volume = this.o.volumes.get(existing.volume);
      return { attachment: this.o.enforcer.apply(existing, volume, 'attach').attachment, volume };
    }
    await this.detachHeld(held, existing, req.source);
    return undefined;
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
          await this.detachHeld(held, current, source);
          return true;
        }
        // No record: unmount only a mount of a device qosd knows; leave anything else alone.
        const mounts = mountsAt(this.o.root, target);
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

  /** Detaches under locks the caller holds (the target's and the volume's); mount repair closes with it. */
  async detachHeld(held: Held, att: Attachment, source: Source): Promise<void> {
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
    while (holdsDevice(att, mountsAt(this.o.root, att.target), att.device)) {
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
        await this.detachHeld(held, att, 'reconcile');
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
}
