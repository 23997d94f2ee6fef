// What the machine running the tests can do, and skip notes that say what is missing.
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';

export const isRoot = process.getuid?.() === 0;

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore', env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' } });
    return true;
  } catch {
    return false;
  }
}

export const hasV1Blkio = fs.existsSync('/sys/fs/cgroup/blkio/blkio.throttle.read_iops_device');

/** Why the node-level tests cannot run here, or undefined when they can. */
export function nodeTestBlocker(): string | undefined {
  if (!isRoot) return 'needs root (loop devices, mount, cgroup writes); run the suite as root to include it';
  if (!hasV1Blkio) return 'needs the cgroup v1 blkio controller at /sys/fs/cgroup/blkio';
  for (const c of ['losetup', 'mkfs.ext4', 'blkid', 'mount', 'umount', 'dd']) if (!has(c)) return `needs ${c}`;
  return undefined;
}

export const hasXfs = has('mkfs.xfs');
