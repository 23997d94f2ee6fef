// What gets written to the kernel for a volume: its `max` as a static limit (a volume with a
// guarantee and no max runs unthrottled above its minimum), or, with the controller on
// (controller/controller.ts, ControlledLimits), that max tightened while a guarantee needs room.
// Enforcement and the store only ever see this seam.
import type { Volume } from '../store/volumes';
import { limitsOf, type Figures } from '../model/qos';

export interface LimitPolicy {
  limitsFor(volume: Volume): Figures;
}

export const staticLimits: LimitPolicy = {
  limitsFor: (volume) => limitsOf(volume.qos),
};
