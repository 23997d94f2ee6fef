// The lvm pool: a volume group on the node's NVMe namespaces; each volume is a logical volume
// (linear, or striped across the PVs when the pool says `stripes`). Cgroup rules target the LV's
// device-mapper device, the device the pod's filesystem actually sits on.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PoolDevice, VolumePool } from './pool';
import type { Volume } from '../store/volumes';
import * as lvm from '../host/lvm';
import { deviceOf, formatDevice } from '../host/block-device';
import { probeSignature } from '../host/filesystem';
import { readMountinfo } from '../host/mountinfo';
import type { HostRoot } from '../host/host-root';
import { QosdError } from '../model/errors';
import type { DeviceIdentity } from '../model/device-identity';
import { humanBytes } from '../util/human';

export class LvmPool implements VolumePool {
  readonly backend = 'lvm' as const;
  readonly thin = false;

  constructor(
    /** Where sysfs (dm names and uuids, holders) and this process's mount table are. */
    private readonly root: HostRoot,
    readonly name: string,
    readonly volumeGroup: string,
    readonly devices: string[],
    readonly stripes = 1,
  ) {}

  /**
   * A dm device is the volume's LV when device-mapper names it so (`vg-lv`, each dash in the names
   * doubled, as LVM names its dm devices) and LVM made it (its uuid starts with LVM-).
   */
  identify(volume: Pick<Volume, 'name' | 'backing'>, deviceNumber: string): DeviceIdentity {
    const dm = path.join(this.root.sys, 'dev', 'block', deviceNumber, 'dm');
    if (!fs.existsSync(path.join(this.root.sys, 'dev', 'block', deviceNumber))) return { is: 'gone', why: `there is no block device ${deviceNumber}` };
    let name: string;
    let uuid: string;
    try {
      name = fs.readFileSync(path.join(dm, 'name'), 'utf8').trim();
      uuid = fs.readFileSync(path.join(dm, 'uuid'), 'utf8').trim();
    } catch {
      return { is: 'other', why: `${deviceNumber} is not a device-mapper device` };
    }
    const want = `${this.volumeGroup.replace(/-/g, '--')}-${volume.name.replace(/-/g, '--')}`;
    if (name === want && uuid.startsWith('LVM-')) return { is: 'ours' };
    return { is: 'other', why: `${deviceNumber} is device-mapper device ${name}, not LV ${this.backingFor(volume.name)}` };
  }

  async init(): Promise<void> {
    // Nothing to do: an uninitialized pool starts fine and says so on first use (qosctl pool init).
  }

  backingFor(name: string): string {
    return `${this.volumeGroup}/${name}`;
  }

  exists(name: string): boolean {
    return fs.existsSync(`/dev/${this.volumeGroup}/${name}`);
  }

  /** The volume group's free extents (LVs are thick: what is allocated is taken). 0 before pool init. */
  async freeBytes(): Promise<number> {
    return (await lvm.getVG(this.volumeGroup))?.freeBytes ?? 0;
  }

  async checkRoom(sizeBytes: number): Promise<void> {
    const vg = await lvm.getVG(this.volumeGroup);
    if (!vg) return; // create says how to build it
    if (sizeBytes > vg.sizeBytes) throw new QosdError('InvalidArgument', `size: ${humanBytes(sizeBytes)} is more than pool ${this.name} can ever hold (volume group ${this.volumeGroup} is ${humanBytes(vg.sizeBytes)})`);
    if (sizeBytes > vg.freeBytes) throw new QosdError('ResourceExhausted', `size: ${humanBytes(sizeBytes)} does not fit pool ${this.name}: ${humanBytes(vg.freeBytes)} of volume group ${this.volumeGroup} is free`);
  }

  async initialized(): Promise<boolean> {
    return (await lvm.getVG(this.volumeGroup)) !== undefined;
  }

