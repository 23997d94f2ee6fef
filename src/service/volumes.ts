// Volume lifecycle: create (allocate, format), grow, change QoS, delete. Each step records its
// intent in SQLite before it touches the node, and a failed create is undone so that a refused or
// broken request leaves nothing behind.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { Config, PoolConfig } from '../config/config';
import type { FsType } from '../model/filesystem';
import type { VolumePool } from '../pools/pool';
import { now, type Store } from '../store/store';
import type { Volume } from '../store/volumes';
import type { Source } from '../store/attachments';
import { growMountedFilesystem, growUnmountedExt4, makeFilesystem, probeSignature, zeroDevice } from '../host/filesystem';
import { mountDevice, unmount } from '../host/mount';
import { readMountinfo } from '../host/mountinfo';
import type { HostRoot } from '../host/host-root';
import { DIMENSIONS, DIRECTIONS, checkSpec, latencyOver, sameSpec, type Direction, type Figures, type LatencyTargets, type QosSpec } from '../model/qos';
import { admit, type AdmissionRoom } from './admission';
import { crashPoint } from './crash-points';
import { QosdError, invalid, notFound } from '../model/errors';
import { lockKey, type Held, type KeyedLock } from './locks';
import type { PoolDevice } from '../pools/pool';
import type { Enforcer } from '../enforce/enforcer';
import { checkTenantMount } from './tenancy';
import { CSI_OWNER, namespaceOwner } from '../model/owner';

/** Volume names become file names and LV names: DNS-label-like, at most 200 characters. */
export const VOLUME_NAME = /^[a-z0-9]([a-z0-9._-]{0,198}[a-z0-9])?$/;

export interface VolumeRequest {
  name: string;
  pool?: string;
  size?: number;
  fsType?: FsType;
  class?: string;
  qos?: { min?: Figures; max?: Figures; latency?: LatencyTargets };
  ephemeral?: boolean;
  /** Whose the volume is when this request creates it (model/owner.ts); absent: nobody's yet. */
  owner?: string;
  /** Made for raw block use only: no filesystem until a mount first needs one. */
  raw?: boolean;
}

/**
 * A QoS change from the API or qosctl: a new class, and per dimension a new explicit figure, or
 * null to drop the explicit figure (the class's figure, if any, applies again).
 */
export interface QosChange {
  class?: string;
  min?: Partial<Record<keyof Figures, number | null>>;
  max?: Partial<Record<keyof Figures, number | null>>;
  /** Latency targets in seconds; null removes one. */
  latency?: Partial<Record<Direction, number | null>>;
}


export interface VolumeServiceOptions {
  store: Store;
  pools: Map<string, VolumePool>;
  config: Pick<Config, 'classes' | 'defaults' | 'stateDir' | 'pools' | 'headroom'>;
  locks: KeyedLock;
  enforcer: Enforcer;
  log: Logger;
  /** Where the mount table is read. */
  root: HostRoot;
}

export class VolumeService {
  private readonly promiseListeners: (() => void)[] = [];

  constructor(private readonly o: VolumeServiceOptions) {}

  /** Called after a guarantee is admitted, changed or released (csi/capacity-publisher.ts). */
  onPromisesChanged(listener: () => void): void {
    this.promiseListeners.push(listener);
  }

  private promisesChanged(): void {
    for (const l of this.promiseListeners) l();
  }

  get(name: string): Volume {
    const v = this.o.store.volumes.get(name);
    if (!v) throw notFound(`volume ${name} not found`);
    return v;
  }

  list(): Volume[] {
    return this.o.store.volumes.list();
  }

