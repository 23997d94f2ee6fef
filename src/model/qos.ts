// The QoS model shared by the store, the API, flex options and enforcement: per dimension, an
// optional guarantee (min) and an optional limit (max). Absent means "none".

export const DIMENSIONS = ['readIops', 'writeIops', 'readBps', 'writeBps'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

export type Figures = Partial<Record<Dimension, number>>;

export const DIRECTIONS = ['read', 'write'] as const;
export type Direction = (typeof DIRECTIONS)[number];

/**
 * Latency targets per direction, in seconds: the mean completion latency of the volume's IOs in
 * that direction over each controller tick (its device's counters), while it does IO there.
 */
export type LatencyTargets = Partial<Record<Direction, number>>;

export interface QosSpec {
  min: Figures;
  max: Figures;
  /** Absent: no latency target. A target in a direction needs a guarantee there (checkSpec). */
  latency?: LatencyTargets;
}

/** The guarantee figures of each direction: a latency target needs one of them. */
export const DIRECTION_FIGURES: Record<Direction, readonly [Dimension, Dimension]> = { read: ['readIops', 'readBps'], write: ['writeIops', 'writeBps'] };

export const BYTE_DIMENSIONS: ReadonlySet<Dimension> = new Set(['readBps', 'writeBps']);

export function emptySpec(): QosSpec {
  return { min: {}, max: {} };
}

/** The limits to write to the kernel: only `max` throttles (guarantees are admitted, not written). */
export function limitsOf(spec: QosSpec): Figures {
  const out: Figures = {};
  for (const d of DIMENSIONS) if (spec.max[d] !== undefined) out[d] = spec.max[d];
  return out;
}

export function hasLimits(spec: QosSpec): boolean {
  return DIMENSIONS.some((d) => spec.max[d] !== undefined);
}

/** Returns the first inconsistency as `field: reason`, or undefined. */
export function checkSpec(spec: QosSpec): string | undefined {
  for (const d of DIMENSIONS) {
    const lo = spec.min[d];
    const hi = spec.max[d];
    if (lo !== undefined && hi !== undefined && lo > hi) {
      return `min.${d}: guarantee ${lo} is above the limit max.${d} ${hi}`;
    }
  }
  for (const dir of DIRECTIONS) {
    if (spec.latency?.[dir] === undefined) continue;
    // A target is held by cutting neighbours for the volume's guaranteed IO; IO beyond a
    // guarantee is the volume's own queue, which no cut of the neighbours shortens.
    const [iops, bps] = DIRECTION_FIGURES[dir];
    if (!spec.min[iops] && !spec.min[bps]) return `latency.${dir}: a latency target needs a ${dir} guarantee (min.${iops} or min.${bps})`;
  }
  return undefined;
}

export function sameLatency(a: LatencyTargets | undefined, b: LatencyTargets | undefined): boolean {
  return DIRECTIONS.every((d) => a?.[d] === b?.[d]);
}

/** Targets with `over` laid on `base` (a volume's explicit targets over its class's). */
export function latencyOver(base: LatencyTargets | undefined, over: LatencyTargets | undefined): LatencyTargets | undefined {
  const out = { ...base, ...over };
  return Object.keys(out).length ? out : undefined;
}

export function sameFigures(a: Figures, b: Figures): boolean {
  return DIMENSIONS.every((d) => a[d] === b[d]);
}

export function sameSpec(a: QosSpec, b: QosSpec): boolean {
  return sameFigures(a.min, b.min) && sameFigures(a.max, b.max) && sameLatency(a.latency, b.latency);
}
