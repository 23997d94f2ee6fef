// The resolved configuration the daemon runs on: every default filled in, quantities parsed,
// paths absolute. Built from the YAML file (schema.ts) and the command-line flags, flags winning.
import type { LatencyTargets, QosSpec } from '../model/qos';
import type { CgroupDriverSetting, CgroupVersionSetting } from '../model/cgroup';
import type { FsType } from '../model/filesystem';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type LogFormat = 'json' | 'pretty';

export interface FilePoolConfig {
  name: string;
  backend: 'file';
  path: string;
  /** Whether qosd may make `path` when it does not exist (always, under stateDir). */
  create: boolean;
  /** How far the volumes' sizes may exceed the filesystem's free space (sparse files): 1 = not at all. */
  overcommit: number;
  capacity: QosSpec['max'];
  /** The device's own latency for one small IO at queue depth 1, per direction (latency-targets.ts). */
  unloadedLatency?: LatencyTargets;
}

export interface LvmPoolConfig {
  name: string;
  backend: 'lvm';
  volumeGroup: string;
  devices: string[];
  /** Stripe each LV across this many PVs (1: linear). */
  stripes: number;
  capacity: QosSpec['max'];
  /** The device's own latency for one small IO at queue depth 1, per direction (latency-targets.ts). */
  unloadedLatency?: LatencyTargets;
}

export type PoolConfig = FilePoolConfig | LvmPoolConfig;

export interface Config {
  /** The file the config came from, or undefined when running on embedded defaults. */
  source: string | undefined;
  socket: string;
  stateDir: string;
  logLevel: LogLevel;
  /** JSON lines (journald), or readable lines for a terminal. */
  logFormat: LogFormat;
  /** Whether the TCP metrics listener serves the per-volume families (volume names, pod UIDs). */
  metricsPerVolume: boolean;
  /** undefined: no TCP metrics listener. */
  metricsListen: { host: string; port: number } | undefined;
  kubelet: { rootDir: string; cgroupRoot: string; cgroupDriver: CgroupDriverSetting };
  /**
   * CSI (csi/): the socket, the node name (CSI node id and topology value) and whether qosd
   * registers itself with kubelet through <kubelet.rootDir>/plugins_registry. undefined: off.
   * `kubeconfig`: "in-cluster" or a kubeconfig path for watching VolumeRequests; undefined: none.
   */
  csi: { socket: string; nodeName: string; registration: boolean; kubeconfig: string | undefined } | undefined;
  cgroup: { mountPoint: string; version: CgroupVersionSetting };
  reconcileIntervalMs: number;
  /** The work-conserving controller (controller/): on by default, every 250 ms. */
  controller: { enabled: boolean; intervalMs: number };
  /** The flex door: the namespaces whose pods may use it (undefined: every namespace). */
  flex: { allowedNamespaces: string[] | undefined };
  /** How long the event log keeps an event: by age and by count, whichever removes more. */
  events: { maxAgeDays: number; maxRows: number };
  /** Fraction of each pool's capacity never promised as guarantees (default 0.1). */
  headroom: number;
  pools: PoolConfig[];
  classes: Map<string, QosSpec>;
  defaults: { pool: string; class: string; size: number; fsType: FsType };
}

export const DEFAULTS = {
  config: '/etc/qosd/config.yaml',
  socket: '/run/qosd/qosd.sock',
  // A directory of its own: the sidecars mount it, and nothing else of /run/qosd (the API socket).
  csiSocket: '/run/qosd/csi/csi.sock',
  stateDir: '/var/lib/qosd',
  metricsListen: '127.0.0.1:9567',
  kubeletRootDir: '/var/lib/kubelet',
  cgroupRoot: '/',
  cgroupMountPoint: '/sys/fs/cgroup',
  reconcileIntervalSeconds: 10,
  headroom: 0.1,
  eventsMaxAgeDays: 90,
  eventsMaxRows: 100_000,
  size: '10Gi',
  fsType: 'ext4' as FsType,
} as const;

/** The built-in QoS classes (the Diamanti perf tiers); config may override or add to them. */
export const DEFAULT_CLASSES: Record<string, { min?: Record<string, number | string>; max?: Record<string, number | string>; latency?: Partial<Record<'read' | 'write', string>> }> = {
  high: { min: { readIops: 20000, writeIops: 20000, readBps: '500M', writeBps: '500M' } },
  medium: { min: { readIops: 5000, writeIops: 5000, readBps: '125M', writeBps: '125M' } },
  'best-effort': {},
};
