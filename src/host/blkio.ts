// The block-IO cgroup face, chosen once from the detected layout (daemon.ts, and the periodic
// jobs' worker): cgroup v1 (blkio.throttle.*), cgroup v2 (io.max), or none, whose writes refuse
// with the reason and whose reads are empty. The interface is in blkio-face.ts.
import type { CgroupLayout } from './cgroup-layout';
import type { Blkio } from './blkio-face';
import { V1Blkio } from './cgroup-v1';
import { V2Blkio } from './cgroup-v2';
import { NoBlkio } from './no-blkio';

export type { Blkio, ChildLister, KubeletCgroups, PodIo } from './blkio-face';

export function blkioFor(layout: CgroupLayout | { error: string }): Blkio {
  if ('error' in layout) return new NoBlkio(layout.error);
  return layout.version === 'v2' ? new V2Blkio(layout.base) : new V1Blkio(layout.base);
}
