// The per-volume families in pieces (metrics/volume-families.ts): at 10,000 volumes the exposition
// is sent as many small encoded pieces, split inside a family. Put back together they must be the
// same exposition, line for line, that Prometheus's own checker accepts.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { VOLUME_FAMILIES, familyHeader, familyPieces, type VolumeSample } from '../../src/metrics/volume-families';
import { TimeSlice } from '../../src/util/time-slice';

const sample = (i: number): VolumeSample => ({
  name: `v${i}`, pool: 'default', min: { readIops: 10 + i }, max: { readIops: 1000, writeBps: 1 << 20 }, effective: { readIops: 900, writeBps: 1 << 20 },
  sizeBytes: 1 << 30, allocatedBytes: 4096 * i, fsUsedBytes: i % 2 ? undefined : 8192, deviceShare: i % 3 ? 0.001 * i : undefined,
  io: [{ podUid: `0000000${i % 10}-0000-4000-8000-000000000000`, readOps: i, writeOps: 2 * i, readBytes: 4096 * i, writeBytes: 8192 * i }],
  device: i % 4 ? { device: `7:${i}`, readOps: i, writeOps: 2 * i, readSeconds: 0.001 * i, writeSeconds: 0.002 * i } : undefined,
  latencyTarget: i % 5 ? undefined : { read: 0.002 },
  attainment: i % 5
    ? []
    : [
        { volume: `v${i}`, pool: 'default', direction: 'read', guarantee: 'rate', seconds: 0.25 * i, shortSeconds: 0.25, delivered: 1.02, lastAt: 0, minutes: [] },
        { volume: `v${i}`, pool: 'default', direction: 'read', guarantee: 'latency', seconds: 0.25 * i, shortSeconds: 0, delivered: i % 2 ? Infinity : 1.5, lastAt: 0, minutes: [] },
      ],
});

async function collect(samples: VolumeSample[]): Promise<Buffer[]> {
  const pieces: Buffer[] = [];
  for await (const p of familyPieces(samples, new TimeSlice())) pieces.push(p);
  return pieces;
}

describe('the per-volume families in pieces', () => {
  it('split inside a family, the pieces make the same text as the families rendered whole', async () => {
    const samples = Array.from({ length: 2500 }, (_, i) => sample(i));
    const pieces = await collect(samples);
    // whole, as one string per family
    const whole = VOLUME_FAMILIES.map((f) => {
      const lines = familyHeader(f);
      for (const v of samples) f.lines(v, lines);
      return `${lines.join('\n')}\n\n`;
    }).join('');
    expect(Buffer.concat(pieces).toString()).toBe(whole);
    // more pieces than families (a family of 2,500 lines is split), none over 1,000 lines, each ends a line
    expect(pieces.length).toBeGreaterThan(VOLUME_FAMILIES.length);
    for (const p of pieces) {
      const text = p.toString();
      expect(text.endsWith('\n')).toBe(true);
      expect(text.split('\n').length - 1).toBeLessThanOrEqual(1001);
    }
  });

  it('is an exposition that promtool accepts', async (ctx) => {
    if (spawnSync('promtool', ['--version']).status !== 0) ctx.skip('promtool is not installed (apt-get install prometheus; CI installs it)');
    const text = Buffer.concat(await collect(Array.from({ length: 1200 }, (_, i) => sample(i)))).toString();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
    // promtool's lint notes (e.g. on counters' names) are not errors; a malformed line is
    expect(check.stderr).not.toMatch(/error while linting|text format parsing error/);
  });

  it('renders latency targets and attainment, a latency measured at 0 ms as +Inf', async () => {
    const text = Buffer.concat(await collect([sample(5), sample(10), sample(1)])).toString();
    expect(text).toContain('qosd_volume_latency_target_seconds{volume="v5",pool="default",direction="read"} 0.002');
    expect(text).toContain('qosd_volume_guarantee_seconds_total{volume="v10",pool="default",direction="read",guarantee="rate"} 2.5');
    expect(text).toContain('qosd_volume_guarantee_short_seconds_total{volume="v10",pool="default",direction="read",guarantee="rate"} 0.25');
    expect(text).toContain('qosd_volume_guarantee_delivered_ratio{volume="v5",pool="default",direction="read",guarantee="latency"} +Inf');
    expect(text).toContain('qosd_volume_guarantee_delivered_ratio{volume="v10",pool="default",direction="read",guarantee="latency"} 1.5');
    expect(text).not.toMatch(/volume="v1",pool="default",direction="read",guarantee/);
  });
});
