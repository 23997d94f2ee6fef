// The QoS model shared by the store, the API, flex options and enforcement: per dimension, an
// optional guarantee (min) and an optional limit (max). Absent means "none".

export const DIMENSIONS = ['readIops', 'writeIops', 'readBps', 'writeBps'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

export type Figures = Partial<Record<Dimension, number>>;

export interface QosSpec {
  min: Figures;
  max: Figures;
}

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
  return undefined;
}

export function sameFigures(a: Figures, b: Figures): boolean {
  return DIMENSIONS.every((d) => a[d] === b[d]);
}

export function sameSpec(a: QosSpec, b: QosSpec): boolean {
  return sameFigures(a.min, b.min) && sameFigures(a.max, b.max);
}
