// The file pool: one sparse file per volume under the pool's directory, attached as a loop device
// with direct IO. After a restart or reboot the loop device is found again by its backing file
// (or attached again), so the file is the volume's identity and the loop device is disposable.
// A file's loop is found by path first (sysfs, no exec) and then by the file's device and inode,
// before a new loop is ever attached: one file never gets two loop devices.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PoolDevice, VolumePool } from './pool';
import type { Volume } from '../store/volumes';
import type { HostRoot } from '../host/host-root';
import { attachLoop, detachLoop, fileIdentity, findLoops, findLoopsByFile, findLoopsByInode, loopIdentities, loopIdentitySync, loopsByBackingFile, refreshLoopCapacity } from '../host/losetup';
import { deviceOf, formatDevice } from '../host/block-device';
import { QosdError } from '../model/errors';
import type { DeviceIdentity } from '../model/device-identity';
import { humanBytes } from '../util/human';

export class FilePool implements VolumePool {
  readonly backend = 'file' as const;
  readonly thin = true;

  constructor(
    /** Where sysfs is (loop devices' backing files). */
    private readonly root: HostRoot,
    readonly name: string,
    readonly dir: string,
    /** How the config may grow the pool: make its directory, overcommit its free space. */
    private readonly limits: { create: boolean; overcommit: number } = { create: true, overcommit: 1 },
    /** The kernel's identity of a loop's file (losetup); tests over fixture trees give their own. */
    private readonly loopIdentity: (device: string) => string | undefined = loopIdentitySync,
  ) {}

  /** Loop identities asked of the kernel, by device number and the path its sysfs shows. */
  private readonly byKernel = new Map<string, string | undefined>();

  private identityByKernel(device: string, deviceNumber: string, backing: string): string | undefined {
    const key = `${deviceNumber}\0${backing}`;
    if (!this.byKernel.has(key)) {
      if (this.byKernel.size > 1000) this.byKernel.clear();
      this.byKernel.set(key, this.loopIdentity(device));
    }
    return this.byKernel.get(key);
  }

  /**
   * A loop device is the volume's when the file behind it (sysfs names it; its device and inode
   * tell) is the volume's file: a path alone could be a new file under the old name.
   */
  identify(volume: Pick<Volume, 'name' | 'backing'>, deviceNumber: string): DeviceIdentity {
    const sys = path.join(this.root.sys, 'dev', 'block', deviceNumber);
    let name: string;
    try {
      name = path.basename(fs.realpathSync(sys));
    } catch {
      return { is: 'gone', why: `there is no block device ${deviceNumber}` };
    }
    let backing: string;
    try {
      backing = fs.readFileSync(path.join(sys, 'loop', 'backing_file'), 'utf8').trim();
    } catch {
      return name.startsWith('loop')
        ? { is: 'gone', why: `loop device ${deviceNumber} (${name}) has no file attached` }
        : { is: 'other', why: `${deviceNumber} (${name}) is not a loop device` };
    }
    const file = volume.backing ?? this.fileOf(volume.name);
    const want = fileIdentity(file);
    // A path that exists nowhere here (a loop attached from a mount namespace that is gone): the
    // kernel's own record of the file's device and inode, asked once per loop and path.
    const atPath = fileIdentity(backing);
    const got = atPath ?? this.identityByKernel(`/dev/${name}`, deviceNumber, backing);
    if (want !== undefined && got === want) return { is: 'ours' };
    return { is: 'other', why: `loop device ${deviceNumber} (${name}) is backed by ${backing}${atPath === undefined ? ' (not found)' : ''}, not by ${file}${want === undefined ? ' (missing)' : ''}` };
  }

