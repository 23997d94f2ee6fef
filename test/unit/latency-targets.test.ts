// Latency targets at the edge and in admission (no root): the options and the API's durations,
// the rule that a target needs a guarantee in its direction, and the headroom a target takes from
// its pool (model/latency-headroom.ts: a pool holding a target T on a device that takes S for one
// IO alone promises at most 1 − S/T of it).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/util/duration';
import { limitsFromOptions } from '../../src/service/volume-options';
import { checkSpec } from '../../src/model/qos';
import { latencyCeiling } from '../../src/model/latency-headroom';
import { admit } from '../../src/service/admission';
import { PoolService } from '../../src/service/pools';
import type { FilePoolConfig } from '../../src/config/config';
import { addVolume, errorOf, memoryStore } from '../helpers/fixtures';
import { classRequest, qosChange } from '../../src/csi/controller-requests';
import { loadConfig } from '../../src/config/load';


describe('durations', () => {
  it('parse to seconds in whole microseconds, and name what is wrong', () => {
    expect(parseDuration('2ms')).toBe(0.002);
    expect(parseDuration('500us')).toBe(0.0005);
    expect(parseDuration('1.5ms')).toBe(0.0015);
    expect(parseDuration('0.01s')).toBe(0.01);
    expect(parseDuration('2 ms')).toEqual({ error: '"2 ms" is not a duration (examples: 500us, 2ms, 1.5ms, 0.01s)' });
    expect(parseDuration('0.5us')).toEqual({ error: '"0.5us" is finer than a microsecond' });
    expect(parseDuration('0ms')).toEqual({ error: '"0ms" must be above zero' });
    expect(parseDuration('11s')).toEqual({ error: '"11s" is longer than 10s' });
    expect(formatDuration(0.002)).toBe('2ms');
    expect(formatDuration(0.0005)).toBe('500us');
    expect(formatDuration(1.5)).toBe('1.5s');
  });
});

describe('latency targets at the edge', () => {
  it('flex options and CSI parameters: readLatencyTarget / writeLatencyTarget, bad values named', () => {
    const opts = new Map([['minReadIops', '200'], ['readLatencyTarget', '2ms']]);
    expect(limitsFromOptions(opts, (k) => `option ${k}`)).toEqual({ min: { readIops: 200 }, max: {}, latency: { read: 0.002 } });
    expect(() => limitsFromOptions(new Map([['writeLatencyTarget', 'fast']]), (k) => `option ${k}`)).toThrow(
      'option writeLatencyTarget: "fast" is not a duration (examples: 500us, 2ms, 1.5ms, 0.01s)',
    );
    const req = classRequest('v', { minWriteIops: '100', writeLatencyTarget: '5ms' }, { readLatencyTarget: '1ms', minReadIops: '50' });
    expect(req.qos).toEqual({ min: { writeIops: 100, readIops: 50 }, max: {}, latency: { write: 0.005, read: 0.001 } });
    expect(qosChange({ readLatencyTarget: '3ms' })).toEqual({ min: {}, max: {}, latency: { read: 0.003 } });
  });

  it('a target needs a guarantee in its direction', () => {
    expect(checkSpec({ min: { writeIops: 10 }, max: {}, latency: { read: 0.002 } })).toBe('latency.read: a latency target needs a read guarantee (min.readIops or min.readBps)');
    expect(checkSpec({ min: { readBps: 1_000_000 }, max: {}, latency: { read: 0.002 } })).toBeUndefined();
  });

  it('a class in the config file carries targets; a bad one names its key', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-latency-'));
    let n = 0;
    const file = (text: string) => {
      const f = path.join(dir, `config-${n++}.yaml`);
      fs.writeFileSync(f, text);
      return f;
    };
    const ok = loadConfig({ config: file('classes:\n  db: { min: { readIops: 200 }, latency: { read: 2ms } }\n') });
    expect(ok.classes.get('db')).toEqual({ min: { readIops: 200 }, max: {}, latency: { read: 0.002 } });
    expect(() => loadConfig({ config: file('classes:\n  db: { min: { writeIops: 200 }, latency: { read: 2ms } }\n') })).toThrow(/classes\.db\.latency\.read/);
    expect(() => loadConfig({ config: file('pools:\n  - { name: p, backend: file, create: true, path: /tmp/qosd-x, unloadedLatency: { read: 1 } }\n') })).toThrow(/unloadedLatency/);
  });
});

