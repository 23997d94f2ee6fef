// Per-key async mutual exclusion: kubelet serialises operations per volume+pod, but the API and
// qosctl do not, and two pods may mount the same volume at once. One queue per key.
//
// A held lock is a value: `run` hands the function a `Held`, and the methods that may only run
// under a lock (the services' `*Locked` methods, `ensure`, `commitQos`, `recordDevice`) take it
// and check that it covers what they touch. Forgetting a lock is then an error at once, in every
// test, not a race in production.
import { QosdError } from '../model/errors';

/** The names of what can be locked; nothing else builds a key. */
export const lockKey = {
  volume: (name: string) => `volume:${name}`,
  target: (path: string) => `target:${path}`,
  calibration: (pool: string) => `calibrate:${pool}`,
};

/** Proof, for as long as `run` runs the function, that its keys are held. */
export class Held {
  private released = false;

  constructor(private readonly keys: ReadonlySet<string>) {}

  /** Throws unless `key` is held right now. */
  require(key: string): void {
    if (this.released || !this.keys.has(key)) {
      throw new QosdError('Internal', `${key} is not locked here (${this.released ? 'the lock was already released' : `held: ${[...this.keys].join(', ')}`})`);
    }
  }

  /** Throws unless the volume's lock is held right now. */
  volume(name: string): void {
    this.require(lockKey.volume(name));
  }

  release(): void {
    this.released = true;
  }
}

export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(keys: string[], fn: (held: Held) => Promise<T>): Promise<T> {
    // Sorted, de-duplicated keys: two callers locking {a, b} never deadlock on each other.
    const sorted = [...new Set(keys)].sort();
    const releases: (() => void)[] = [];
    const held = new Held(new Set(sorted));
    try {
      for (const key of sorted) releases.push(await this.acquire(key));
      return await fn(held);
    } finally {
      held.release();
      for (const r of releases.reverse()) r();
    }
  }

  private async acquire(key: string): Promise<() => void> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    return () => {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }
}