  /** A class's figures overridden by explicit ones; InvalidArgument names what is wrong. */
  effectiveQos(cls: string, overrides: QosSpec): QosSpec {
    const classSpec = this.o.config.classes.get(cls);
    if (!classSpec) throw invalid(`class: "${cls}" is not a configured class (have: ${[...this.o.config.classes.keys()].join(', ')})`);
    const qos: QosSpec = { min: { ...classSpec.min, ...overrides.min }, max: { ...classSpec.max, ...overrides.max } };
    const latency = latencyOver(classSpec.latency, overrides.latency);
    if (latency) qos.latency = latency;
    const bad = checkSpec(qos);
    if (bad) throw invalid(`qos.${bad}`);
    return qos;
  }

  /** Checks a request and fills in defaults; throws InvalidArgument naming the field. */
  resolve(req: VolumeRequest): Required<Omit<VolumeRequest, 'qos' | 'owner' | 'raw'>> & { qos: QosSpec; overrides: QosSpec; owner: string | null; raw: boolean } {
    if (!VOLUME_NAME.test(req.name)) {
      throw invalid(`name: "${req.name}" must be lowercase letters, digits, '.', '_' or '-', start and end with a letter or digit, at most 200 characters`);
    }
    const d = this.o.config.defaults;
    const pool = req.pool ?? d.pool;
    if (!this.o.pools.has(pool)) throw invalid(`pool: "${pool}" is not a configured pool (have: ${[...this.o.pools.keys()].join(', ')})`);
    const cls = req.class ?? d.class;
    const overrides: QosSpec = { min: { ...req.qos?.min }, max: { ...req.qos?.max } };
    if (req.qos?.latency && Object.keys(req.qos.latency).length) overrides.latency = { ...req.qos.latency };
    const qos = this.effectiveQos(cls, overrides);
    const size = req.size ?? d.size;
    if (size < 1024 * 1024) throw invalid(`size: ${size} bytes is below the 1Mi minimum`);
    return { name: req.name, pool, size, fsType: req.fsType ?? d.fsType, class: cls, qos, overrides, ephemeral: req.ephemeral ?? false, owner: req.owner ?? null, raw: req.raw ?? false };
  }

  /**
   * The bytes a new volume of this request could get now: its pool's free bytes, or 0 (with the
   * admission's reason) when the pool could not admit its guarantees. Nothing is recorded.
   */
  /**
   * What the scheduler is told of a class on this node (CSI GetCapacity, published as
   * CSIStorageCapacity): `maxBytes`, the largest volume it could create now (0 while the class's
   * guarantee does not fit the device budget), and `bytes`, its space scaled by the part of the
   * device that may still be promised (all of it for a class without a guarantee), so that
   * capacity scoring prefers the node with the most device time left.
   */
  async capacityFor(req: VolumeRequest): Promise<{ bytes: number; maxBytes: number; refused?: string }> {
    const r = this.resolve(req);
    let room: AdmissionRoom | undefined;
    try {
      room = admit(this.o.store, this.o.config.headroom, { pool: this.poolConfig(r.pool), volume: r.name, before: {}, after: r.qos.min, latencyAfter: r.qos.latency });
    } catch (err) {
      if (err instanceof QosdError && err.code === 'ResourceExhausted') return { bytes: 0, maxBytes: 0, refused: err.message };
      throw err;
    }
    const free = await this.o.pools.get(r.pool)!.freeBytes();
    return { bytes: room && room.promisable > 0 ? Math.floor(free * Math.min(1, room.left / room.promisable)) : free, maxBytes: free };
  }

  private poolConfig(name: string): PoolConfig {
    return this.o.config.pools.find((p) => p.name === name)!;
  }

  async create(req: VolumeRequest, source: Source): Promise<Volume> {
    const r = this.resolve(req);
    return this.o.locks.run([lockKey.volume(r.name)], async (held) => {
      if (this.o.store.volumes.get(r.name)) throw new QosdError('AlreadyExists', `volume ${r.name} already exists`);
      return this.createLocked(held, r, source);
    });
  }

