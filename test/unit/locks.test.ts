// The keyed lock and the held-lock value the services' *Locked methods demand.
import { describe, expect, it } from 'vitest';
import { Held, KeyedLock, lockKey } from '../../src/service/locks';

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('KeyedLock', () => {
  it('runs callers of one key one after another, in arrival order', async () => {
    const lock = new KeyedLock();
    const order: string[] = [];
    const job = (name: string) =>
      lock.run([lockKey.volume('a')], async () => {
        order.push(`${name} in`);
        await tick();
        order.push(`${name} out`);
      });
    await Promise.all([job('1'), job('2'), job('3')]);
    expect(order).toEqual(['1 in', '1 out', '2 in', '2 out', '3 in', '3 out']);
  });

  it('lets different keys run at once', async () => {
    const lock = new KeyedLock();
    const order: string[] = [];
    const job = (key: string) =>
      lock.run([key], async () => {
        order.push(`${key} in`);
        await tick();
        order.push(`${key} out`);
      });
    await Promise.all([job(lockKey.volume('a')), job(lockKey.volume('b'))]);
    expect(order.slice(0, 2).sort()).toEqual(['volume:a in', 'volume:b in']);
  });

  it('never deadlocks two callers that take the same keys in opposite order', async () => {
    const lock = new KeyedLock();
    const a = lockKey.volume('a');
    const t = lockKey.target('/t');
    const results = await Promise.all([
      lock.run([a, t], async () => { await tick(); return 1; }),
      lock.run([t, a], async () => { await tick(); return 2; }),
    ]);
    expect(results).toEqual([1, 2]);
  });

  it('releases the keys when the function throws', async () => {
    const lock = new KeyedLock();
    await expect(lock.run([lockKey.volume('a')], async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(await lock.run([lockKey.volume('a')], async () => 'free')).toBe('free');
  });
});

describe('Held', () => {
  it('proves the keys it was given while the function runs, and nothing else', async () => {
    const lock = new KeyedLock();
    let kept: Held | undefined;
    await lock.run([lockKey.volume('a'), lockKey.target('/t')], async (held) => {
      held.volume('a');
      held.require(lockKey.target('/t'));
      expect(() => held.volume('b')).toThrow(/volume:b is not locked here \(held: target:\/t, volume:a\)/);
      kept = held;
    });
    // Kept past the end of run: the lock is released, so it proves nothing any more.
    expect(() => kept!.volume('a')).toThrow(/already released/);
  });

  it('is an Internal error, the code a caller cannot cause', () => {
    const held = new Held(new Set());
    try {
      held.volume('x');
      expect.unreachable();
    } catch (err) {
      expect((err as { code: string }).code).toBe('Internal');
    }
  });
});
