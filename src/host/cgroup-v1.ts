// cgroup v1 blkio throttling (blkio.throttle.*_device). Rules are "MAJ:MIN VALUE" lines, one file
// per dimension; writing "MAJ:MIN 0" removes a rule; reading lists only devices that have one.
// The v1 throttle hierarchy is flat: a rule on a parent does not limit its children, so callers
// write every cgroup in a pod's tree (cgroupTree below).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIMENSIONS, type Dimension, type Figures } from '../service/qos-spec';

export const V1_FILES: Record<Dimension, string> = {
  readIops: 'blkio.throttle.read_iops_device',
  writeIops: 'blkio.throttle.write_iops_device',
  readBps: 'blkio.throttle.read_bps_device',
  writeBps: 'blkio.throttle.write_bps_device',
};

/** Parses one throttle file into device → value. */
export function parseRuleFile(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\d+:\d+)\s+(\d+)$/.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** The rules a cgroup holds for one device, per dimension. */
export function readRules(cgroupDir: string, device: string): Figures {
  const out: Figures = {};
  for (const d of DIMENSIONS) {
    const v = parseRuleFile(fs.readFileSync(path.join(cgroupDir, V1_FILES[d]), 'utf8')).get(device);
    if (v !== undefined) out[d] = v;
  }
  return out;
}

function write(cgroupDir: string, d: Dimension, device: string, value: number): void {
  fs.writeFileSync(path.join(cgroupDir, V1_FILES[d]), `${device} ${value}`);
}

/**
 * Makes the cgroup's rules for `device` equal `limits` on the dimensions in `owned`: a dimension
 * with a limit gets it, one without is cleared. Only differences are written. Returns the number
 * of writes (0 when the cgroup already matched).
 */
export function syncRules(cgroupDir: string, device: string, limits: Figures, owned: readonly Dimension[] = DIMENSIONS): number {
  const current = readRules(cgroupDir, device);
  let writes = 0;
  for (const d of owned) {
    const want = limits[d] ?? 0;
    if ((current[d] ?? 0) !== want) {
      write(cgroupDir, d, device, want);
      writes++;
    }
  }
  return writes;
}

/**
 * Makes blk-throttle count `device` in cgroup stats. On cgroup v1 (kernel 6.x, measured here)
 * blkio.throttle.io_serviced* list a device only once a throttle rule has been set for it, in
 * any cgroup: IO on a device that never had a rule is counted nowhere. A rule set and taken away
 * again, on a dimension the cgroup has no rule for, starts the counting and limits nothing
 * meanwhile (2^62 bytes per second). Returns the writes made (0 when a rule is there already).
 */
export function primeStats(cgroupDir: string, device: string): number {
  const current = readRules(cgroupDir, device);
  if (DIMENSIONS.some((d) => current[d] !== undefined)) return 0;
  write(cgroupDir, 'readBps', device, 2 ** 62);
  write(cgroupDir, 'readBps', device, 0);
  return 2;
}

/** Removes the rules for `device` on the given dimensions. */
export function clearRules(cgroupDir: string, device: string, dims: readonly Dimension[] = DIMENSIONS): number {
  return syncRules(cgroupDir, device, {}, dims);
}

/** The cgroup and every cgroup below it (directories are cgroups in cgroupfs). */
export function cgroupTree(dir: string): string[] {
  const out = [dir];
  for (let i = 0; i < out.length; i++) {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(out[i]!, { withFileTypes: true });
    } catch {
      continue; // removed while walking: a container that just exited
    }
    for (const e of entries) if (e.isDirectory()) out.push(path.join(out[i]!, e.name));
  }
  return out;
}

/** blkio.throttle.io_serviced / io_service_bytes, by keyword (Discard is absent on old kernels). */
export function parseRwStat(text: string): Map<string, { read: number; write: number }> {
  const out = new Map<string, { read: number; write: number }>();
  for (const line of text.split('\n')) {
    const m = /^(\d+:\d+)\s+(Read|Write)\s+(\d+)$/.exec(line.trim());
    if (!m) continue;
    const e = out.get(m[1]!) ?? { read: 0, write: 0 };
    if (m[2] === 'Read') e.read = Number(m[3]);
    else e.write = Number(m[3]);
    out.set(m[1]!, e);
  }
  return out;
}