  /**
   * The volume named in the request, created if it does not exist yet (flex mount creates on first
   * use), under the volume's lock. `created` tells the caller to undo the create if its own
   * later steps fail.
   */
  async ensure(held: Held, req: VolumeRequest, source: Source, tenant?: string): Promise<{ volume: Volume; created: boolean }> {
    held.volume(req.name);
    const existing = this.o.store.volumes.get(req.name);
    if (!existing) return { volume: await this.createLocked(held, this.resolve(req), source), created: true };
    const namesQos = req.qos !== undefined || req.class !== undefined;
    // A tenant's mount (flex): its namespace's volume or nobody's (then claimed), its QoS as it is.
    if (tenant !== undefined) {
      checkTenantMount(existing, tenant, namesQos ? this.resolve(req) : undefined);
    }
    if (existing.state !== 'ready') {
      throw new QosdError('FailedPrecondition', `volume ${req.name} is ${existing.state}; retry once that finishes`);
    }
    if (req.pool !== undefined && req.pool !== existing.pool) {
      throw invalid(`pool: volume ${req.name} exists in pool ${existing.pool}, not ${req.pool}`);
    }
    if (req.fsType !== undefined && req.fsType !== existing.fsType) {
      throw invalid(`fsType: volume ${req.name} is formatted ${existing.fsType}, not ${req.fsType}`);
    }
    if (req.ephemeral !== undefined && req.ephemeral !== existing.ephemeral) {
      throw invalid(`ephemeral: volume ${req.name} exists with ephemeral=${existing.ephemeral}`);
    }
    if (req.size !== undefined && req.size < existing.sizeBytes) {
      throw invalid(`size: volume ${req.name} is ${existing.sizeBytes} bytes; it cannot shrink to ${req.size}`);
    }
    if (tenant !== undefined) return { volume: existing.owner === null ? this.claim(existing, tenant, source) : existing, created: false };
    // A CSI publish that names QoS (a PersistentVolume's volumeAttributes, which only the cluster's
    // admin writes) states what the volume should have now: an edited PV changes it at its next mount.
    if (namesQos) {
      const want = this.resolve(req);
      return { volume: this.commitQos(held, existing, want.class, want.overrides, source), created: false };
    }
    return { volume: existing, created: false };
  }

  /** The operator gives a volume to a namespace: flex mounts reach it from there alone. */
  async giveTo(name: string, namespace: string, source: Source): Promise<Volume> {
    return this.o.locks.run([lockKey.volume(name)], async () => {
      const v = this.get(name);
      if (v.owner === CSI_OWNER) throw new QosdError('FailedPrecondition', `volume ${name} belongs to its CSI PersistentVolume; it cannot be given to a namespace`);
      const owner = namespaceOwner(namespace);
      if (v.owner === owner) return v;
      return this.o.store.tx(() => {
        const out = this.o.store.volumes.update(name, { owner }, now());
        this.o.store.events.add({ time: now(), volume: name, kind: 'owner-changed', source, detail: { from: v.owner, to: owner } });
        return out;
      });
    });
  }

  /** A volume nobody owned, claimed by the namespace whose pod mounts it first. */
  private claim(v: Volume, namespace: string, source: Source): Volume {
    return this.o.store.tx(() => {
      const out = this.o.store.volumes.update(v.name, { owner: namespaceOwner(namespace) }, now());
      this.o.store.events.add({ time: now(), volume: v.name, kind: 'owner-claimed', source, detail: { namespace } });
      return out;
    });
  }

