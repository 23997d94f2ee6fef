// Admission without root: a guarantee is admitted only while the pool can still deliver it, in
// the transaction that records it; lowering always works; a calibration wins over the config.
import { describe, expect, it } from 'vitest';
import { admissible, admit, poolCapacity } from '../../src/service/admission';
import type { FilePoolConfig } from '../../src/config/config';
import { now } from '../../src/store/store';
import { addVolume, memoryStore } from '../helpers/fixtures';

const pool = (capacity: FilePoolConfig['capacity']): FilePoolConfig => ({ name: 'default', backend: 'file', path: '/pool', capacity });
const errorOf = (fn: () => void): { code: string; message: string } => {
  try {
    fn();
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('expected a refusal');
};

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
    expect(e.message).toBe('pool default: readIops guarantee 3001 exceeds the 3000 still available of 9000 (capacity 10000 less 10% headroom)');
  });

  it("does not count a volume's own reservation against its change, and always lets it lower", () => {
    const store = memoryStore();
    const p = pool({ writeIops: 1000 });
    addVolume(store, { name: 'a', deviceNumber: '7:1', min: { writeIops: 900 } });
    expect(() => admit(store, 0.1, { pool: p, volume: 'a', before: { writeIops: 900 }, after: { writeIops: 900 } })).not.toThrow();
    expect(() => admit(store, 0.1, { pool: p, volume: 'a', before: { writeIops: 900 }, after: { writeIops: 901 } })).toThrow(/still available of 900/);
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
    expect(() => admit(store, 0, { pool: pool({ readIops: 10000 }), volume: 'a', before: {}, after: { readIops: 4001 } })).toThrow(/of 4000/);
  });
});
