// cgroup v1 blkio throttling (blkio.throttle.*_device). Rules are "MAJ:MIN VALUE" lines, one file
// per dimension; writing "MAJ:MIN 0" removes a rule; reading lists only devices that have one.
// The v1 throttle hierarchy is flat: a rule on a parent does not limit its children, so a pod's
// rules go on every cgroup in its tree (V1Blkio.ruleDirs), new ones included.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIMENSIONS, type Dimension, type Figures } from '../model/qos';
import { readSmall } from './read-small';
import type { Blkio, KubeletCgroups, PodIo } from './blkio-face';
import { kubepodsRootsUnder, locatePodCgroup } from './pod-cgroup';
import { cgroupTree, childCgroups } from './cgroupfs';

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

/** Every device's rules in a cgroup, per dimension. */
export function readAllRules(cgroupDir: string): ReadonlyMap<string, Figures> {
  let out: Map<string, Figures> | undefined;
  for (const d of DIMENSIONS) {
    const text = readSmall(`${cgroupDir}/${V1_FILES[d]}`);
    if (text === '') continue; // the common case: no rule at all
    out ??= new Map<string, Figures>();
    for (const [dev, value] of parseRuleFile(text)) {
      // A "0" line only exists in a fake tree (the kernel drops it); it means no rule.
      if (value === 0) continue;
      const f = out.get(dev) ?? {};
      f[d] = value;
      out.set(dev, f);
    }
  }
  // Most cgroups hold no rule: one shared empty map, not tens of thousands per pass.
  return out ?? NO_RULES;
}

const NO_RULES: ReadonlyMap<string, Figures> = new Map();

/** The rules a cgroup holds for one device, per dimension. */
export function readRules(cgroupDir: string, device: string): Figures {
  return readAllRules(cgroupDir).get(device) ?? {};
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

/** cgroup v1 behind the blkio interface (host/blkio-face.ts). */
export class V1Blkio implements Blkio {
  readonly version = 'v1' as const;
  readonly unavailable = undefined;
  readonly leavesNeedRules = true;

  constructor(readonly base: string) {}

  findPod(podUid: string, kubelet: KubeletCgroups): { version: 'v1'; dir: string } {
    return { version: this.version, dir: locatePodCgroup(this.base, podUid, kubelet) };
  }

  kubepodsRoots(kubelet: KubeletCgroups): string[] {
    return kubepodsRootsUnder(this.base, kubelet);
  }

  /** The pod cgroup and every cgroup below it: the v1 throttle hierarchy is flat. */
  ruleDirs(podCgroup: string, children: (dir: string) => string[] = childCgroups): string[] {
    return cgroupTree(podCgroup, children);
  }

  readRules(dir: string): ReadonlyMap<string, Figures> {
    return readAllRules(dir);
  }

  syncRules(dir: string, device: string, limits: Figures): number {
    return syncRules(dir, device, limits);
  }

  clearRules(dir: string, device: string): number {
    return clearRules(dir, device);
  }

  /** Recursive stats: the pod cgroup's own would miss its containers. */
  podIo(podCgroup: string, device: string): PodIo | undefined {
    try {
      const ops = parseRwStat(readSmall(path.join(podCgroup, 'blkio.throttle.io_serviced_recursive'))).get(device);
      const bytes = parseRwStat(readSmall(path.join(podCgroup, 'blkio.throttle.io_service_bytes_recursive'))).get(device);
      return { readOps: ops?.read ?? 0, writeOps: ops?.write ?? 0, readBytes: bytes?.read ?? 0, writeBytes: bytes?.write ?? 0 };
    } catch {
      return undefined;
    }
  }

  startCounting(podCgroup: string, device: string): number {
    return primeStats(podCgroup, device);
  }
}