  private async createLocked(held: Held, r: ReturnType<VolumeService['resolve']>, source: Source): Promise<Volume> {
    held.volume(r.name);
    const pool = this.o.pools.get(r.pool)!;
    await pool.checkRoom(r.size);
    const t = now();
    const volume = this.o.store.tx(() => {
      admit(this.o.store, this.o.config.headroom, { pool: this.poolConfig(r.pool), volume: r.name, before: {}, after: r.qos.min, latencyAfter: r.qos.latency });
      const v = this.o.store.volumes.insert(
        {
          name: r.name, pool: r.pool, sizeBytes: r.size, fsType: r.fsType, class: r.class, ephemeral: r.ephemeral,
          state: 'creating', formatted: false, backing: null, device: null, deviceNumber: null, qos: r.qos, overrides: r.overrides, owner: r.owner,
        },
        t,
      );
      this.o.store.events.add({ time: t, volume: r.name, kind: 'volume-create-started', source, detail: { pool: r.pool, sizeBytes: r.size, fsType: r.fsType, class: r.class, qos: r.qos, ephemeral: r.ephemeral, owner: r.owner } });
      return v;
    });
    crashPoint('create:intent');
    let allocated = false;
    try {
      if (pool.exists(volume.name)) {
        throw new QosdError('FailedPrecondition', `${pool.backingFor(volume.name)} already exists and is not a volume qosd knows; refusing to use or remove it`);
      }
      // Recorded before it exists: if qosd dies while making it, the next start knows it is ours.
      this.o.store.volumes.update(volume.name, { backing: pool.backingFor(volume.name) }, now());
      const dev = await pool.create(volume.name, volume.sizeBytes);
      allocated = true;
      this.recordDevice(held, this.get(volume.name), dev);
      crashPoint('create:allocated');
      return await this.finishCreate(volume.name, dev.device, source, r.raw);
    } catch (err) {
      await this.undoCreate(volume.name, source, err, allocated);
      throw err;
    }
  }

  /**
   * Formats (unless blkid finds our filesystem already; a raw volume, not at all) and marks the
   * volume ready.
   */
  private async finishCreate(name: string, device: string, source: Source, raw = false): Promise<Volume> {
    if (!raw) await this.format(this.get(name), device);
    crashPoint('create:formatted');
    const created = this.o.store.tx(() => {
      const v = this.o.store.volumes.update(name, { state: 'ready', formatted: !raw }, now());
      this.o.store.events.add({ time: now(), volume: v.name, kind: 'volume-created', source, detail: { device: v.device, deviceNumber: v.deviceNumber } });
      return v;
    });
    this.promisesChanged();
    return created;
  }

  /**
   * Start-up recovery of a create that a stopped daemon left "creating": rolled forward when its
   * backing storage exists (formatted only if blank, so never twice), rolled back when it does not.
   */
  async recoverCreate(v: Volume): Promise<void> {
    await this.o.locks.run([lockKey.volume(v.name)], (held) => this.recoverCreateLocked(held, v));
  }

  private async recoverCreateLocked(held: Held, v: Volume): Promise<void> {
    const pool = this.o.pools.get(v.pool);
    if (!pool || !v.backing || !pool.exists(v.name)) {
      this.o.store.tx(() => {
        this.o.store.volumes.delete(v.name);
        this.o.store.events.add({ time: now(), volume: v.name, kind: 'volume-create-rolled-back', source: 'reconcile', detail: { reason: 'no storage was made before the daemon stopped' } });
      });
      return;
    }
    const dev = await pool.open(v);
    this.recordDevice(held, v, dev);
    await this.finishCreate(v.name, dev.device, 'reconcile');
  }

  /** Start-up recovery of a delete that a stopped daemon left "deleting": finish it. */
  async recoverDelete(v: Volume): Promise<void> {
    await this.o.locks.run([lockKey.volume(v.name)], async () => {
      await this.o.pools.get(v.pool)?.remove(v);
      this.o.store.tx(() => {
        this.o.store.volumes.delete(v.name);
        this.o.store.events.add({ time: now(), volume: v.name, kind: 'volume-deleted', source: 'reconcile', detail: { recovered: true } });
      });
    });
  }

  /**
   * A volume made for raw block use, mounted as a filesystem for the first time: formatted now,
   * under its lock, if blkid finds nothing on it (what a block user wrote is never formatted over).
   */
  async formatForMount(held: Held, v: Volume, device: string): Promise<Volume> {
    held.volume(v.name);
    if (v.formatted) return v;
    await this.format(v, device);
    return this.o.store.volumes.update(v.name, { formatted: true }, now());
  }

