// A volume pool: where volumes' blocks come from. The service records intent before calling any
// of these, and each call is idempotent so an interrupted operation can simply be run again.
import type { Volume } from '../store/volumes';
import type { DeviceIdentity } from '../model/device-identity';

export interface PoolDevice {
  /** Device node, e.g. /dev/loop3 or /dev/qosd-nvme/vol. */
  device: string;
  /** MAJ:MIN of that node. */
  deviceNumber: string;
  /** What holds the data: the backing file or the LV path. */
  backing: string;
}

export interface VolumePool {
  readonly name: string;
  readonly backend: 'file' | 'lvm';
  /**
   * True when a volume's blocks are only taken as they are written (a sparse file): writing its
   * ext4 inode tables at mkfs would take the space up front, so they are left to the kernel.
   */
  readonly thin: boolean;
  /** Where a volume of this name keeps its data; recorded before create() so recovery knows. */
  backingFor(name: string): string;
  /** True when storage under that name exists already (then create() would refuse). */
  exists(name: string): boolean;
  /** Makes the pool usable (directories, checks); called once at start. */
  init(): Promise<void>;
  /**
   * Allocates `sizeBytes` for a new volume and returns its device. Refuses (without touching it)
   * when storage under that name already exists: it is not ours to format or to remove.
   * `spread`: use every device of the pool at once (a calibration's scratch volume measures the
   * whole pool, not one device).
   */
  create(name: string, sizeBytes: number, opts?: { spread?: boolean }): Promise<PoolDevice>;
  /** The device of an existing volume, re-activating it if the node lost it (reboot). */
  open(volume: Volume): Promise<PoolDevice>;
  /** open() for many volumes at once (start-up): one look at the node, then what is missing. */
  openAll(volumes: Volume[]): Promise<Map<string, PoolDevice>>;
  /** Grows the device; the caller grows the filesystem. */
  grow(volume: Volume, newSizeBytes: number): Promise<PoolDevice>;
  /**
   * The bytes a new volume can still be given: free space less what thin (sparse) volumes were
   * promised and have not written yet, so the pool never promises the same bytes twice.
   */
  freeBytes(): Promise<number>;
  /**
   * Whether the block device `deviceNumber` (MAJ:MIN) is the volume's now, from the kernel's own
   * record of what backs it (sysfs and stat only: asked before rules are written or cleared).
   */
  identify(volume: Pick<Volume, 'name' | 'backing'>, deviceNumber: string): DeviceIdentity;
  /**
   * Refuses a new volume of `sizeBytes` the pool cannot give, naming size and the limit: more than
   * it can ever hold (InvalidArgument), or more than it has left (ResourceExhausted).
   */
  checkRoom(sizeBytes: number): Promise<void>;
  /** Releases everything the volume held. Succeeds when there is nothing left to release. */
  remove(volume: Pick<Volume, 'name' | 'backing'>): Promise<void>;
}
