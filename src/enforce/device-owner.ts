// Whose a device number is when a rule is about to be written or cleared for it: the volume the
// store records with that number, if the kernel confirms the device is that volume's now (its
// pool's identify). A recorded number the kernel has given to another file or LV belongs to
// nobody of ours: no rule is written for it and none cleared, and the volume is reported so that
// its device is found again. Answers are kept for one pass: a device is asked about once.
import type { Store } from '../store/store';
import type { Volume } from '../store/volumes';
import type { DeviceIdentity } from '../model/device-identity';

export interface DeviceOwner {
  /** The volume whose device this is, confirmed; undefined: none of ours. */
  volume: Volume | undefined;
  /** Recorded for a volume of ours, but no device of anyone's now (a rule of ours on it may go). */
  free: boolean;
  /** How many volumes the store records with this number (more than one: a stale record). */
  claimants: number;
}

export type Identify = (vol: Volume, deviceNumber: string) => DeviceIdentity;
export type OnMismatch = (vol: Volume, deviceNumber: string, id: Exclude<DeviceIdentity, { is: 'ours' }>) => void;

export class DeviceOwners {
  private readonly known = new Map<string, DeviceOwner>();

  constructor(
    private readonly store: Store,
    /** undefined: a recorded number is taken as its volume's (fixture trees, with no devices). */
    private readonly identify: Identify | undefined,
    private readonly onMismatch: OnMismatch | undefined,
  ) {}

  of(device: string): DeviceOwner {
    let owner = this.known.get(device);
    if (!owner) {
      owner = this.find(device);
      this.known.set(device, owner);
    }
    return owner;
  }

  private find(device: string): DeviceOwner {
    const claimants = this.store.volumes.byDeviceNumber(device);
    if (!this.identify) return { volume: claimants[0], free: false, claimants: claimants.length };
    let free = claimants.length > 0;
    let volume: Volume | undefined;
    for (const v of claimants) {
      const id = this.identify(v, device);
      if (id.is === 'ours') {
        volume ??= v;
        continue;
      }
      this.onMismatch?.(v, device, id);
      if (id.is === 'other') free = false;
    }
    return volume ? { volume, free: false, claimants: claimants.length } : { volume: undefined, free, claimants: claimants.length };
  }
}