  /** Formats a new volume's device, unless blkid finds anything on it. */
  private async format(volume: Volume, device: string): Promise<void> {
    const { name, fsType } = volume;
    const found = await probeSignature(device);
    if (found === fsType) {
      // A create interrupted after mkfs: the filesystem is ours, keep it.
      this.o.log.info({ volume: name, device }, 'volume already carries its filesystem; not formatting');
      return;
    }
    if (found !== undefined) {
      throw new QosdError('FailedPrecondition', `device ${device} of new volume ${name} already holds ${found}; refusing to format it`);
    }
    // A thick pool hands out blocks an earlier volume wrote: they are zeroed before anything else,
    // so no pod ever reads another's old data (through the filesystem's free space, or raw). A
    // thin one (sparse files) has never-written blocks only, which read as zeros, and stays lazy.
    const thin = this.o.pools.get(volume.pool)!.thin;
    if (!thin) {
      const started = Date.now();
      await zeroDevice(device, volume.sizeBytes);
      this.o.log.info({ volume: name, device, sizeBytes: volume.sizeBytes, ms: Date.now() - started }, 'zeroed the new volume\'s device');
    }
    await makeFilesystem(device, fsType, { zeroInodeTables: !thin });
  }

  /** Takes back a failed create: the storage only if this create allocated it, then the row. */
  private async undoCreate(name: string, source: Source, cause: unknown, allocated: boolean): Promise<void> {
    const v = this.o.store.volumes.get(name);
    if (!v) return;
    try {
      if (allocated) await this.o.pools.get(v.pool)!.remove(v);
      this.o.store.tx(() => {
        this.o.store.volumes.delete(name);
        this.o.store.events.add({ time: now(), volume: name, kind: 'volume-create-undone', source, detail: { reason: (cause as Error).message } });
      });
    } catch (err) {
      // Left in state "creating": the next start finishes the undo.
      this.o.log.error({ volume: name, err: (err as Error).message }, 'could not undo a failed create');
    }
  }

  /** Where the volume's device is mounted right now (from mountinfo, not from SQLite). */
  mountPointsOf(v: Volume): string[] {
    if (!v.deviceNumber) return [];
    return readMountinfo(this.o.root).filter((m) => m.device === v.deviceNumber).map((m) => m.mountPoint);
  }

  async delete(name: string, source: Source): Promise<void> {
    await this.o.locks.run([lockKey.volume(name)], (held) => this.deleteLocked(held, name, source));
  }

  /** Deletes a volume that nothing has attached or mounted, under its lock. */
  async deleteLocked(held: Held, name: string, source: Source): Promise<void> {
    held.volume(name);
    const v = this.get(name);
    const atts = this.o.store.attachments.list(name);
    if (atts.length > 0) {
      throw new QosdError('InUse', `volume ${name} is attached at ${atts.map((a) => a.target).join(', ')}; unmount it first`);
    }
    const mounted = this.mountPointsOf(v);
    if (mounted.length > 0) {
      throw new QosdError('InUse', `volume ${name} is mounted at ${mounted.join(', ')} outside qosd; unmount it first`);
    }
    this.o.store.tx(() => {
      this.o.store.volumes.update(name, { state: 'deleting' }, now());
      this.o.store.events.add({ time: now(), volume: name, kind: 'volume-delete-started', source, detail: {} });
    });
    crashPoint('delete:intent');
    await this.o.pools.get(v.pool)!.remove(v);
    crashPoint('delete:removed');
    this.o.store.tx(() => {
      this.o.store.volumes.delete(name);
      this.o.store.events.add({ time: now(), volume: name, kind: 'volume-deleted', source, detail: {} });
    });
    this.promisesChanged();
  }

