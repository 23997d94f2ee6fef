// Where kubelet put a pod's cgroup. The QoS class is not passed to flex, so every class is tried;
// with cgroupDriver "auto" both drivers' names are tried. Names follow kubelet's
// cgroup_manager_linux.go: cgroupfs joins the parts as directories; systemd turns each prefix into
// a slice (ToSystemd) with "-" in names escaped to "_".
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CgroupDriver, CgroupDriverSetting } from '../model/cgroup';
import { QosdError } from '../model/errors';

const QOS_PARTS: string[][] = [[], ['burstable'], ['besteffort']]; // Guaranteed, Burstable, BestEffort

export const POD_UID = /^[0-9a-fA-F][0-9a-fA-F-]{0,62}$/;

function rootParts(cgroupRoot: string): string[] {
  // kubelet accepts a systemd-style root ("/kubelet.slice") too; reduce it to its last name.
  return cgroupRoot
    .split('/')
    .filter(Boolean)
    .map((p) => (p.endsWith('.slice') ? p.slice(0, -'.slice'.length).split('-').pop()! : p));
}

function toSystemd(parts: string[]): string {
  const escaped = parts.map((p) => p.replace(/-/g, '_'));
  const out: string[] = [];
  for (let i = 0; i < escaped.length; i++) out.push(`${escaped.slice(0, i + 1).join('-')}.slice`);
  return out.join('/');
}

/** Where each driver puts the kubepods cgroup (relative to the controller base). */
export function kubepodsDirs(cgroupRoot: string): Record<CgroupDriver, string> {
  const parts = [...rootParts(cgroupRoot), 'kubepods'];
  return { cgroupfs: parts.join('/'), systemd: toSystemd(parts) };
}

/** The pod cgroup paths (relative to the controller base) kubelet may have used, most likely first. */
export function podCgroupCandidates(uid: string, cgroupRoot: string, driver: CgroupDriverSetting): string[] {
  if (!POD_UID.test(uid)) throw new Error(`pod uid ${JSON.stringify(uid)} is not a Kubernetes UID`);
  const drivers: CgroupDriver[] = driver === 'auto' ? ['systemd', 'cgroupfs'] : [driver];
  const out: string[] = [];
  for (const d of drivers) {
    for (const qos of QOS_PARTS) {
      const parts = [...rootParts(cgroupRoot), 'kubepods', ...qos, `pod${uid}`];
      out.push(d === 'cgroupfs' ? parts.join('/') : toSystemd(parts));
    }
  }
  return out;
}

/** The pod's cgroup directory under `base`, or undefined with the paths that were tried. */
export function findPodCgroup(
  base: string,
  uid: string,
  cgroupRoot: string,
  driver: CgroupDriverSetting,
): { dir: string } | { tried: string[] } {
  const candidates = podCgroupCandidates(uid, cgroupRoot, driver).map((rel) => path.join(base, rel));
  for (const dir of candidates) if (fs.existsSync(dir)) return { dir };
  return { tried: candidates };
}

/**
 * The pod's cgroup under `base`, or a FailedPrecondition naming the paths tried. Kubelet creates
 * the pod cgroup before it calls flex mount or NodePublish, so "not found" means the config
 * (kubelet.cgroupRoot, kubelet.cgroupDriver, cgroup.mountPoint) does not match the node.
 */
export function locatePodCgroup(base: string, uid: string, kubelet: { cgroupRoot: string; cgroupDriver: CgroupDriverSetting }): string {
  const found = findPodCgroup(base, uid, kubelet.cgroupRoot, kubelet.cgroupDriver);
  if ('dir' in found) return found.dir;
  throw new QosdError('FailedPrecondition', `cgroup of pod ${uid} not found (tried ${found.tried.join(', ')}); check kubelet.cgroupRoot and kubelet.cgroupDriver`);
}

/** The kubepods cgroups under `base` that exist, for the driver setting (both spellings for auto). */
export function kubepodsRootsUnder(base: string, kubelet: { cgroupRoot: string; cgroupDriver: CgroupDriverSetting }): string[] {
  const drivers: CgroupDriver[] = kubelet.cgroupDriver === 'auto' ? ['cgroupfs', 'systemd'] : [kubelet.cgroupDriver];
  const dirs = kubepodsDirs(kubelet.cgroupRoot);
  return drivers.map((d) => path.join(base, dirs[d])).filter((r) => fs.existsSync(r));
}