  async init(): Promise<void> {
    if (!this.limits.create && !fs.existsSync(this.dir)) throw new Error(`pool ${this.name}: ${this.dir} does not exist (is its filesystem mounted?)`);
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /**
   * Refuses a new volume of `sizeBytes` that the pool cannot give: more than its filesystem
   * holds at all (InvalidArgument, naming size and the limit), or more than its free space, times
   * the overcommit, less what the other volumes were promised and have not written
   * (ResourceExhausted).
   */
  async checkRoom(sizeBytes: number): Promise<void> {
    const st = await fs.promises.statfs(this.dir);
    const total = st.blocks * st.bsize;
    if (sizeBytes > total * this.limits.overcommit) {
      throw new QosdError('InvalidArgument', `size: ${humanBytes(sizeBytes)} is more than pool ${this.name} can ever hold (its filesystem at ${this.dir} is ${humanBytes(total)}${this.limits.overcommit > 1 ? `, overcommitted ${this.limits.overcommit}×` : ''})`);
    }
    const room = await this.freeBytes();
    if (sizeBytes > room) {
      throw new QosdError('ResourceExhausted', `size: ${humanBytes(sizeBytes)} does not fit pool ${this.name}: ${humanBytes(room)} can still be given (free space${this.limits.overcommit > 1 ? ` × ${this.limits.overcommit}` : ''}, less what its volumes were promised and have not written)`);
    }
  }

  async freeBytes(): Promise<number> {
    // Off the daemon's thread: a pool of thousands of volumes is as many stats.
    const st = await fs.promises.statfs(this.dir);
    const images = (await fs.promises.readdir(this.dir)).filter((f) => f.endsWith('.img'));
    const unwritten = await Promise.all(
      images.map((f) =>
        fs.promises.stat(path.join(this.dir, f)).then(
          (s) => Math.max(0, s.size - s.blocks * 512),
          () => 0, // removed meanwhile
        ),
      ),
    );
    const promised = unwritten.reduce((a, b) => a + b, 0);
    return Math.max(0, Math.floor(st.bavail * st.bsize * this.limits.overcommit) - promised);
  }

  fileOf(name: string): string {
    return path.join(this.dir, `${name}.img`);
  }

  backingFor(name: string): string {
    return this.fileOf(name);
  }

  exists(name: string): boolean {
    return fs.existsSync(this.fileOf(name));
  }

  async create(name: string, sizeBytes: number): Promise<PoolDevice> {
    const file = this.fileOf(name);
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new QosdError('FailedPrecondition', `${file} already exists and is not a volume qosd knows; refusing to use or remove it`);
      }
      throw err;
    }
    try {
      fs.ftruncateSync(fd, sizeBytes); // sparse: no blocks are written
      fs.closeSync(fd);
      // A file made just now has no loop device yet: no need to look for one.
      return this.device(await attachLoop(file), file);
    } catch (err) {
      // Undo our own half-made file; nothing else can have used it yet.
      try { fs.closeSync(fd); } catch { /* already closed */ }
      for (const dev of findLoopsByFile(file, this.root)) await detachLoop(dev).catch(() => undefined);
      fs.rmSync(file, { force: true });
      throw err;
    }
  }

  async open(volume: Volume): Promise<PoolDevice> {
    const file = volume.backing ?? this.fileOf(volume.name);
    if (!fs.existsSync(file)) throw new Error(`backing file ${file} of volume ${volume.name} is missing`);
    return this.attach(file, volume.device);
  }

  async openAll(volumes: Volume[]): Promise<Map<string, PoolDevice>> {
    const byPath = loopsByBackingFile(this.root);
    let byInode: Map<string, string> | undefined; // identity → loop, listed once if needed
    const out = new Map<string, PoolDevice>();
    for (const v of volumes) {
      const file = v.backing ?? this.fileOf(v.name);
      if (!fs.existsSync(file)) continue;
      let known = byPath.get(file)?.find((d) => this.isLoopOf(d, file));
      if (!known) {
        byInode ??= new Map([...(await loopIdentities())].map(([dev, id]) => [id, dev]));
        known = byInode.get(fileIdentity(file) ?? '');
      }
      out.set(v.name, known ? this.device(known, file) : this.device(await attachLoop(file), file));
    }
    return out;
  }

  async grow(volume: Volume, newSizeBytes: number): Promise<PoolDevice> {
    const file = volume.backing ?? this.fileOf(volume.name);
    const { size } = fs.statSync(file);
    if (newSizeBytes > size) fs.truncateSync(file, newSizeBytes);
    const dev = await this.attach(file, volume.device);
    await refreshLoopCapacity(dev.device);
    return dev;
  }

  async remove(volume: Pick<Volume, 'name' | 'backing'>): Promise<void> {
    const file = volume.backing ?? this.fileOf(volume.name);
    for (const dev of await findLoops(file, this.root)) await detachLoop(dev);
    fs.rmSync(file, { force: true });
  }

  /**
   * The loop device backed by `file`, attaching one if there is none. The device SQLite last
   * recorded is checked first (one sysfs read and two stats): scanning every loop device costs a
   * read each, and a node with a thousand volumes has a thousand of them. A loop found by path is
   * taken only when the file behind it is this file (a path can name a new file now).
   */
  private async attach(file: string, recorded?: string | null): Promise<PoolDevice> {
    const device = (recorded && this.isLoopOf(recorded, file) ? recorded : undefined) ?? (await this.loopsOf(file))[0] ?? (await attachLoop(file));
    return this.device(device, file);
  }

  /** Whether the loop device node `dev` has `file` behind it now (its device and inode). */
  private isLoopOf(dev: string, file: string): boolean {
    try {
      return this.identify({ name: '', backing: file }, formatDevice(deviceOf(dev))).is === 'ours';
    } catch {
      return false; // no such device node
    }
  }

  /** The loop devices of `file`: found by path and confirmed, or found by inode (losetup). */
  private async loopsOf(file: string): Promise<string[]> {
    return [...new Set([...findLoopsByFile(file, this.root).filter((d) => this.isLoopOf(d, file)), ...(await findLoopsByInode(file))])].sort();
  }

  private device(device: string, file: string): PoolDevice {
    return { device, deviceNumber: formatDevice(deviceOf(device)), backing: file };
  }
}
