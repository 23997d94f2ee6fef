// Admission without root: a guarantee is admitted only while the pool's one device can still
// deliver it, whatever the mix of directions and sizes the guarantees ask for, in the
// transaction that records it; lowering always works; a calibration wins over the config.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { admissible, admit, poolCapacity } from '../../src/service/admission';
import { hostRoot } from '../../src/host/host-root';
import type { FilePoolConfig } from '../../src/config/config';
import { now } from '../../src/store/store';
import { addVolume, errorOf, memoryStore } from '../helpers/fixtures';
import { PoolService } from '../../src/service/pools';
import { runChecks } from '../../src/service/doctor';
import { blkioFor } from '../../src/host/blkio';
import { loadConfig } from '../../src/config/load';

const pool = (capacity: FilePoolConfig['capacity']): FilePoolConfig => ({ name: 'default', backend: 'file', path: '/pool', create: true, overcommit: 1, capacity });

describe('admission', () => {
  it('admits up to capacity less headroom, counting every volume of the pool', () => {
    const store = memoryStore();
    const p = pool({ readIops: 10000 });
    expect(admissible(10000, 0.1)).toBe(9000);
    addVolume(store, { name: 'a', deviceNumber: '7:1', min: { readIops: 6000 } });
    addVolume(store, { name: 'other-pool', deviceNumber: '7:2', min: { readIops: 9000 }, pool: 'fast' });
    expect(() => admit(store, 0.1, { pool: p, volume: 'b', before: {}, after: { readIops: 3000 } })).not.toThrow();
    const e = errorOf(() => admit(store, 0.1, { pool: p, volume: 'b', before: {}, after: { readIops: 3001 } }));
    expect(e.code).toBe('ResourceExhausted');
    expect(e.message).toBe('pool default: this guarantee needs 30.01% of the device (minReadIops 3001 = 30%); 30% of the 90% promisable is left');
  });

  it('counts reads and writes, small and large IOs, against one budget: opposite directions that together exceed the device are not both admitted', () => {
    // the case: 80% of the read capacity, then 80% of the write capacity, same pool
    const store = memoryStore();
    const p = pool({ readIops: 1545, writeIops: 1545, readBps: 100_000_000, writeBps: 50_000_000 });
    expect(() => admit(store, 0.1, { pool: p, volume: 'a', before: {}, after: { readIops: 1236 } })).not.toThrow();
    addVolume(store, { name: 'a', deviceNumber: '7:1', min: { readIops: 1236 } });
    const e = errorOf(() => admit(store, 0.1, { pool: p, volume: 'b', before: {}, after: { writeIops: 1236 } }));
    expect(e.code).toBe('ResourceExhausted');
    expect(e.message).toBe('pool default: this guarantee needs 80% of the device (minWriteIops 1236 = 80%); 10% of the 90% promisable is left');
    // what is left takes a mix: 5% of writes and 5% of large reads
    expect(() => admit(store, 0.1, { pool: p, volume: 'b', before: {}, after: { writeIops: 77, readBps: 5_000_000 } })).not.toThrow();
    const mixed = errorOf(() => admit(store, 0.1, { pool: p, volume: 'b', before: {}, after: { writeIops: 77, writeBps: 3_000_000 } }));
    expect(mixed.message).toBe('pool default: this guarantee needs 11% of the device (minWriteIops 77 = 5%, minWriteBps 3M = 6%); 10% of the 90% promisable is left');
    expect(errorOf(() => admit(store, 0.1, { pool: p, volume: 'c', before: {}, after: { writeBps: 10_485_760 } })).message).toContain('minWriteBps 10Mi = 21%');
  });

  it("does not count a volume's own reservation against its change, and always lets it lower", () => {
    const store = memoryStore();
    const p = pool({ writeIops: 1000 });
    addVolume(store, { name: 'a', deviceNumber: '7:1', min: { writeIops: 900 } });
    expect(() => admit(store, 0.1, { pool: p, volume: 'a', before: { writeIops: 900 }, after: { writeIops: 900 } })).not.toThrow();
    expect(() => admit(store, 0.1, { pool: p, volume: 'a', before: { writeIops: 900 }, after: { writeIops: 901 } })).toThrow('pool default: this guarantee needs 90.1% of the device (minWriteIops 901 = 90%); 90% of the 90% promisable is left');
    // A pool found smaller (a new calibration): over-committed, yet lowering is allowed.
    const smaller = pool({ writeIops: 500 });
    expect(() => admit(store, 0.1, { pool: smaller, volume: 'a', before: { writeIops: 900 }, after: { writeIops: 800 } })).not.toThrow();
  });

  it('refuses a guarantee in a dimension the pool has no figure for, saying how to get one', () => {
    const store = memoryStore();
    const e = errorOf(() => admit(store, 0.1, { pool: pool({ readIops: 100 }), volume: 'a', before: {}, after: { writeBps: 1 } }));
    expect(e.message).toBe('pool default has no writeBps capacity figure, so it admits no writeBps guarantee (set pools[].capacity.writeBps in the config or run: qosctl calibrate default)');
  });

  it("takes a finished calibration's figures over the config's, dimension by dimension", () => {
    const store = memoryStore();
    const c = store.calibrations.start('default', 'probe', '/pool/.calibrate', now());
    store.calibrations.finish(c.id, 'probe', { readIops: 4000 }, now());
    const cap = poolCapacity(pool({ readIops: 10000, writeIops: 2000 }), store.calibrations.latestDone().get('default'));
    expect(cap.figures).toEqual({ readIops: 4000, writeIops: 2000 });
    expect(cap.source).toEqual({ readIops: 'calibration', writeIops: 'config' });
    expect(() => admit(store, 0, { pool: pool({ readIops: 10000 }), volume: 'a', before: {}, after: { readIops: 4000 } })).not.toThrow();
    expect(() => admit(store, 0, { pool: pool({ readIops: 10000 }), volume: 'a', before: {}, after: { readIops: 4001 } })).toThrow(/needs 100.03% of the device \(minReadIops 4001 = 100%\); 100% of the 100% promisable/);
  });
});

