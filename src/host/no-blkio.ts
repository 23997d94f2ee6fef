// The block-IO face of a node without a usable controller: nothing to read, nothing to clear, and
// every write refused with the reason, so that a volume with limits is never attached unthrottled.
import type { CgroupVersion } from '../model/cgroup';
import { QosdError } from '../model/errors';
import type { Figures } from '../model/qos';
import type { Blkio, PodIo } from './blkio-face';

export class NoBlkio implements Blkio {
  readonly version = 'none' as const;
  readonly leavesNeedRules = false;
  readonly base = undefined;

  constructor(readonly unavailable: string) {}

  findPod(): { version: CgroupVersion; dir: string } {
    throw new QosdError('FailedPrecondition', this.unavailable);
  }

  kubepodsRoots(): string[] {
    return [];
  }

  ruleDirs(): string[] {
    return [];
  }

  readRules(): ReadonlyMap<string, Figures> {
    return new Map();
  }

  syncRules(): number {
    throw new QosdError('FailedPrecondition', this.unavailable);
  }

  clearRules(): number {
    return 0;
  }

  podIo(): PodIo | undefined {
    return undefined;
  }

  startCounting(): number {
    throw new QosdError('FailedPrecondition', this.unavailable);
  }
}
