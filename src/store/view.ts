// The volumes and attachments as periodic jobs see them: read again, in pages that give the event
// loop back between them, only when the store has changed since the last read (Store.generation).
// On a large node a full read is the costliest part of a job; the controller's ticks and the
// reconcile passes would otherwise spend most of their time re-reading rows that did not change.
import type { Store } from './store';
import type { Volume } from './volumes';
import type { Attachment } from './attachments';
import type { TimeSlice } from '../util/time-slice';

export interface StoreSnapshot {
  generation: number;
  volumes: ReadonlyMap<string, Volume>;
  attachments: readonly Attachment[];
}

const PAGE = 100;

export class StoreView {
  private last: StoreSnapshot | undefined;
  private reading: Promise<StoreSnapshot> | undefined;

  constructor(private readonly store: Store) {}

  /** The current snapshot; callers must not change what it holds. */
  async read(slice: TimeSlice): Promise<StoreSnapshot> {
    if (this.last?.generation === this.store.generation()) return this.last;
    // Two jobs that find it stale at once share one read.
    if (this.reading) return slice.wait(this.reading);
    this.reading = this.readAll(slice).finally(() => (this.reading = undefined));
    return this.reading;
  }

  /**
   * Drops the snapshot (the next read reads again). The daemon's thread reads the whole store only
   * at start-up (recovery); its periodic jobs read in the worker thread, so it keeps no 10,000
   * rows on its heap afterwards, where they would lengthen every full collection.
   */
  forget(): void {
    this.last = undefined;
  }

  private async readAll(slice: TimeSlice): Promise<StoreSnapshot> {
    for (let attempt = 1; ; attempt++) {
      const generation = this.store.generation();
      const volumes = new Map<string, Volume>();
      for (const page of this.store.volumes.pages(PAGE)) {
        for (const v of page) volumes.set(v.name, v);
        if (slice.due()) await slice.yield();
      }
      const attachments: Attachment[] = [];
      for (const page of this.store.attachments.pages(PAGE)) {
        attachments.push(...page);
        if (slice.due()) await slice.yield();
      }
      // Written to while it was read page by page: the pages may not fit together; read again. On
      // a node that never stops changing, keep the mixed read under its first generation: it is
      // stale at once, so the next read is fresh, and users that write check their writes.
      if (this.store.generation() !== generation && attempt < 3) continue;
      this.last = { generation, volumes, attachments };
      return this.last;
    }
  }
}
