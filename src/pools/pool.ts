// A volume pool: where volumes' blocks come from. The service records intent before calling any
// of these, and each call is idempotent so an interrupted operation can simply be run again.
import type { Volume } from '../store/volumes';

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
  /** Makes the pool usable (directories, checks); called once at start. */
  init(): Promise<void>;
  /**
   * Allocates `sizeBytes` for a new volume and returns its device. Refuses (without touching it)
   * when storage under that name already exists: it is not ours to format or to remove.
   */
  create(name: string, sizeBytes: number): Promise<PoolDevice>;
  /** The device of an existing volume, re-activating it if the node lost it (reboot). */
  open(volume: Volume): Promise<PoolDevice>;
  /** Grows the device; the caller grows the filesystem. */
  grow(volume: Volume, newSizeBytes: number): Promise<PoolDevice>;
  /** Releases everything the volume held. Succeeds when there is nothing left to release. */
  remove(volume: Pick<Volume, 'name' | 'backing'>): Promise<void>;
}
