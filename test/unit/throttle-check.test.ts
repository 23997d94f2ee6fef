// The throttle assertion the node tests use: the limit is a hard upper bound; the lower bound is
// judged against an unthrottled baseline of the same read, and skipped (saying so) when the
// machine itself is too slow for the limit to be what holds the rate.
import { describe, expect, it, vi } from 'vitest';
import { checkThrottledRead } from '../helpers/throttle';

function judge(rate: number, limit: number, baseline: number) {
  const failures: string[] = [];
  const verdict = checkThrottledRead({ rate, limit, baseline: async () => baseline }, (ok, message) => {
    if (!ok) failures.push(message);
  });
  return verdict.then((v) => ({ ...v, failures }));
}

describe('throttled-read check', () => {
  it('fails a rate above the limit by more than the tolerance, whatever the baseline', async () => {
    expect((await judge(240, 200, 5000)).failures).toEqual([expect.stringContaining('above the limit 200/s')]);
    expect((await judge(229, 200, 5000)).failures).toEqual([]);
  });

  it('judges the lower bound by what a reader as fast as the baseline gets through the limit', async () => {
    // 1/(1/200 + 1/5000) = 192.3/s; less 15%: 163.5/s.
    const v = await judge(170, 200, 5000);
    expect(v.failures).toEqual([]);
    expect(v.lower).toBeCloseTo((0.85 * 5000 * 200) / 5200, 6);
    expect((await judge(150, 200, 5000)).failures).toEqual([expect.stringContaining('below 163.5/s')]);
    // On a busy machine (the same read unthrottled at 1,000/s) 145/s is no failure of the throttle.
    expect((await judge(145, 200, 1000)).failures).toEqual([]);
    expect((await judge(140, 200, 1000)).failures).toEqual([expect.stringContaining('below 141.7/s')]);
  });

  it('skips the lower bound, saying why, when the baseline is under twice the limit', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const v = await judge(20, 200, 390);
    warn.mockRestore();
    expect(v.failures).toEqual([]);
    expect(v.lower).toBeUndefined();
    expect(v.note).toContain('ran at 390.0/s, under twice the limit 200/s');
  });
});
