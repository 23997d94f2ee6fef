// mount(8) and umount(8), through execFile. qosd mounts whole devices only, never with a shell.
import { run } from './exec';

export async function mountDevice(device: string, target: string, fsType: string, readOnly: boolean): Promise<void> {
  const opts = [readOnly ? 'ro' : 'rw', 'nodev', 'nosuid'];
  await run('mount', ['-t', fsType, '-o', opts.join(','), device, target], { timeoutMs: 60_000 });
}

export async function unmount(target: string): Promise<void> {
  await run('umount', [target], { timeoutMs: 60_000 });
}

/** A device node bind-mounted on a file: how a raw-block volume reaches a pod (the CSI block target). */
export async function bindDevice(device: string, targetFile: string, readOnly: boolean): Promise<void> {
  await run('mount', ['--bind', ...(readOnly ? ['-o', 'ro'] : []), device, targetFile], { timeoutMs: 60_000 });
}
