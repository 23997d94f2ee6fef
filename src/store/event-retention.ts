// The event log's retention: events older than events.maxAgeDays, and those beyond the newest
// events.maxRows, are removed, oldest first, a batch per turn of the event loop (at start and
// every hour), so that the log stays bounded on a node that runs for years.
import type { EventLog } from './events';

export interface EventRetention {
  maxAgeDays: number;
  maxRows: number;
}

/** Rows removed per transaction: ~1 ms of the daemon's thread each. */
const BATCH = 1000;

export async function pruneEvents(events: EventLog, keep: EventRetention, nowMs = Date.now(), pause = (): Promise<void> => new Promise((r) => setImmediate(r))): Promise<number> {
  const before = new Date(nowMs - keep.maxAgeDays * 86_400_000).toISOString();
  let removed = 0;
  for (;;) {
    const n = events.prune(before, keep.maxRows, BATCH);
    if (n === 0) return removed;
    removed += n;
    await pause();
  }
}
