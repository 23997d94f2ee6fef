// TimeSlice: a slice's wall time and, given a run clock, the CPU its thread ran within it.
import { describe, expect, it } from 'vitest';
import { restBetweenSlices, TimeSlice } from '../../src/util/time-slice';

describe('time slices', () => {
  it('counts the longest slice, and with a wait clock the longest without waiting for a core', async () => {
    // A clock of the test's own: the machine's speed and load do not enter.
    let now = 1000;
    let waited = 0;
    const slice = new TimeSlice(1, () => waited, () => now);
    now += 12; // the first slice: 12 ms, of which the thread waited 10 for a core
    waited += 10;
    expect(slice.due()).toBe(true);
    await slice.yield();
    expect(slice.due()).toBe(false);
    now += 6; // the second: 6 ms, all its own
    await slice.wait(new Promise((r) => setTimeout(() => r((now += 20)), 0)));
    slice.end();
    expect(slice.yields).toBe(1);
    expect(slice.longestMs).toBe(12);
    expect(slice.longestRunMs).toBe(6);
    // the wait's 20 ms are not a slice: the loop was free meanwhile
    expect(slice.longestMs).toBeLessThan(20);
  });

  it('measures no run time without a clock', async () => {
    const slice = new TimeSlice();
    await slice.yield();
    slice.end();
    expect(slice.longestRunMs).toBe(0);
  });

  // Last in this file: the rest stays on for the thread (the worker's, in the daemon).
  it('rests between slices once asked: the thread sleeps a timer\'s turn and gives its core up', async () => {
    restBetweenSlices();
    const slice = new TimeSlice();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < 30; i++) await slice.yield();
    const wallMs = performance.now() - t0;
    const c = process.cpuUsage(c0);
    expect(wallMs).toBeGreaterThanOrEqual(29); // a timer's turn is at least a millisecond
    expect((c.user + c.system) / 1000).toBeLessThan(wallMs / 2);
  });
});
