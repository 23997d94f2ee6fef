// The device cost model (model/device-cost.ts): derived from the four corner figures, it puts each
// corner at exactly the whole device, prices any mix in between, and prices guarantees at the corners.
import { describe, expect, it } from 'vitest';
import { LARGE_IO_BYTES, SMALL_IO_BYTES, costOf, deviceCost, mixCheck, shareOf } from '../../src/model/device-cost';

const NVME = { readIops: 400_000, writeIops: 100_000, readBps: 3_000_000_000, writeBps: 1_500_000_000 };

describe('the device cost model', () => {
  it('costs each corner workload the whole device', () => {
    const m = deviceCost(NVME);
    expect(costOf(m, { readIops: 400_000, readBps: 400_000 * SMALL_IO_BYTES })).toBeCloseTo(1, 9);
    expect(costOf(m, { writeIops: 100_000, writeBps: 100_000 * SMALL_IO_BYTES })).toBeCloseTo(1, 9);
    expect(costOf(m, { readIops: 3e9 / LARGE_IO_BYTES, readBps: 3e9 })).toBeCloseTo(1, 9);
    expect(costOf(m, { writeIops: 1.5e9 / LARGE_IO_BYTES, writeBps: 1.5e9 })).toBeCloseTo(1, 9);
  });

  it('adds reads and writes on one budget: 70/30 4 KiB at the predicted rate fills the device', () => {
    const m = deviceCost(NVME);
    const perMixIo = 0.7 / 400_000 + 0.3 / 100_000; // device seconds per IO of the mix
    const rate = 1 / perMixIo;
    expect(costOf(m, { readIops: 0.7 * rate, readBps: 0.7 * rate * 4096, writeIops: 0.3 * rate, writeBps: 0.3 * rate * 4096 })).toBeCloseTo(1, 9);
    // a reader at 80% of the read IOPS figure and a writer at 80% of the write figure: 160% of the device
    expect(costOf(m, { readIops: 320_000, readBps: 320_000 * 4096, writeIops: 80_000, writeBps: 80_000 * 4096 })).toBeCloseTo(1.6, 9);
  });

  it('prices a 128 KiB IO between the corners: dearer than a 4 KiB one, cheaper per byte', () => {
    const m = deviceCost(NVME);
    const small = costOf(m, { readIops: 1, readBps: 4096 });
    const mid = costOf(m, { readIops: 1, readBps: 131072 });
    expect(mid).toBeGreaterThan(small);
    expect(mid / 131072).toBeLessThan(small / 4096);
  });

  it('works from the figures a pool has: IOPS only, bandwidth only, or none', () => {
    expect(costOf(deviceCost({ readIops: 1000 }), { readIops: 500, readBps: 1e9 })).toBeCloseTo(0.5);
    expect(costOf(deviceCost({ writeBps: 1e8 }), { writeIops: 10_000, writeBps: 5e7 })).toBeCloseTo(0.5);
    expect(costOf(deviceCost({}), { readIops: 5 })).toBe(0);
  });

  it('prices a guarantee at the corners, per dimension, and names what it cannot price', () => {
    const s = shareOf({ readIops: 9000, writeBps: 600_000_000 }, { readIops: 3000, writeBps: 50_000_000, readBps: 1 });
    expect(s.total).toBeCloseTo(1 / 3 + 1 / 12);
    expect(s.parts.map((p) => [p.dimension, p.figure])).toEqual([['readIops', 3000], ['writeBps', 50_000_000]]);
    expect(s.unpriced).toEqual(['readBps']);
  });

  it('checks a mixed workload: the throughput it predicts for the measured mix against the measured one', () => {
    const m = deviceCost({ readIops: 1500, writeIops: 1500, readBps: 100 * 2 ** 20, writeBps: 100 * 2 ** 20 });
    // a drive held to one IO budget (qemu iops-total): 1050 reads + 450 writes of 4 KiB fill it
    const exact = mixCheck('70/30', m, { readIops: 1050, writeIops: 450, readBps: 1050 * 4096, writeBps: 450 * 4096 });
    expect(exact).toMatchObject({ name: '70/30', measuredIops: 1500, predictedIops: 1500, errorPct: 0 });
    expect(exact.cost).toBeCloseTo(1, 3);
    // a device that gave 10% more than the model says: the model predicts 10% less than measured
    const better = mixCheck('better', m, { readIops: 1155, writeIops: 495, readBps: 1155 * 4096, writeBps: 495 * 4096 });
    expect(better.errorPct).toBeCloseTo(-9.1, 1);
  });
});
