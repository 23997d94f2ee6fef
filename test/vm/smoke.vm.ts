// The VM is what the harness promises: NVMe namespaces, device-mapper and cgroup v2 with io.
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('the test VM', () => {
  it('has three NVMe namespaces (the third held by the qemu throttle for the contention bench), device-mapper and the cgroup v2 io controller', () => {
    expect(fs.existsSync('/dev/nvme2n1')).toBe(true);
    expect(fs.existsSync('/dev/nvme0n1')).toBe(true);
    expect(fs.existsSync('/dev/nvme1n1')).toBe(true);
    expect(fs.readFileSync('/sys/block/nvme0n1/dev', 'utf8').trim()).toMatch(/^259:\d+$/);
    expect(fs.existsSync('/dev/mapper/control')).toBe(true);
    expect(fs.readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8')).toContain('io');
  });
});