  /**
   * Builds the volume group on the pool's devices. A device that holds any signature (filesystem,
   * partition table, another PV) is refused unless `force`; one that is mounted or in use by
   * device-mapper is refused always. Idempotent: an existing VG on these devices is success.
   */
  async initialize(devices: string[], force: boolean): Promise<lvm.VolumeGroup> {
    const existing = await lvm.getVG(this.volumeGroup);
    if (existing) return existing;
    if (devices.length === 0) throw new QosdError('InvalidArgument', `devices: pool ${this.name} has no devices (set pools[].devices or pass --devices)`);
    const mounts = readMountinfo(this.root);
    for (const dev of devices) {
      if (!fs.existsSync(dev)) throw new QosdError('InvalidArgument', `devices: ${dev} does not exist`);
      const number = formatDevice(deviceOf(dev));
      const name = dev.split('/').pop()!;
      const holdersDir = path.join(this.root.sys, 'block', name, 'holders');
      const holders = fs.existsSync(holdersDir) ? fs.readdirSync(holdersDir) : [];
      if (mounts.some((m) => m.device === number) || holders.length > 0) {
        throw new QosdError('FailedPrecondition', `${dev} is in use (${holders.length ? `held by ${holders.join(', ')}` : 'mounted'}); refusing it even with --force`);
      }
      const sig = await probeSignature(dev);
      if (sig !== undefined && !force) {
        throw new QosdError('FailedPrecondition', `${dev} holds ${sig}; refusing to put it in pool ${this.name} (use --force to destroy it)`);
      }
    }
    await lvm.createVG(this.volumeGroup, devices, force);
    return (await lvm.getVG(this.volumeGroup))!;
  }

  async create(name: string, sizeBytes: number, opts: { spread?: boolean } = {}): Promise<PoolDevice> {
    const vg = await lvm.getVG(this.volumeGroup);
    if (!vg) {
      throw new QosdError('FailedPrecondition', `pool ${this.name} has no volume group ${this.volumeGroup} yet; run: qosctl pool init ${this.name}`);
    }
    if (this.exists(name)) throw new QosdError('FailedPrecondition', `LV ${this.backingFor(name)} already exists and is not a volume qosd knows; refusing to use or remove it`);
    await lvm.createLV(this.volumeGroup, name, sizeBytes, opts.spread ? vg.pvCount : this.stripes);
    return this.device(name);
  }

  async open(volume: Volume): Promise<PoolDevice> {
    if (!this.exists(volume.name)) await lvm.activateLV(this.volumeGroup, volume.name);
    return this.device(volume.name);
  }

  async openAll(volumes: Volume[]): Promise<Map<string, PoolDevice>> {
    const out = new Map<string, PoolDevice>();
    if (volumes.length === 0 || !(await this.initialized())) return out;
    const lvs = new Map((await lvm.listLVs(this.volumeGroup)).map((lv) => [lv.name, lv]));
    for (const v of volumes) {
      const lv = lvs.get(v.name);
      if (!lv) continue;
      if (!lv.active) await lvm.activateLV(this.volumeGroup, v.name);
      out.set(v.name, this.device(v.name));
    }
    return out;
  }

  async grow(volume: Volume, newSizeBytes: number): Promise<PoolDevice> {
    const lv = (await lvm.listLVs(this.volumeGroup)).find((l) => l.name === volume.name);
    if (!lv) throw new QosdError('NotFound', `LV ${this.backingFor(volume.name)} not found`);
    if (lv.sizeBytes < newSizeBytes) await lvm.extendLV(this.volumeGroup, volume.name, newSizeBytes);
    return this.device(volume.name);
  }

  async remove(volume: Pick<Volume, 'name' | 'backing'>): Promise<void> {
    if (!(await this.initialized())) return;
    const lvs = await lvm.listLVs(this.volumeGroup);
    if (lvs.some((l) => l.name === volume.name)) await lvm.removeLV(this.volumeGroup, volume.name);
  }

  private device(name: string): PoolDevice {
    const path = `/dev/${this.volumeGroup}/${name}`;
    return { device: path, deviceNumber: formatDevice(deviceOf(path)), backing: this.backingFor(name) };
  }
}
