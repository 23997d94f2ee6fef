// The headroom a latency target needs. A device serving IO at utilisation ρ (the share of its time
// busy, as the cost model prices it) makes each IO wait behind the others: in the simplest queue
// that fits a drive serving one stream of requests (M/M/1), the mean completion latency is
// S / (1 − ρ), S being its latency for one IO alone. A mean target T therefore holds only while
// ρ ≤ 1 − S/T. The controller cuts best-effort neighbours as far as a target needs (to their floor
// if it must), so what it cannot cut, the pool's guarantees together, must stay within that
// ceiling: a pool that holds a target T promises at most 1 − S/T of its device (and never more
// than 1 − headroom). Real drives serve several IOs at once and do better than M/M/1, so the
// ceiling errs on the side of the promise (docs/latency.md has the derivation and its figures).
import { DIRECTIONS, type Direction, type LatencyTargets } from './qos';

export interface LatencyCeiling {
  /** The most of the device the pool's guarantees may take together. */
  share: number;
  /** The direction and target that set it, and the device's own latency there. */
  direction: Direction;
  target: number;
  unloaded: number;
}

/**
 * The strictest ceiling the targets set on a pool whose device gives `unloaded` latency to one IO
 * alone; undefined when no target is set. Each target's direction must have an unloaded figure
 * (checkTargets says so first).
 */
export function latencyCeiling(unloaded: LatencyTargets, targets: LatencyTargets): LatencyCeiling | undefined {
  let out: LatencyCeiling | undefined;
  for (const direction of DIRECTIONS) {
    const target = targets[direction];
    const s = unloaded[direction];
    if (target === undefined || s === undefined) continue;
    const share = Math.max(0, 1 - s / target);
    if (!out || share < out.share) out = { share, direction, target, unloaded: s };
  }
  return out;
}

/** The stricter of two sets of targets, direction by direction. */
export function strictestOf(a: LatencyTargets, b: LatencyTargets | undefined): LatencyTargets {
  const out: LatencyTargets = { ...a };
  for (const dir of DIRECTIONS) {
    const t = b?.[dir];
    if (t !== undefined && (out[dir] === undefined || t < out[dir]!)) out[dir] = t;
  }
  return out;
}

/** Whether `after` sets a target `before` did not, or a stricter one. */
export function tightened(before: LatencyTargets | undefined, after: LatencyTargets | undefined): boolean {
  return DIRECTIONS.some((dir) => {
    const t = after?.[dir];
    return t !== undefined && (before?.[dir] === undefined || t < before[dir]!);
  });
}
