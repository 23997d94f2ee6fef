// Figures in qosctl's tables: three significant digits and a unit.
import { describe, expect, it } from 'vitest';
import { humanBytes, humanCount, humanRate } from '../../src/util/human';

describe('figures for people', () => {
  it.each([
    [humanBytes(0), '0'], [humanBytes(512), '512'], [humanBytes(64 * 2 ** 20), '64Mi'], [humanBytes(1.5 * 2 ** 30), '1.5Gi'],
    [humanBytes(80466996 * 1024), '76.7Gi'], [humanBytes(10 * 2 ** 40), '10Ti'],
    [humanRate(1607549307), '1.61G/s'], [humanRate(4 * 2 ** 20), '4.19M/s'], [humanRate(200e6), '200M/s'], [humanRate(1800000001), '1.8G/s'],
    [humanCount(850), '850'], [humanCount(20000), '20k'], [humanCount(1234567), '1.23M'], [humanCount(100000), '100k'],
  ])('%s is %s', (got, want) => expect(got).toBe(want));
});
