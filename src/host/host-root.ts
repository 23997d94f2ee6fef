// Where this node's kernel file systems are mounted: procfs, sysfs and the cgroup hierarchy. Made
// once, in daemon.ts, and handed to every reader of the host below it (as Prometheus' procfs package fixes
// its mount points once in NewFS), so nothing under src/host names a kernel path of its own, and a
// test points a reader, a pool or the whole daemon at a fixture tree by making one value.

export interface HostRoot {
  /** procfs: diskstats, locks, and this process's own mountinfo, fds and namespaces. */
  readonly proc: string;
  /** sysfs: block devices (loop backing files, NVMe attributes, dm uuids, stat). */
  readonly sys: string;
  /** The cgroup hierarchy: v2's unified root, or v1's per-controller mounts under it. */
  readonly cgroup: string;
}

/** The node's own roots, with any of them moved (a configured cgroup mount, a fixture tree). */
export function hostRoot(moved: Partial<HostRoot> = {}): HostRoot {
  return Object.freeze({
    proc: moved.proc ?? '/proc',
    sys: moved.sys ?? '/sys',
    cgroup: moved.cgroup ?? '/sys/fs/cgroup',
  });
}
