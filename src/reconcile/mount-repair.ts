// Mount repair: attached means mounted. Found: the attached attachments whose target does not hold
// their device (mount-suspects.ts). Confirmed, each under its locks as things are now: an attachment
// whose pod is gone (no mount, and no pod cgroup, or without one no target) is closed; one whose
// mount was lost while its pod lives (a reboot, an umount by hand) is mounted again on the device
// its pool opens now; a target that holds another device is reported and left alone. Each problem
// is an event (once, while it lasts) and a log line; the counts are metrics.
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import type { Attachment } from '../store/attachments';
import { now, type Store } from '../store/store';
import type { StoreView } from '../store/view';
import { byMountPoint, mountsAt, readMountinfoInPieces, type MountEntry } from '../host/mountinfo';
import type { HostRoot } from '../host/host-root';
import { holdsDevice } from '../service/targets';
import { mountPinned } from '../service/mount-pinned';
import { lockKey, type KeyedLock } from '../service/locks';
import type { AttachmentService } from '../service/attachments';
import type { VolumeService } from '../service/volumes';
import type { Enforcer } from '../enforce/enforcer';
import type { Metrics } from '../metrics/registry';
import type { EventKind } from '../model/event-kinds';
import type { TimeSlice } from '../util/time-slice';
import type { RepairJob } from './repair-job';
import { mountSuspects, type MountSuspects } from './mount-suspects';

export interface MountRepairOptions {
  store: Store;
  view: StoreView;
  volumes: Pick<VolumeService, 'openDevice'>;
  attachments: Pick<AttachmentService, 'detachHeld'>;
  enforcer: Pick<Enforcer, 'apply'>;
  locks: KeyedLock;
  log: Logger;
  metrics?: Metrics;
  /** Where the mount table is read and a target pinned (tests and benchmarks give fixture trees). */
  root: HostRoot;
}

export interface MountCheck {
  /** Attached volumes mounted at their target with their own device. */
  mounted: number;
  /** Found unmounted while their pod lives, and mounted again. */
  remounted: number;
  /** Unmounted and could not be mounted again, or their target holds another device. */
  notMounted: number;
}

export interface MountOutcome {
  /** Attachments of vanished pods closed. */
  closed: number;
  mounts: MountCheck;
}

export class MountRepair implements RepairJob<MountSuspects, MountOutcome> {
  /** Problems already put in the event log, so a lasting one is recorded once, not every pass. */
  private readonly reported = new Set<number>();

  constructor(private readonly o: MountRepairOptions) {}

  async find(slice: TimeSlice): Promise<MountSuspects> {
    const { attachments, volumes } = await this.o.view.read(slice);
    return mountSuspects(attachments, volumes, await this.mountTable(slice), slice);
  }

  /** The suspects read again from the store, against the mount table as it is now. */
  async confirm(found: MountSuspects, slice: TimeSlice): Promise<MountOutcome> {
    const attachments: Attachment[] = [];
    for (const id of found.suspects) {
      const a = this.o.store.attachments.byId(id);
      if (a) attachments.push(a);
    }
    const mounts = attachments.length > 0 ? await this.mountTable(slice) : new Map<string, MountEntry[]>();
    const closed = await this.closeVanished(attachments, mounts, slice);
    const check = await this.checkMounts(attachments, mounts, slice);
    check.mounted += found.mounted;
    return { closed, mounts: check };
  }

  private async mountTable(slice: TimeSlice): Promise<Map<string, MountEntry[]>> {
    return byMountPoint(await readMountinfoInPieces(this.o.root, () => slice.check()));
  }

  /**
   * Attachments whose pod is gone: the pod was deleted while qosd was down, or kubelet never called
   * unmount. Closed: rules forgotten, row removed, an ephemeral volume deleted, a persistent one kept.
   */
  private async closeVanished(attachments: readonly Attachment[], mounts: Map<string, MountEntry[]>, slice: TimeSlice): Promise<number> {
    let closed = 0;
    for (const att of attachments) {
      if (slice.due()) await slice.yield();
      if (att.state !== 'attached' || mounts.has(att.target)) continue;
      if (podAlive(att)) continue;
      try {
        await this.o.locks.run([lockKey.volume(att.volume), lockKey.target(att.target)], async (held) => {
          const current = this.o.store.attachments.byId(att.id);
          if (!current || current.state !== 'attached') return;
          this.o.store.events.add({ time: now(), volume: att.volume, kind: 'pod-vanished', source: 'reconcile', detail: { target: att.target, podUid: att.podUid, podCgroup: att.podCgroup } });
          this.o.log.warn({ volume: att.volume, target: att.target, pod: att.podUid }, 'reconcile: pod is gone without an unmount; closing its attachment');
          await this.o.attachments.detachHeld(held, current, 'reconcile');
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

  /** Every attached volume mounted at its target, in the host's mount namespace, with its own device. */
  private async checkMounts(attachments: readonly Attachment[], mounts: Map<string, MountEntry[]>, slice: TimeSlice): Promise<MountCheck> {
    const out: MountCheck = { mounted: 0, remounted: 0, notMounted: 0 };
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
      if (!podAlive(att)) continue; // closeVanished closed it
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
      if (!current || current.state !== 'attached' || mountsAt(this.o.root, current.target).length > 0) return 'skipped';
      const { store } = this.o;
      const found = store.volumes.get(current.volume);
      try {
        if (!found) throw new Error(`volume ${current.volume} is not in the store`);
        const wanted = current.kind === 'block' ? 'file' : 'directory';
        const st = fs.existsSync(current.target) ? fs.lstatSync(current.target) : undefined;
        if (!st || (current.kind === 'block' ? !st.isFile() : !st.isDirectory())) {
          throw new Error(`target ${current.target} is not a ${wanted} any more`);
        }
        const { dev, volume } = await this.o.volumes.openDevice(held, found);
        await mountPinned(this.o.root, dev.device, current.target, current.kind, volume.fsType, current.readOnly);
        const moved = current.device === volume.deviceNumber ? current : store.attachments.update(current.id, { device: volume.deviceNumber }, now());
        this.o.enforcer.apply(moved, volume, 'reconcile');
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

  private reportOnce(att: Attachment, kind: EventKind, detail: Record<string, unknown>, message: string): void {
    if (this.reported.has(att.id)) return;
    this.reported.add(att.id);
    this.o.log.error({ volume: att.volume, target: att.target, ...detail }, message);
    this.o.store.events.add({ time: now(), volume: att.volume, kind, source: 'reconcile', detail });
  }
}

/** The pod still lives: its cgroup (or, without one, the target) is there. */
function podAlive(att: Attachment): boolean {
  return att.podCgroup ? fs.existsSync(att.podCgroup) : fs.existsSync(att.target);
}
