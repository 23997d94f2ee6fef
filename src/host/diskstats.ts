// /proc/diskstats (Documentation/admin-guide/iostats.rst): one line per block device, "MAJ MIN
// name" then the counters. One read gives every device's IO, whatever cgroup did it and whether
// or not a throttle rule was ever set for the device (cgroup v1 counts a device in a cgroup's
// blkio stats only after a rule has been set for it). Each qosd volume has a device of its own
// (its loop device or LV), so these are the volume's counters.
import { readSmall } from './read-small';
import { linePieces } from '../util/line-pieces';

export interface DiskCounters {
  readIos: number;
  readBytes: number;
  writeIos: number;
  writeBytes: number;
  /** Weighted time in queue, ms: the sum of every completed IO's time from start to completion. */
  timeInQueueMs: number;
  /** IOs in flight now. */
  inFlight: number;
  /** Time with at least one IO in flight, ms (kept current at each read while IOs are in flight). */
  ioTicksMs: number;
}

/** A device number as one integer (minor numbers have 20 bits): no string to build per line. */
const numberOf = (major: number, minor: number): number => major * 1048576 + minor;

/** The devices of an `only` set by their number, worked out once per set (the controller keeps one per store snapshot). */
const indexes = new WeakMap<ReadonlySet<string>, Map<number, string>>();
function indexOf(only: ReadonlySet<string>): Map<number, string> {
  let index = indexes.get(only);
  if (!index) {
    index = new Map();
    for (const dev of only) {
      const [major, minor] = dev.split(':').map(Number);
      if (Number.isInteger(major) && Number.isInteger(minor)) index.set(numberOf(major!, minor!), dev);
    }
    indexes.set(only, index);
  }
  return index;
}

/**
 * Parses /proc/diskstats text into "MAJ:MIN" → counters (sectors are 512 bytes, always). With
 * `only`, other devices are skipped. It scans character codes instead of splitting each line, and
 * finds an `only` device by its number rather than by a string made for each line: at 10,000
 * devices, four times a second, splitting and then the strings cost most of a controller tick.
 */
export function parseDiskstats(
  text: string,
  only?: ReadonlySet<string>,
  out = new Map<string, DiskCounters>(),
  from = 0,
  to = text.length,
): Map<string, DiskCounters> {
  const n = to;
  const index = only && indexOf(only);
  let i = from;
  const fields = new Float64Array(11);
  while (i < n) {
    // One line: fields 0 and 1 (major, minor), 2 (name, skipped), then numbers.
    let count = 0;
    let major = 0;
    let key: string | undefined;
    let field = 0;
    let complete = true;
    while (i < n && text.charCodeAt(i) !== 10) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9) {
        i++;
        continue;
      }
      if (field === 2) {
        while (i < n && text.charCodeAt(i) > 32) i++;
        field++;
        if (key === undefined) complete = false;
        if (!complete) break;
        continue;
      }
      let v = 0;
      let digits = 0;
      for (let c2 = text.charCodeAt(i); c2 >= 48 && c2 <= 57; c2 = text.charCodeAt(++i)) {
        v = v * 10 + (c2 - 48);
        digits++;
      }
      if (digits === 0 || (i < n && text.charCodeAt(i) > 32)) {
        complete = false; // not a diskstats line
        break;
      }
      if (field === 0) major = v;
      else if (field === 1) key = index ? index.get(numberOf(major, v)) : `${major}:${v}`;
      else fields[count++] = v;
      field++;
      if (count === 11) break; // the rest of the line is not needed
    }
    const nl = text.indexOf('\n', i);
    i = nl < 0 || nl >= n ? n : nl + 1;
    // fields[k] is diskstats column k + 3: reads 0, read sectors 2, writes 4, write sectors 6,
    // in flight 8, time doing IO 9, weighted time in queue 10.
    if (!complete || count < 11 || key === undefined) continue;
    out.set(key, {
      readIos: fields[0]!,
      readBytes: fields[2]! * 512,
      writeIos: fields[4]!,
      writeBytes: fields[6]! * 512,
      timeInQueueMs: fields[10]!,
      inFlight: fields[8]!,
      ioTicksMs: fields[9]!,
    });
  }
  return out;
}

export function readDiskstats(file = '/proc/diskstats', only?: ReadonlySet<string>): Map<string, DiskCounters> {
  return parseDiskstats(readSmall(file), only);
}

/**
 * readDiskstats in pieces of about `chunkChars`, awaiting `pause` between them: 10,000 devices
 * make a megabyte of text, more than a periodic job may parse without giving the loop back.
 */
export async function readDiskstatsInPieces(
  pause: () => Promise<void>,
  file = '/proc/diskstats',
  only?: ReadonlySet<string>,
  chunkChars = 128 * 1024,
): Promise<Map<string, DiskCounters>> {
  const text = readSmall(file);
  const out = new Map<string, DiskCounters>();
  for (const [from, to] of linePieces(text, chunkChars)) {
    if (from > 0) await pause();
    parseDiskstats(text, only, out, from, to);
  }
  return out;
}
