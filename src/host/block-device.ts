// Block-device identity: the MAJ:MIN that cgroup rules name. st_rdev is decoded with the Linux
// split (glibc gnu_dev_major/minor): major = bits 8-19 and 32-43, minor = bits 0-7 and 20-31.
// `rdev / 256` is wrong once a minor reaches 256 (a bug two competing drivers ship).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HostRoot } from './host-root';

export interface DeviceNumber {
  major: number;
  minor: number;
}

export function decodeRdev(rdev: bigint): DeviceNumber {
  // The masks are 32-bit as in glibc: the high major bits (32-43) must not leak into the minor.
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n);
  return { major: Number(major), minor: Number(minor) };
}

export function encodeRdev({ major, minor }: DeviceNumber): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & 0xfffff000n) << 32n) | (mi & 0xffn) | ((mi & 0xffffff00n) << 12n);
}

export function formatDevice(d: DeviceNumber): string {
  return `${d.major}:${d.minor}`;
}

export function parseDevice(s: string): DeviceNumber | undefined {
  const m = /^(\d+):(\d+)$/.exec(s.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

/** The device number of a block device node; throws if the path is not a block device. */
export function deviceOf(devPath: string): DeviceNumber {
  const st = fs.statSync(devPath, { bigint: true });
  if (!st.isBlockDevice()) throw new Error(`${devPath} is not a block device`);
  return decodeRdev(st.rdev);
}

/**
 * True when MAJ:MIN is a whole disk (loop, dm, nvme namespace), false for a partition. cgroup v2
 * rejects partitions with ENODEV and v1 silently never matches them, so qosd refuses them early.
 */
export function isWholeDisk(root: HostRoot, d: DeviceNumber): boolean {
  const dir = path.join(root.sys, 'dev', 'block', formatDevice(d));
  if (!fs.existsSync(dir)) throw new Error(`no block device ${formatDevice(d)} under ${root.sys}/dev/block`);
  return !fs.existsSync(path.join(dir, 'partition'));
}

/**
 * The MAJ:MIN a path's node lives on now, as one stat: the filesystem's device (st_dev) for a
 * file or directory, the node's own (st_rdev) for a block device node. A mount point answers with
 * its mounted device, so this tells whether a volume is mounted there without reading mountinfo.
 */
export function deviceAt(p: string): string {
  const st = fs.statSync(p, { bigint: true });
  return formatDevice(decodeRdev(st.isBlockDevice() ? st.rdev : st.dev));
}
