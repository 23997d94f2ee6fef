// Short durations as a user writes a latency target ("2ms", "500us", "1.5ms", "0.01s"), into
// seconds. Whole microseconds only: a finer target is below what the kernel's counters resolve.

const UNIT_US: Record<string, number> = { us: 1, 'µs': 1, ms: 1_000, s: 1_000_000 };
const DURATION = /^([0-9]+)(?:\.([0-9]+))?(us|µs|ms|s)$/;

/** The JSON-schema pattern that matches what parseDuration accepts. */
export const DURATION_PATTERN = DURATION.source;

/** The longest latency target taken: beyond it a "target" is a stuck device, not a promise. */
export const LONGEST_TARGET_S = 10;

/** Seconds, or a reason naming what is wrong (the caller names the field). */
export function parseDuration(input: string): number | { error: string } {
  const m = DURATION.exec(input.trim());
  if (!m) return { error: `"${input}" is not a duration (examples: 500us, 2ms, 1.5ms, 0.01s)` };
  const [, whole, fraction = '', unit] = m;
  const scaled = BigInt(whole! + fraction) * BigInt(UNIT_US[unit!]!);
  const divisor = 10n ** BigInt(fraction.length);
  if (scaled % divisor !== 0n) return { error: `"${input}" is finer than a microsecond` };
  const us = scaled / divisor;
  if (us <= 0n) return { error: `"${input}" must be above zero` };
  if (us > BigInt(LONGEST_TARGET_S * 1_000_000)) return { error: `"${input}" is longer than ${LONGEST_TARGET_S}s` };
  return Number(us) / 1e6;
}

/** A duration in seconds as a user would write it back: "2ms", "500us", "1.5s". */
export function formatDuration(seconds: number): string {
  const us = Math.round(seconds * 1e6);
  if (us % 1_000_000 === 0) return `${us / 1_000_000}s`;
  if (us >= 1_000_000) return `${us / 1_000_000}s`;
  if (us >= 1_000) return `${us / 1_000}ms`;
  return `${us}us`;
}
