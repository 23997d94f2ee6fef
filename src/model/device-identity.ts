// Whose a block device is now. A volume's device number is recorded when its pool opens it, but
// the kernel reuses numbers: a loop device detached under qosd (an operator, a crash) is given
// to the next file attached, and a removed LV's dm number to the next LV. Before a rule is written
// or cleared for a number, the pool checks against the kernel's own record of what backs it.

export type DeviceIdentity =
  /** The volume's device, as the kernel says now. */
  | { is: 'ours' }
  /** No such device, or a loop device with nothing attached: nobody's (a rule of ours on it may go). */
  | { is: 'gone'; why: string }
  /** Another's device (another file behind the loop, another LV): never written or cleared for this volume. */
  | { is: 'other'; why: string };
