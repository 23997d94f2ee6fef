// mount(8) and umount(8), through execFile. qosd mounts whole devices only, never with a shell.
// A pinned target (host/path-walk.ts: an open descriptor's <proc>/<pid>/fd/<fd>) is taken as it
// is (--no-canonicalize): mount(8) would otherwise resolve it to a path again, and a path can be
// changed under it.
import { run } from './exec';
import type { Pinned } from './path-walk';

/** Where to mount: a path, or a pinned directory or file taken by its descriptor. */
export type MountTarget = string | Pick<Pinned, 'procPath'>;

/** The target as mount(8) is to be given it, with the flags that keep it as given. */
function where(target: MountTarget): { flags: string[]; path: string } {
  return typeof target === 'string' ? { flags: [], path: target } : { flags: ['--no-canonicalize'], path: target.procPath };
}

export async function mountDevice(device: string, target: MountTarget, fsType: string, readOnly: boolean): Promise<void> {
  const opts = [readOnly ? 'ro' : 'rw', 'nodev', 'nosuid'];
  const at = where(target);
  await run('mount', [...at.flags, '-t', fsType, '-o', opts.join(','), device, at.path], { timeoutMs: 60_000 });
}

export async function unmount(target: string): Promise<void> {
  await run('umount', [target], { timeoutMs: 60_000 });
}

/** A device node bind-mounted on a file: how a raw-block volume reaches a pod (the CSI block target). */
export async function bindDevice(device: string, targetFile: MountTarget): Promise<void> {
  const at = where(targetFile);
  await run('mount', [...at.flags, '--bind', device, at.path], { timeoutMs: 60_000 });
}

/**
 * Makes a bind mount read-only: the second step of a read-only bind, which cannot be made through
 * its descriptor (that descriptor is the file under the new mount), so it is made at its path.
 */
export async function remountReadOnly(at: string): Promise<void> {
  await run('mount', ['-o', 'remount,bind,ro', at], { timeoutMs: 60_000 });
}
