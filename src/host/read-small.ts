// Reads a small kernel file (a cgroup rule file, a sysfs attribute) with one open, one read and
// one close into a reused buffer: a full reconcile pass reads four files per cgroup, tens of
// thousands per pass, and readFileSync's extra fstat and allocation per file double its cost.
import * as fs from 'node:fs';

const buf = Buffer.allocUnsafe(64 * 1024);

export function readSmall(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    // One read: cgroupfs and sysfs hand over a small file whole, and a short read is its end.
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    // Rare: a file bigger than the buffer (thousands of devices). Read the rest the general way.
    if (n === buf.length) return buf.toString('latin1', 0, n) + fs.readFileSync(fd, 'latin1');
    return n === 0 ? '' : buf.toString('latin1', 0, n);
  } finally {
    fs.closeSync(fd);
  }
}
