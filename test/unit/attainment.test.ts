// The attainment book (controller/attainment.ts): the law's per-tick attainment added up into the
// seconds each guarantee was in force and short, and the last hour by the minute.
import { describe, expect, it } from 'vitest';
import { AttainmentBook } from '../../src/controller/attainment';
import { DEFAULT_LAW, lawStep, newLawMemory, type Attained, type VolumeRates } from '../../src/controller/law';

const T0 = Date.parse('2026-12-07T12:00:00Z');
const rate = (delivered: number, short: boolean): Attained => ({ volume: 'db', pool: 'p', direction: 'read', guarantee: 'rate', delivered, short });

describe('attainment', () => {
  it('adds ticks up into seconds in force and seconds short, and keeps the worst tick of the hour', () => {
    const book = new AttainmentBook();
    for (let i = 0; i < 240; i++) book.record([rate(i === 100 ? 0.4 : 1.01, i === 100 || i === 101)], 0.25, T0 + i * 250);
    const [e] = book.of('db');
    expect(e!.seconds).toBe(60);
    expect(e!.shortSeconds).toBe(0.5);
    const [s] = book.summaries(T0 + 60_000);
    expect(s).toMatchObject({ volume: 'db', direction: 'read', guarantee: 'rate', seconds: 60, keptSeconds: 59.5, worst: 0.4, worstAt: new Date(T0 + 100 * 250).toISOString() });
  });

  it('the hour slides: minutes older than an hour leave the summary, the counters stay; a guarantee not in force for an hour is forgotten', () => {
    const book = new AttainmentBook();
    book.record([rate(0.1, true)], 1, T0);
    book.record([rate(1, false)], 1, T0 + 30 * 60_000);
    expect(book.summaries(T0 + 30 * 60_000)[0]).toMatchObject({ seconds: 2, keptSeconds: 1, worst: 0.1 });
    book.record([rate(1, false)], 1, T0 + 61 * 60_000);
    expect(book.summaries(T0 + 61 * 60_000)[0]).toMatchObject({ seconds: 2, keptSeconds: 2, worst: 1 });
    expect(book.of('db')[0]!.seconds).toBe(3);
    book.record([{ ...rate(1, false), volume: 'other' }], 1, T0 + 122 * 60_000);
    expect(book.of('db')).toEqual([]);
    expect(book.summaries(T0 + 122 * 60_000, 'db')).toEqual([]);
  });

  it("the law's attainment: a paced reader short of its rate is not short; one with IO waiting is; a latency over its target by more than 1/0.9 is", () => {
    const cap = new Map([['p', { readIops: 10_000 }]]);
    const v = (over: Partial<VolumeRates>): VolumeRates => ({ volume: 'db', pool: 'p', min: { readIops: 200 }, max: {}, rate: { readIops: 150 }, queue: 0.1, inFlight: 0, ...over });
    expect(lawStep([v({})], new Map(), cap, DEFAULT_LAW, newLawMemory()).attained).toEqual([{ volume: 'db', pool: 'p', direction: 'read', guarantee: 'rate', delivered: 0.75, short: false }]);
    expect(lawStep([v({ queue: 4 })], new Map(), cap, DEFAULT_LAW, newLawMemory()).attained[0]!.short).toBe(true);
    const timed = (ms: number) => v({ rate: { readIops: 200 }, latencyTarget: { read: 0.002 }, completed: { read: { ios: 50, seconds: ms / 1000 } } });
    const latency = (ms: number) => lawStep([timed(ms)], new Map(), cap, DEFAULT_LAW, newLawMemory()).attained.find((a) => a.guarantee === 'latency')!;
    expect(latency(100)).toMatchObject({ delivered: 1, short: false }); // 2 ms a read: on target
    expect(latency(110)).toMatchObject({ short: false }); // 2.2 ms: 91% delivered
    expect(latency(112)).toMatchObject({ short: true }); // 2.24 ms: 89%
  });
});