describe('a pool over-promised under the per-dimension rule of earlier versions', () => {
  it('keeps its volumes, shows the promised share, lets guarantees be lowered and refuses raises; doctor says so', async () => {
    const store = memoryStore();
    const p = pool({ readIops: 1000, writeIops: 1000 });
    // 80% of the reads and 80% of the writes: both fitted their own dimension before
    addVolume(store, { name: 'reader', deviceNumber: '7:1', min: { readIops: 800 } });
    addVolume(store, { name: 'writer', deviceNumber: '7:2', min: { writeIops: 800 } });
    const pools = new PoolService(store, { pools: [p], headroom: 0.1 });
    const view = await pools.get('default');
    expect(view.share.promised).toBeCloseTo(1.6);
    expect(view.share).toMatchObject({ promisable: 0.9, available: 0 });
    expect(view.available).toEqual({ readIops: 0, writeIops: 0 });
    expect(() => admit(store, 0.1, { pool: p, volume: 'writer', before: { writeIops: 800 }, after: { writeIops: 100 } })).not.toThrow();
    expect(() => admit(store, 0.1, { pool: p, volume: 'new', before: {}, after: { readIops: 1 } })).toThrow('0% of the 90% promisable is left');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-admission-'));
    fs.writeFileSync(path.join(dir, 'config.yaml'), 'csi: { socket: "off" }\n');
    const config = { ...loadConfig({ config: path.join(dir, 'config.yaml') }), pools: [p] };
    const check = (await runChecks(hostRoot(), config, blkioFor({ error: 'not needed here' }), pools)).find((c) => c.name === 'pool default guarantees');
    expect(check).toMatchObject({ status: 'warn', detail: 'over-promised: the guarantees take 160% of the device, more than the 90% that may be promised; they stay, but under contention not all can be held' });
    expect(check?.fix).toContain('qosctl volume set');
  });
});

describe('what qosctl pools shows as free to guarantee', () => {
  it('is exactly what admission admits: that figure is admitted, one more is refused', async () => {
    for (const [capacity, held] of [[1800000001, 300000000], [1029, 0], [50000, 7], [1000, 333], [2000000000, 1]] as const) {
      const store = memoryStore();
      const p = pool({ readBps: capacity });
      if (held > 0) addVolume(store, { name: 'held', deviceNumber: '7:1', min: { readBps: held } });
      const view = await new PoolService(store, { pools: [p], headroom: 0.1 }).get('default');
      const free = view.available.readBps!;
      expect(() => admit(store, 0.1, { pool: p, volume: 'new', before: {}, after: { readBps: free } }), `${capacity}, ${held}: ${free}`).not.toThrow();
      expect(() => admit(store, 0.1, { pool: p, volume: 'new', before: {}, after: { readBps: free + 1 } }), `${capacity}, ${held}: ${free + 1}`).toThrow(/needs/);
    }
  });
});
