// The block-IO cgroup face every implementation declares (cgroup-v1.ts, cgroup-v2.ts, and
// no-blkio.ts for a node without a usable controller). Everything above the host layer
// (enforcement, the reconcile pass, the metrics, the controller) speaks only this interface and
// never asks which version it runs on, or whether there is one.
import type { CgroupDriverSetting, CgroupVersion } from '../model/cgroup';
import type { Figures } from '../model/qos';

/** A pod's cumulative IO on one device, as its cgroup counts it. */
export interface PodIo {
  readOps: number;
  writeOps: number;
  readBytes: number;
  writeBytes: number;
}

/** Lists a cgroup's child cgroups (directories); the pass hands in what it already listed. */
export type ChildLister = (dir: string) => string[];

/** Where kubelet's cgroups are: its --cgroup-root and cgroup driver. */
export interface KubeletCgroups {
  cgroupRoot: string;
  cgroupDriver: CgroupDriverSetting;
}

export interface Blkio {
  /** The controller's version ('none': the node has no usable one; see `unavailable`). */
  readonly version: CgroupVersion | 'none';
  /** Why there is no controller to write to; undefined when there is one. */
  readonly unavailable: string | undefined;
  /** The directory kubelet's hierarchy (kubepods…) lives under for this controller, if there is one. */
  readonly base: string | undefined;
  /** Whether child cgroups that appear under a pod need rules of their own (so must be watched). */
  readonly leavesNeedRules: boolean;
  /** The pod's cgroup, or a FailedPrecondition saying why it cannot be found. */
  findPod(podUid: string, kubelet: KubeletCgroups): { version: CgroupVersion; dir: string };
  /** The kubepods cgroups kubelet made here (one per driver spelling that exists). */
  kubepodsRoots(kubelet: KubeletCgroups): string[];
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
