// The cgroup vocabulary shared by the config, the store and the kernel faces.

/** Which cgroup hierarchy carries block-IO control on the node. */
export type CgroupVersion = 'v1' | 'v2';

/** The config's cgroup version: detected ("auto") or forced. */
export type CgroupVersionSetting = 'auto' | CgroupVersion;

/** How kubelet names cgroups (its --cgroup-driver). */
export type CgroupDriver = 'cgroupfs' | 'systemd';

/** The config's cgroup driver: one of kubelet's, or "auto" to try both. */
export type CgroupDriverSetting = 'auto' | CgroupDriver;
