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

describe('parseQuantity, exactly', () => {
  it('takes every two-decimal k, M and G value from 0.01 to 9.99 (2,997 of them) as the whole number it names', () => {
    const wrong: string[] = [];
    for (const [suffix, factor] of [['k', 1000n], ['M', 1000_000n], ['G', 1000_000_000n]] as const) {
      for (let hundredths = 1; hundredths < 1000; hundredths++) {
        const text = `${Math.floor(hundredths / 100)}.${String(hundredths % 100).padStart(2, '0')}${suffix}`;
        const want = Number((BigInt(hundredths) * factor) / 100n);
        if (parseQuantity(text) !== want) wrong.push(`${text} → ${JSON.stringify(parseQuantity(text))}, not ${want}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('still refuses a fraction of a byte, and what does not fit a safe integer, saying which', () => {
    expect(parseQuantity('1.5')).toEqual({ error: '"1.5" is not a whole number' });
    expect(parseQuantity('0.0005k')).toEqual({ error: '"0.0005k" is not a whole number' });
    expect(parseQuantity('1.001Ki')).toEqual({ error: '"1.001Ki" is not a whole number' });
    expect(parseQuantity('99999Pi')).toEqual({ error: '"99999Pi" is too large' });
    expect(parseQuantity('1.5Ki')).toBe(1536);
  });
});