  /** Grows a volume (never shrinks) and its filesystem, mounted or not. */
  async resize(name: string, sizeBytes: number, source: Source): Promise<Volume> {
    return this.o.locks.run([lockKey.volume(name)], (held) => this.resizeLocked(held, name, sizeBytes, source));
  }

  async resizeLocked(held: Held, name: string, sizeBytes: number, source: Source): Promise<Volume> {
    held.volume(name);
    const v = this.get(name);
    if (sizeBytes < v.sizeBytes) throw invalid(`size: volume ${name} is ${v.sizeBytes} bytes; it cannot shrink to ${sizeBytes}`);
    if (sizeBytes === v.sizeBytes) return v;
    if (v.state !== 'ready') throw new QosdError('FailedPrecondition', `volume ${name} is ${v.state}`);
    this.o.store.events.add({ time: now(), volume: name, kind: 'volume-resize-started', source, detail: { from: v.sizeBytes, to: sizeBytes } });
    const dev = await this.o.pools.get(v.pool)!.grow(v, sizeBytes);
    this.recordDevice(held, v, dev);
    const mounted = this.mountPointsOf({ ...v, deviceNumber: dev.deviceNumber });
    if (!v.formatted) {
      // A raw block volume: no filesystem to grow; the device is bigger, and that is all.
    } else if (mounted.length > 0) {
      await growMountedFilesystem(dev.device, mounted[0]!, v.fsType);
    } else if (v.fsType === 'ext4') {
      await growUnmountedExt4(dev.device);
    } else {
      // xfs grows only while mounted: a private temporary mount gives it one.
      const tmp = path.join(this.o.config.stateDir, 'resize', name);
      fs.mkdirSync(tmp, { recursive: true, mode: 0o700 });
      await mountDevice(dev.device, tmp, v.fsType, false);
      try {
        await growMountedFilesystem(dev.device, tmp, v.fsType);
      } finally {
        await unmount(tmp);
        fs.rmdirSync(tmp);
      }
    }
    return this.o.store.tx(() => {
      const out = this.o.store.volumes.update(name, { sizeBytes }, now());
      this.o.store.events.add({ time: now(), volume: name, kind: 'volume-resized', source, detail: { from: v.sizeBytes, to: sizeBytes } });
      return out;
    });
  }

  /** Applies a QoS change to the volume and, at once, to every pod that mounts it. */
  async changeQos(name: string, change: QosChange, source: Source): Promise<Volume> {
    return this.o.locks.run([lockKey.volume(name)], async (held) => {
      const v = this.get(name);
      const overrides: QosSpec = { min: { ...v.overrides.min }, max: { ...v.overrides.max } };
      for (const side of ['min', 'max'] as const) {
        for (const d of DIMENSIONS) {
          const val = change[side]?.[d];
          if (val === null) delete overrides[side][d];
          else if (val !== undefined) overrides[side][d] = val;
        }
      }
      const latency: LatencyTargets = { ...v.overrides.latency };
      for (const dir of DIRECTIONS) {
        const val = change.latency?.[dir];
        if (val === null) delete latency[dir];
        else if (val !== undefined) latency[dir] = val;
      }
      if (Object.keys(latency).length) overrides.latency = latency;
      return this.commitQos(held, v, change.class ?? v.class, overrides, source);
    });
  }

  /**
   * Records a volume's new class and overrides, re-admitting raised guarantees in the same
   * transaction, then rewrites the rules of every attachment, under the volume's lock.
   */
  commitQos(held: Held, v: Volume, cls: string, overrides: QosSpec, source: Source): Volume {
    held.volume(v.name);
    const qos = this.effectiveQos(cls, overrides);
    if (cls === v.class && sameSpec(qos, v.qos) && sameSpec(overrides, v.overrides)) return v;
    const updated = this.o.store.tx(() => {
      admit(this.o.store, this.o.config.headroom, { pool: this.poolConfig(v.pool), volume: v.name, before: v.qos.min, after: qos.min, latencyBefore: v.qos.latency, latencyAfter: qos.latency });
      const out = this.o.store.volumes.update(v.name, { class: cls, qos, overrides }, now());
      this.o.store.events.add({
        time: now(), volume: v.name, kind: 'qos-changed', source,
        detail: { old: { class: v.class, qos: v.qos }, new: { class: cls, qos } },
      });
      return out;
    });
    for (const att of this.o.store.attachments.list(v.name)) {
      if (att.state === 'attached') this.o.enforcer.apply(att, updated, 'qos-change');
    }
    this.promisesChanged();
    return updated;
  }

