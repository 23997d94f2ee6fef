// Kubernetes-style quantities ("10Gi", "500M", "2G", "1000") for sizes and byte rates.
// Only whole results are accepted: a byte count or a rate of "1.5" bytes is a typo, not a value.

const SUFFIX: Record<string, number> = {
  '': 1,
  k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

const QUANTITY = /^([0-9]+)(?:\.([0-9]+))?(k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;

/** The JSON-schema pattern that matches what parseQuantity accepts (for API and config schemas). */
export const QUANTITY_PATTERN = QUANTITY.source;

/**
 * Parses a positive quantity into an integer, exactly: "2.01G" is 2,010,000,000 (decimal digits
 * and the suffix multiplied as integers, never through a binary fraction, which made 2.01 × 10⁹
 * 2009999999.9999998). Returns a reason string on bad input so that the caller can name the
 * field it came from.
 */
export function parseQuantity(input: string | number): number | { error: string } {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input <= 0) return { error: 'must be a positive integer' };
    return input;
  }
  const m = QUANTITY.exec(input.trim());
  if (!m) return { error: `"${input}" is not a quantity (examples: 1000, 500M, 10Gi)` };
  const [, whole, fraction = '', suffix = ''] = m;
  const scaled = BigInt(whole! + fraction) * BigInt(SUFFIX[suffix]!);
  const unit = 10n ** BigInt(fraction.length);
  if (scaled % unit !== 0n) return { error: `"${input}" is not a whole number` };
  const value = scaled / unit;
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) return { error: `"${input}" is too large` };
  if (value <= 0n) return { error: 'must be a positive integer' };
  return Number(value);
}

/** A quantity that has the right shape but no usable value ("99999999Ei"): bad input, a 400. */
export class QuantityError extends Error {
  readonly statusCode = 400;
}

/** parseQuantity for callers that have already validated the input's shape. */
export function quantity(input: string | number, field: string): number {
  const v = parseQuantity(input);
  if (typeof v !== 'number') throw new QuantityError(`${field}: ${v.error}`);
  return v;
}

/** The shortest exact quantity for n ("2G", "64Mi"), or the plain number. */
export function formatBytes(n: number): string {
  let best = String(n);
  for (const [suffix, factor] of Object.entries(SUFFIX)) {
    if (suffix && n >= factor && n % factor === 0) {
      const s = `${n / factor}${suffix}`;
      if (s.length < best.length) best = s;
    }
  }
  return best;
}
