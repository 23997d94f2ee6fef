// Mounting a volume's device on a target through its pinned descriptor (targets.ts): on the very
// directory (or file) checked, whatever its path says meanwhile. Attach and mount repair both
// mount this way.
import { bindDevice, mountDevice, remountReadOnly, unmount } from '../host/mount';
import type { HostRoot } from '../host/host-root';
import type { AttachmentKind } from '../store/attachments';
import { pinTarget, refuseSymlinkOn } from './targets';

/**
 * Returns true once mounted (a read-only bind that fails its second step is mounted, and the
 * caller's undo takes it).
 */
export async function mountPinned(root: HostRoot, device: string, target: string, kind: AttachmentKind, fsType: string, readOnly: boolean): Promise<true> {
  const pinned = pinTarget(root, target, kind);
  try {
    if (kind === 'mount') {
      await mountDevice(device, pinned, fsType, readOnly);
      return true;
    }
    await bindDevice(device, pinned);
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