  /**
   * Records where the volume's storage is now: its pool's device for it (a reboot re-attaches
   * loop devices under other numbers; a grow may change the device). The only writer of a
   * volume's backing, device and device number after the create's intent; writes only changes.
   */
  /**
   * The volume's device as its pool opens it now, recorded when it changed since the volume was
   * last seen (a reboot re-attaches loop devices under other numbers).
   */
  async openDevice(held: Held, v: Volume): Promise<{ dev: PoolDevice; volume: Volume }> {
    const dev = await this.o.pools.get(v.pool)!.open(v);
    return { dev, volume: this.recordDevice(held, v, dev) };
  }

  recordDevice(held: Held, v: Volume, dev: PoolDevice): Volume {
    held.volume(v.name);
    if (dev.device === v.device && dev.deviceNumber === v.deviceNumber && dev.backing === v.backing) return v;
    return this.o.store.volumes.update(v.name, { backing: dev.backing, device: dev.device, deviceNumber: dev.deviceNumber }, now());
  }

  /**
   * Finds a volume's device again once its recorded one turned out another's or gone (a loop
   * detached under qosd and its number given to another file): under the volume's lock its pool
   * opens it (a loop attached again when its file has none), and the new number is recorded on the
   * volume and its attachments, whose rules are then written for it. A volume that cannot be
   * opened (its file gone) is reported, and left for the operator.
   */
  async refind(name: string): Promise<void> {
    await this.o.locks.run([lockKey.volume(name)], async (held) => {
      const v = this.o.store.volumes.get(name);
      if (!v || v.state !== 'ready') return;
      const pool = this.o.pools.get(v.pool);
      if (!pool) return;
      if (v.deviceNumber && pool.identify(v, v.deviceNumber).is === 'ours') return; // found again meanwhile
      let dev: PoolDevice;
      try {
        dev = await pool.open(v);
      } catch (err) {
        this.o.store.events.add({ time: now(), volume: name, kind: 'device-refind-failed', source: 'reconcile', detail: { device: v.deviceNumber, reason: (err as Error).message } });
        this.o.log.error({ volume: name, err: (err as Error).message }, 'could not find the device of a volume again');
        return;
      }
      const updated = this.o.store.tx(() => {
        const out = this.recordDevice(held, v, dev);
        for (const att of this.o.store.attachments.list(name)) {
          if (att.device !== out.deviceNumber) this.o.store.attachments.update(att.id, { device: out.deviceNumber }, now());
        }
        this.o.store.events.add({ time: now(), volume: name, kind: 'device-refound', source: 'reconcile', detail: { from: v.deviceNumber, to: out.deviceNumber, device: out.device } });
        return out;
      });
      this.o.log.warn({ volume: name, from: v.deviceNumber, to: updated.deviceNumber, device: updated.device }, 'found the device of a volume again');
      for (const att of this.o.store.attachments.list(name)) {
        if (att.state === 'attached') this.o.enforcer.apply(att, updated, 'reconcile');
      }
    });
  }

  /** recordDevice under the volume's own lock (start-up recovery, which holds none). */
  async refreshDevice(name: string, dev: PoolDevice): Promise<boolean> {
    return this.o.locks.run([lockKey.volume(name)], async (held) => {
      const v = this.o.store.volumes.get(name);
      if (!v) return false;
      return this.recordDevice(held, v, dev) !== v;
    });
  }
}
