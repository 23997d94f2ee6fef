// NVMe namespaces on the node: systeminformation's block-device list (lsblk), enriched from sysfs
// (model, serial and firmware of the controller, size, logical block size, MAJ:MIN), read under a
// configurable root so tests run against trees captured from the VM's emulated NVMe.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HostRoot } from './host-root';

export interface SiBlockDevice {
  name: string;
  type: string;
  size: number;
  protocol?: string;
  model?: string;
  serial?: string;
}

export interface NvmeNamespace {
  name: string; // nvme0n1
  device: string; // /dev/nvme0n1
  deviceNumber: string; // 259:0
  controller: string; // nvme0
  model: string;
  serial: string;
  firmware: string;
  sizeBytes: number;
  logicalBlockSize: number;
}

const NAMESPACE = /^nvme(\d+)n(\d+)$/;

function readAttr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

/** One namespace from sysfs; undefined when <sys>/block/<name> is not there. */
export function readNamespace(root: HostRoot, name: string): NvmeNamespace | undefined {
  const block = path.join(root.sys, 'block', name);
  const dev = readAttr(path.join(block, 'dev'));
  if (!dev) return undefined;
  // The namespace's `device` is the controller (nvme0), which carries model, serial, firmware.
  const ctrl = path.join(block, 'device');
  const controller = readAttr(path.join(ctrl, 'uevent')).match(/^DEVNAME=(\S+)$/m)?.[1] ?? `nvme${NAMESPACE.exec(name)?.[1] ?? ''}`;
  return {
    name,
    device: `/dev/${name}`,
    deviceNumber: dev,
    controller,
    model: readAttr(path.join(ctrl, 'model')),
    serial: readAttr(path.join(ctrl, 'serial')),
    firmware: readAttr(path.join(ctrl, 'firmware_rev')),
    sizeBytes: Number(readAttr(path.join(block, 'size')) || 0) * 512,
    logicalBlockSize: Number(readAttr(path.join(block, 'queue', 'logical_block_size')) || 512),
  };
}

/**
 * The NVMe namespaces among systeminformation's block devices (whole disks named nvmeXnY, or with
 * lsblk's transport "nvme"), each read from sysfs. Names sysfs has but lsblk missed (lsblk absent,
 * a slim image) are added from sysfs's block directory, so discovery never silently comes back empty.
 */
export function nvmeNamespaces(root: HostRoot, si: SiBlockDevice[]): NvmeNamespace[] {
  const names = new Set(si.filter((d) => d.type === 'disk' && (NAMESPACE.test(d.name) || d.protocol === 'nvme')).map((d) => d.name));
  try {
    for (const n of fs.readdirSync(path.join(root.sys, 'block'))) if (NAMESPACE.test(n)) names.add(n);
  } catch {
    /* no sysfs under this root */
  }
  return [...names]
    .sort()
    .map((n) => readNamespace(root, n))
    .filter((n): n is NvmeNamespace => n !== undefined);
}
