// Captures, from the VM's emulated NVMe, the sysfs attributes and systeminformation output that
// the unit tests use as fixtures (fixtures/nvme-vm/). Runs only when asked: QOSD_VM_CAPTURE=1
// test/vm/run.sh capture.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const out = '/mnt/share/capture';
const asked = process.env.QOSD_VM === '1' && fs.existsSync(out);

describe.skipIf(!asked)(`fixture capture${asked ? '' : ' (skipped: only with QOSD_VM_CAPTURE=1 test/vm/run.sh capture)'}`, () => {
  it('copies the NVMe sysfs attributes and systeminformation output', async () => {
    const attrs = ['dev', 'size', 'queue/logical_block_size', 'queue/rotational', 'device/model', 'device/serial', 'device/firmware_rev', 'device/uevent'];
    for (const ns of ['nvme0n1', 'nvme1n1']) {
      for (const a of attrs) {
        const dst = path.join(out, 'sys/block', ns, a);
        fs.mkdirSync(path.dirname(dst), { recursive: true });
        // read + write, not copyFileSync: copy_file_range on sysfs attributes does not return.
        fs.writeFileSync(dst, fs.readFileSync(path.join('/sys/block', ns, a)));
      }
    }
    const si = (await import('systeminformation')) as unknown as { blockDevices(): Promise<unknown[]> };
    fs.writeFileSync(path.join(out, 'si-blockDevices.json'), `${JSON.stringify(await si.blockDevices(), null, 2)}\n`);
    fs.writeFileSync(path.join(out, 'CAPTURED'), `captured in the test VM (qemu ${''}emulated NVMe, Debian kernel ${fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}) on ${new Date().toISOString()} by test/vm/capture.vm.ts\n`);
    expect(fs.existsSync(path.join(out, 'sys/block/nvme0n1/dev'))).toBe(true);
  });
});
