// NVMe discovery against sysfs and systeminformation output captured in the test VM
// (fixtures/nvme-vm/CAPTURED says when and how).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { nvmeNamespaces, readNamespace, type SiBlockDevice } from '../../src/host/nvme';
import { hostRoot } from '../../src/host/host-root';

const FIX = path.resolve(__dirname, '../../fixtures/nvme-vm');
const SYS = hostRoot({ sys: path.join(FIX, 'sys') });
const si = JSON.parse(fs.readFileSync(path.join(FIX, 'si-blockDevices.json'), 'utf8')) as SiBlockDevice[];

describe('NVMe discovery', () => {
  it('reads a namespace from sysfs: controller, model, serial, firmware, size, block size, MAJ:MIN', () => {
    expect(readNamespace(SYS, 'nvme0n1')).toEqual({
      name: 'nvme0n1',
      device: '/dev/nvme0n1',
      deviceNumber: fs.readFileSync(path.join(FIX, 'sys/block/nvme0n1/dev'), 'utf8').trim(),
      controller: 'nvme0',
      model: 'QEMU NVMe Ctrl',
      serial: 'QOSDNVME0',
      firmware: fs.readFileSync(path.join(FIX, 'sys/block/nvme0n1/device/firmware_rev'), 'utf8').trim(),
      sizeBytes: 2 * 2 ** 30,
      logicalBlockSize: 512,
    });
    expect(readNamespace(SYS, 'nvme9n1')).toBeUndefined();
  });

  it('lists the namespaces systeminformation reports, enriched from sysfs', () => {
    const list = nvmeNamespaces(SYS, si);
    expect(list.map((n) => [n.name, n.serial, n.sizeBytes])).toEqual([
      ['nvme0n1', 'QOSDNVME0', 2 * 2 ** 30],
      ['nvme1n1', 'QOSDNVME1', 2 * 2 ** 30],
    ]);
    expect(list.every((n) => /^259:\d+$/.test(n.deviceNumber))).toBe(true);
  });

  it('still finds them from sysfs when lsblk (and so systeminformation) returns nothing', () => {
    expect(nvmeNamespaces(SYS, []).map((n) => n.name)).toEqual(['nvme0n1', 'nvme1n1']);
  });

  it('ignores non-NVMe devices and partitions', () => {
    const mixed: SiBlockDevice[] = [...si, { name: 'vda', type: 'disk', size: 1 }, { name: 'nvme0n1p1', type: 'part', size: 1 }];
    expect(nvmeNamespaces(SYS, mixed).map((n) => n.name)).toEqual(['nvme0n1', 'nvme1n1']);
  });
});