describe('the headroom a latency target takes', () => {
  const pool = (unloaded?: FilePoolConfig['unloadedLatency']): FilePoolConfig => ({
    name: 'default', backend: 'file', path: '/pool', create: true, overcommit: 1, capacity: { readIops: 10_000, writeIops: 10_000 },
    ...(unloaded && { unloadedLatency: unloaded }),
  });

  it('is 1 − S/T of the device, the strictest target setting it', () => {
    expect(latencyCeiling({ read: 0.0001 }, { read: 0.0005 })).toEqual({ share: 0.8, direction: 'read', target: 0.0005, unloaded: 0.0001 });
    expect(latencyCeiling({ read: 0.0001, write: 0.00005 }, { read: 0.001, write: 0.0001 })!.direction).toBe('write');
    expect(latencyCeiling({ read: 0.0001 }, {})).toBeUndefined();
  });

  it('a pool without its unloaded latency admits no target; a target not above it is refused', () => {
    const store = memoryStore();
    const none = errorOf(() => admit(store, 0.1, { pool: pool(), volume: 'a', before: {}, after: { readIops: 100 }, latencyAfter: { read: 0.002 } }));
    expect(none.code).toBe('ResourceExhausted');
    expect(none.message).toBe("pool default has no unloadedLatency.read figure, so it admits no read latency target (set pools[].unloadedLatency.read: the device's latency for one 4 KiB IO at queue depth 1)");
    const below = errorOf(() => admit(store, 0.1, { pool: pool({ read: 0.0001 }), volume: 'a', before: {}, after: { readIops: 100 }, latencyAfter: { read: 0.0001 } }));
    expect(below.message).toBe('pool default: a read latency target of 100us is not above the 100us the device takes for one IO alone');
  });

  it('lowers what the pool may promise, for every later guarantee too, and says why; a loosened target never needs room', () => {
    const store = memoryStore();
    const p = pool({ read: 0.0001 });
    // 100 µs alone, a 500 µs target: at most 80% of the device is promised (headroom alone: 90%)
    expect(() => admit(store, 0.1, { pool: p, volume: 'db', before: {}, after: { readIops: 5_000 }, latencyAfter: { read: 0.0005 } })).not.toThrow();
    addVolume(store, { name: 'db', deviceNumber: '7:1', min: { readIops: 5_000 }, latency: { read: 0.0005 } });
    expect(() => admit(store, 0.1, { pool: p, volume: 'b', before: {}, after: { writeIops: 3_000 } })).not.toThrow();
    const e = errorOf(() => admit(store, 0.1, { pool: p, volume: 'b', before: {}, after: { writeIops: 3_001 } }));
    expect(e.message).toBe(
      'pool default: this guarantee needs 30.01% of the device (minWriteIops 3001 = 30%); 30% of the 80% promisable is left (a read latency target of 500us on a device that takes 100us for one IO alone leaves 80% to promise)',
    );
    // a stricter target on a full pool is refused; the same guarantee with a looser one is not
    addVolume(store, { name: 'b', deviceNumber: '7:2', min: { writeIops: 3_000 } });
    expect(errorOf(() => admit(store, 0.1, { pool: p, volume: 'db', before: { readIops: 5_000 }, after: { readIops: 5_000 }, latencyBefore: { read: 0.0005 }, latencyAfter: { read: 0.0002 } })).code).toBe('ResourceExhausted');
    expect(() => admit(store, 0.1, { pool: p, volume: 'db', before: { readIops: 5_000 }, after: { readIops: 5_000 }, latencyBefore: { read: 0.0005 }, latencyAfter: { read: 0.001 } })).not.toThrow();
    // qosctl pools (and CSI GetCapacity through it) shows the lowered budget
    const view = new PoolService(store, { pools: [p], headroom: 0.1 }).list()[0]!;
    expect(view.share.promisable).toBeCloseTo(0.8, 9);
    expect(view.share.available).toBeCloseTo(0, 9);
  });
});
