// What gets written to the kernel for a volume. Today: its `max`, as a static limit; a volume with
// a guarantee and no max runs unthrottled above its minimum. This is the seam where a
// work-conserving controller (which tightens best-effort neighbours only under contention, to
// protect minimums) replaces the static policy without touching enforcement or the store.
import type { Volume } from '../store/volumes';
import { limitsOf, type Figures } from './qos-spec';

export interface LimitPolicy {
  limitsFor(volume: Volume): Figures;
}

export const staticLimits: LimitPolicy = {
  limitsFor: (volume) => limitsOf(volume.qos),
};
