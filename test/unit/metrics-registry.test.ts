// The daemon's prom-client registry (metrics/registry.ts).
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics/registry';

describe('a registry without the process metrics', () => {
  it('exports the daemon\'s families and none of the process\'s (no event loop monitor runs for it)', async () => {
    const full = await new Metrics().registry.metrics();
    const bare = await new Metrics({ processMetrics: false }).registry.metrics();
    expect(full).toMatch(/^qosd_nodejs_eventloop_lag_seconds /m);
    expect(bare).not.toMatch(/qosd_nodejs_|qosd_process_/);
    expect(bare).toMatch(/^qosd_attachments /m);
  });
});
