// What a throttle guarantees, asserted so that it holds on a busy machine. The upper bound is the
// throttle's promise: however starved the reader, the kernel never lets it past the limit (by more
// than the tolerance, which covers the first slice's burst and dd's own start). A lower bound is a
// claim about the machine as much as the throttle (a reader that waits for a core reads less,
// whatever the throttle does), so it is checked only against an unthrottled baseline of the same
// read, measured in the same test: a serial reader that takes 1/baseline seconds per IO by itself
// reads at least 1/(1/limit + 1/baseline) IOs a second under the limit. When the baseline itself
// is below twice the limit the machine, not the throttle, decides the rate: the lower bound is
// skipped and the test says so.
import { expect as vitestExpect } from 'vitest';
import { BLKIO, ddRead } from './cgroup';

export interface ThrottledRead {
  /** What was measured: units (IOs or bytes) per second, read in a throttled cgroup. */
  rate: number;
  /** The limit written for the device, in the same units. */
  limit: number;
  /** The same read unthrottled, in the same units per second (measured when asked). */
  baseline: () => Promise<number>;
  tolerance?: number;
}

export interface ThrottleVerdict {
  upper: number;
  lower: number | undefined;
  baseline: number;
  note: string | undefined;
}

/** Asserts the upper bound always, the lower one against the baseline; returns what it checked. */
export async function checkThrottledRead(r: ThrottledRead, expect: (ok: boolean, message: string) => void): Promise<ThrottleVerdict> {
  const tol = r.tolerance ?? 0.15;
  const upper = r.limit * (1 + tol);
  expect(r.rate < upper, `read ${r.rate.toFixed(1)}/s, above the limit ${r.limit}/s by more than ${tol * 100}%`);
  const baseline = await r.baseline();
  if (baseline < 2 * r.limit) {
    const note = `lower bound not checked: the same read unthrottled ran at ${baseline.toFixed(1)}/s, under twice the limit ${r.limit}/s (this machine is too busy for the limit to be what holds the rate)`;
    console.warn(`[throttle] ${note}`);
    return { upper, lower: undefined, baseline, note };
  }
  const lower = (1 - tol) / (1 / r.limit + 1 / baseline);
  expect(r.rate > lower, `read ${r.rate.toFixed(1)}/s under the limit ${r.limit}/s, below ${lower.toFixed(1)}/s, what a reader at ${baseline.toFixed(1)}/s unthrottled gets through it`);
  return { upper, lower, baseline, note: undefined };
}

/**
 * `count` direct reads of `bs` from `device` in a cgroup with no throttle rule (the hierarchy's
 * root: v1's blkio by default, the unified root on v2): units per second.
 */
export async function unthrottledReads(device: string, bs: string, count: number, unitsPerRead = 1, root = BLKIO): Promise<number> {
  return (count * unitsPerRead) / (await ddRead(root, device, bs, count));
}

/** checkThrottledRead with vitest's expect. */
export function expectThrottled(r: ThrottledRead): Promise<ThrottleVerdict> {
  return checkThrottledRead(r, (ok, message) => vitestExpect(ok, message).toBe(true));
}
