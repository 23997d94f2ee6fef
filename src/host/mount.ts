// mount(8) and umount(8), through execFile. qosd mounts whole devices only, never with a shell.
// A target given as /proc/<pid>/fd/<fd> (host/path-walk.ts) is taken as it is (--no-canonicalize):
// mount(8) would otherwise resolve it to a path again, and a path can be changed under it.
import { run } from './exec';

const asGiven = (target: string): string[] => (target.startsWith('/proc/') ? ['--no-canonicalize'] : []);

export async function mountDevice(device: string, target: string, fsType: string, readOnly: boolean): Promise<void> {
  const opts = [readOnly ? 'ro' : 'rw', 'nodev', 'nosuid'];
  await run('mount', [...asGiven(target), '-t', fsType, '-o', opts.join(','), device, target], { timeoutMs: 60_000 });
}

export async function unmount(target: string): Promise<void> {
  await run('umount', [target], { timeoutMs: 60_000 });
}

/** A device node bind-mounted on a file: how a raw-block volume reaches a pod (the CSI block target). */
export async function bindDevice(device: string, targetFile: string): Promise<void> {
  await run('mount', [...asGiven(targetFile), '--bind', device, targetFile], { timeoutMs: 60_000 });
}

/**
 * Makes a bind mount read-only: the second step of a read-only bind, which cannot be made through
 * /proc/<pid>/fd (that descriptor is the file under the new mount), so it is made at its path.
 */
export async function remountReadOnly(at: string): Promise<void> {
  await run('mount', ['-o', 'remount,bind,ro', at], { timeoutMs: 60_000 });
}
