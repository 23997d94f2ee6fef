import { describe, expect, it } from 'vitest';
import { formatBytes, parseQuantity } from '../../src/util/quantity';

describe('parseQuantity', () => {
  it.each([
    ['1000', 1000], ['500M', 500e6], ['2G', 2e9], ['10Gi', 10 * 2 ** 30], ['64Mi', 64 * 2 ** 20], ['1.5Gi', 1.5 * 2 ** 30],
    ['4k', 4000], ['1Ki', 1024], [4096, 4096],
  ])('%s → %d', (input, want) => {
    expect(parseQuantity(input)).toBe(want);
  });

  it.each(['', 'fast', '-1', '0', '1.5', '10GB', '1e3', '10 Gi', '1m', '0.0001k'])('rejects %j with a reason', (input) => {
    const r = parseQuantity(input);
    expect(typeof r).toBe('object');
    expect((r as { error: string }).error).toMatch(/quantity|positive|whole/);
  });

  it('rejects non-integers and non-positive numbers', () => {
    expect(parseQuantity(1.5)).toEqual({ error: 'must be a positive integer' });
    expect(parseQuantity(0)).toEqual({ error: 'must be a positive integer' });
  });
});

describe('formatBytes', () => {
  it('prints the shortest exact form', () => {
    expect(formatBytes(2e9)).toBe('2G');
    expect(formatBytes(64 * 2 ** 20)).toBe('64Mi');
    expect(formatBytes(1000)).toBe('1k');
    expect(formatBytes(1234567)).toBe('1234567');
  });
});
