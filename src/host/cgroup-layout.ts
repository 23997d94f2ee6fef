// Which cgroup hierarchy holds block-IO control on this node, found under the host root's cgroup
// mount point (configurable; tests point it at a captured tree). v2 needs the io controller in the unified root;
// v1 needs the blkio controller mounted (its own mount, or co-mounted on a hybrid host).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CgroupVersion, CgroupVersionSetting } from '../model/cgroup';
import type { HostRoot } from './host-root';
export interface CgroupLayout {
  version: CgroupVersion;
  /** The directory kubelet's hierarchy (kubepods…) lives under for the IO controller. */
  base: string;
}

function v2Base(mountPoint: string): string | undefined {
  const controllers = path.join(mountPoint, 'cgroup.controllers');
  try {
    return fs.readFileSync(controllers, 'utf8').split(/\s+/).includes('io') ? mountPoint : undefined;
  } catch {
    return undefined;
  }
}

function v1Base(mountPoint: string): string | undefined {
  const dir = path.join(mountPoint, 'blkio');
  return fs.existsSync(path.join(dir, 'blkio.throttle.read_iops_device')) ? dir : undefined;
}

/** Finds the layout, or explains why none is usable. */
export function detectCgroupLayout(root: HostRoot, want: CgroupVersionSetting): CgroupLayout | { error: string } {
  const mountPoint = root.cgroup;
  const v2 = want !== 'v1' ? v2Base(mountPoint) : undefined;
  if (v2) return { version: 'v2', base: v2 };
  const v1 = want !== 'v2' ? v1Base(mountPoint) : undefined;
  if (v1) return { version: 'v1', base: v1 };
  const tried =
    want === 'v2' ? `an "io" entry in ${mountPoint}/cgroup.controllers` :
    want === 'v1' ? `${mountPoint}/blkio/blkio.throttle.read_iops_device` :
    `an "io" entry in ${mountPoint}/cgroup.controllers or ${mountPoint}/blkio/blkio.throttle.read_iops_device`;
  return { error: `no usable block-IO cgroup controller: looked for ${tried}` };
}
