// The block-IO cgroup face: one interface, chosen once from the detected layout (daemon.ts), with
// a cgroup v1 (blkio.throttle.*) and a cgroup v2 (io.max) implementation. Everything above it
// (enforcement, the reconcile pass, the metrics, the controller) speaks only this interface and
// never asks which version it runs on.
import type { CgroupVersion } from '../model/cgroup';
import type { Figures } from '../model/qos';
import type { CgroupLayout } from './cgroup-layout';
import { V1Blkio } from './cgroup-v1';
import { V2Blkio } from './cgroup-v2';

/** A pod's cumulative IO on one device, as its cgroup counts it. */
export interface PodIo {
  readOps: number;
  writeOps: number;
  readBytes: number;
  writeBytes: number;
}

/** Lists a cgroup's child cgroups (directories); the pass hands in what it already listed. */
export type ChildLister = (dir: string) => string[];

export interface Blkio {
  readonly version: CgroupVersion;
  /** The directory kubelet's hierarchy (kubepods…) lives under for this controller. */
  readonly base: string;
  /** Whether child cgroups that appear under a pod need rules of their own (so must be watched). */
  readonly leavesNeedRules: boolean;
  /** The cgroups that must carry a pod's rules for them to hold on all of the pod's IO. */
  ruleDirs(podCgroup: string, children?: ChildLister): string[];
  /** Every device's rules in one cgroup (devices without a rule are absent). */
  readRules(dir: string): ReadonlyMap<string, Figures>;
  /** Makes one device's rules in a cgroup equal `limits`; returns the writes made (0 if equal). */
  syncRules(dir: string, device: string, limits: Figures): number;
  /** Removes one device's rules from a cgroup; returns the writes made. */
  clearRules(dir: string, device: string): number;
  /** The pod's IO on the device, or undefined when the cgroup is gone. */
  podIo(podCgroup: string, device: string): PodIo | undefined;
  /** Makes the kernel count the device in the pod's stats without limiting it; returns writes. */
  startCounting(podCgroup: string, device: string): number;
}

export function blkioFor(layout: CgroupLayout): Blkio {
  return layout.version === 'v2' ? new V2Blkio(layout.base) : new V1Blkio(layout.base);
}
