// cgroup v2 io.max: one line per device, "MAJ:MIN rbps=N wbps=N riops=N wiops=N" with "max" for
// no limit. Writing 0 is rejected by the kernel (ERANGE), so clearing writes "max". Keys not
// mentioned in a write keep their value, so qosd always writes all four. Limits are hierarchical:
// one line on the pod cgroup covers every container in it, including later ones.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIMENSIONS, type Dimension, type Figures } from '../model/qos';
import { readSmall } from './read-small';
import type { Blkio, KubeletCgroups, PodIo } from './blkio-face';
import { kubepodsRootsUnder, locatePodCgroup } from './pod-cgroup';

export const V2_KEYS: Record<Dimension, string> = { readBps: 'rbps', writeBps: 'wbps', readIops: 'riops', writeIops: 'wiops' };
const KEY_ORDER: Dimension[] = ['readBps', 'writeBps', 'readIops', 'writeIops'];

/** Parses io.max into device → the limited dimensions (unlimited ones are absent). */
export function parseIoMax(text: string): Map<string, Figures> {
  const out = new Map<string, Figures>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (!/^\d+:\d+$/.test(f[0] ?? '')) continue;
    const figures: Figures = {};
    for (const kv of f.slice(1)) {
      const [k, v] = kv.split('=');
      const d = DIMENSIONS.find((x) => V2_KEYS[x] === k);
      if (d && v !== undefined && v !== 'max') figures[d] = Number(v);
    }
    out.set(f[0]!, figures);
  }
  return out;
}

/** The io.max line that sets `limits` on the `owned` dimensions and clears the others owned. */
export function ioMaxLine(device: string, limits: Figures, owned: readonly Dimension[] = DIMENSIONS): string {
  const parts = KEY_ORDER.filter((d) => owned.includes(d)).map((d) => `${V2_KEYS[d]}=${limits[d] ?? 'max'}`);
  return `${device} ${parts.join(' ')}`;
}

export function readIoMax(cgroupDir: string, device: string): Figures {
  return parseIoMax(fs.readFileSync(path.join(cgroupDir, 'io.max'), 'utf8')).get(device) ?? {};
}

/** Writes io.max when it differs from `limits` on the owned dimensions; returns writes made (0 or 1). */
export function syncIoMax(cgroupDir: string, device: string, limits: Figures, owned: readonly Dimension[] = DIMENSIONS): number {
  const file = path.join(cgroupDir, 'io.max');
  if (!fs.existsSync(file)) {
    // A cgroup that is gone (the pod ended, the node rebooted) is ENOENT, which callers treat as
    // "nothing to write"; one that exists without io.max is a node set up wrong.
    if (!fs.existsSync(cgroupDir)) throw Object.assign(new Error(`${cgroupDir} does not exist`), { code: 'ENOENT' });
    throw new Error(`${file} does not exist: the io controller is not enabled in ${path.dirname(cgroupDir)}/cgroup.subtree_control`);
  }
  const current = readIoMax(cgroupDir, device);
  if (owned.every((d) => current[d] === limits[d])) return 0;
  fs.writeFileSync(file, ioMaxLine(device, limits, owned));
  return 1;
}

export function clearIoMax(cgroupDir: string, device: string, owned: readonly Dimension[] = DIMENSIONS): number {
  return syncIoMax(cgroupDir, device, {}, owned);
}

/** io.stat: device → cumulative counters (rbytes wbytes rios wios ...). */
export function parseIoStat(text: string): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (!/^\d+:\d+$/.test(f[0] ?? '')) continue;
    const rec: Record<string, number> = {};
    for (const kv of f.slice(1)) {
      const [k, v] = kv.split('=');
      if (k && v !== undefined && /^\d+(\.\d+)?$/.test(v)) rec[k] = Number(v);
    }
    out.set(f[0]!, rec);
  }
  return out;
}

/** cgroup v2 behind the blkio interface (host/blkio-face.ts). */
export class V2Blkio implements Blkio {
  readonly version = 'v2' as const;
  readonly unavailable = undefined;
  readonly leavesNeedRules = false;

  constructor(readonly base: string) {}

  findPod(podUid: string, kubelet: KubeletCgroups): { version: 'v2'; dir: string } {
    return { version: this.version, dir: locatePodCgroup(this.base, podUid, kubelet) };
  }

  kubepodsRoots(kubelet: KubeletCgroups): string[] {
    return kubepodsRootsUnder(this.base, kubelet);
  }

  /** The pod cgroup alone: io.max is hierarchical and covers every container, later ones too. */
  ruleDirs(podCgroup: string): string[] {
    return [podCgroup];
  }

  readRules(dir: string): Map<string, Figures> {
    return parseIoMax(readSmall(`${dir}/io.max`));
  }

  syncRules(dir: string, device: string, limits: Figures): number {
    return syncIoMax(dir, device, limits);
  }

  clearRules(dir: string, device: string): number {
    return clearIoMax(dir, device);
  }

  podIo(podCgroup: string, device: string): PodIo | undefined {
    try {
      const s = parseIoStat(readSmall(path.join(podCgroup, 'io.stat'))).get(device) ?? {};
      return { readOps: s.rios ?? 0, writeOps: s.wios ?? 0, readBytes: s.rbytes ?? 0, writeBytes: s.wbytes ?? 0 };
    } catch {
      return undefined;
    }
  }

  /** v2 counts every device in io.stat from the first IO. */
  startCounting(): number {
    return 0;
  }
}
