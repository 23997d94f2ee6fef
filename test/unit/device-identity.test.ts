// The pools' answer to "is this device number the volume's now?", over a sysfs tree laid out as
// the kernel lays it out (/sys/dev/block/MAJ:MIN a link to the device's directory; a bound loop
// device has loop/backing_file, a dm device dm/name and dm/uuid), made here without root.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FilePool } from '../../src/pools/file';
import { LvmPool } from '../../src/pools/lvm';
import { fileIdentity } from '../../src/host/losetup';
import { hostRoot } from '../../src/host/host-root';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-identity-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function device(sys: string, number: string, name: string, files: Record<string, string>): void {
  const devDir = path.join(sys, 'devices', 'virtual', 'block', name);
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(devDir, f)), { recursive: true });
    fs.writeFileSync(path.join(devDir, f), text);
  }
  fs.mkdirSync(devDir, { recursive: true });
  fs.mkdirSync(path.join(sys, 'dev', 'block'), { recursive: true });
  fs.symlinkSync(path.relative(path.join(sys, 'dev', 'block'), devDir), path.join(sys, 'dev', 'block', number));
}

describe('file pool: a loop device is the volume\'s when its backing file is the volume\'s file (device and inode)', () => {
  const sys = path.join(dir, 'sys-file');
  const poolDir = path.join(dir, 'pool');
  fs.mkdirSync(poolDir, { recursive: true });
  const mine = path.join(poolDir, 'db.img');
  const foreign = path.join(dir, 'foreign.img');
  const replaced = path.join(poolDir, 'old.img');
  for (const f of [mine, foreign, replaced]) fs.writeFileSync(f, '');
  device(sys, '7:1', 'loop1', { 'loop/backing_file': `${mine}\n` });
  device(sys, '7:2', 'loop2', { 'loop/backing_file': `${foreign}\n` });
  device(sys, '7:3', 'loop3', {}); // no file attached
  device(sys, '8:0', 'sda', {});
  // The kernel's answer for a loop whose path is found nowhere: loop4's file is gone.
  const pool = new FilePool(hostRoot({ sys }), 'default', poolDir, undefined, () => undefined);
  const vol = { name: 'db', backing: mine };

  it('ours, another file\'s, nobody\'s, not a loop device at all, no device', () => {
    expect(pool.identify(vol, '7:1')).toEqual({ is: 'ours' });
    expect(pool.identify(vol, '7:2')).toEqual({ is: 'other', why: `loop device 7:2 (loop2) is backed by ${foreign}, not by ${mine}` });
    expect(pool.identify(vol, '7:3')).toEqual({ is: 'gone', why: 'loop device 7:3 (loop3) has no file attached' });
    expect(pool.identify(vol, '8:0')).toEqual({ is: 'other', why: '8:0 (sda) is not a loop device' });
    expect(pool.identify(vol, '7:9')).toEqual({ is: 'gone', why: 'there is no block device 7:9' });
  });

  it('a loop whose file was removed is not the new file under the old name', () => {
    // The kernel names a removed backing file "PATH (deleted)", and nothing is found there.
    device(sys, '7:4', 'loop4', { 'loop/backing_file': `${replaced} (deleted)\n` });
    expect(pool.identify({ name: 'old', backing: replaced }, '7:4')).toEqual({ is: 'other', why: `loop device 7:4 (loop4) is backed by ${replaced} (deleted) (not found), not by ${replaced}` });
  });

  it('a loop attached from a mount namespace that is gone (its path found nowhere) is judged by the kernel\'s record of its file', () => {
    device(sys, '7:5', 'loop5', { 'loop/backing_file': '/gone/namespace/view/db.img\n' });
    const asked: string[] = [];
    const kernel = new FilePool(hostRoot({ sys }), 'default', poolDir, undefined, (dev) => {
      asked.push(dev);
      return fileIdentity(mine);
    });
    expect(kernel.identify(vol, '7:5')).toEqual({ is: 'ours' });
    expect(kernel.identify(vol, '7:5')).toEqual({ is: 'ours' });
    expect(asked).toEqual(['/dev/loop5']); // asked once for that loop and path
    expect(pool.identify(vol, '7:5').is).toBe('other'); // the kernel knows no such file there
  });
});

describe('lvm pool: a dm device is the volume\'s LV when device-mapper names it so and LVM made it', () => {
  const sys = path.join(dir, 'sys-lvm');
  device(sys, '253:0', 'dm-0', { 'dm/name': 'qosd--nvme-db--1\n', 'dm/uuid': 'LVM-abcdefabcdef\n' });
  device(sys, '253:1', 'dm-1', { 'dm/name': 'qosd--nvme-other\n', 'dm/uuid': 'LVM-123456\n' });
  device(sys, '253:2', 'dm-2', { 'dm/name': 'qosd--nvme-db--1\n', 'dm/uuid': 'CRYPT-LUKS2-xyz\n' });
  device(sys, '259:0', 'nvme0n1', {});
  const pool = new LvmPool(hostRoot({ sys }), 'nvme', 'qosd-nvme', [], 1);
  const vol = { name: 'db-1', backing: 'qosd-nvme/db-1' };

  it('ours, another LV, a dm device LVM did not make, not device-mapper, no device', () => {
    expect(pool.identify(vol, '253:0')).toEqual({ is: 'ours' });
    expect(pool.identify(vol, '253:1')).toEqual({ is: 'other', why: '253:1 is device-mapper device qosd--nvme-other, not LV qosd-nvme/db-1' });
    expect(pool.identify(vol, '253:2').is).toBe('other');
    expect(pool.identify(vol, '259:0')).toEqual({ is: 'other', why: '259:0 is not a device-mapper device' });
    expect(pool.identify(vol, '253:9')).toEqual({ is: 'gone', why: 'there is no block device 253:9' });
  });
});
