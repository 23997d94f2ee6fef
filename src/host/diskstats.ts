// /proc/diskstats (Documentation/admin-guide/iostats.rst): one line per block device, "MAJ MIN
// name" then the counters. One read gives every device's IO, whatever cgroup did it and whether
// or not a throttle rule was ever set for the device (cgroup v1 counts a device in a cgroup's
// blkio stats only after a rule has been set for it). Each qosd volume has a device of its own
// (its loop device or LV), so these are the volume's counters.
import { readSmall } from './read-small';

export interface DiskCounters {
  readIos: number;
  readBytes: number;
  writeIos: number;
  writeBytes: number;
  /** Weighted time in queue, ms: the sum of every IO's time from start to completion. */
  timeInQueueMs: number;
}

/** Parses /proc/diskstats text into "MAJ:MIN" → counters (sectors are 512 bytes, always). */
export function parseDiskstats(text: string): Map<string, DiskCounters> {
  const out = new Map<string, DiskCounters>();
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const f = text.slice(start, end).trim().split(/\s+/);
    start = end + 1;
    if (f.length < 14) continue;
    out.set(`${f[0]}:${f[1]}`, {
      readIos: Number(f[3]),
      readBytes: Number(f[5]) * 512,
      writeIos: Number(f[7]),
      writeBytes: Number(f[9]) * 512,
      timeInQueueMs: Number(f[13]),
    });
  }
  return out;
}

export function readDiskstats(file = '/proc/diskstats'): Map<string, DiskCounters> {
  return parseDiskstats(readSmall(file));
}
