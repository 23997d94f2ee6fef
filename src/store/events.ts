// The append-only event log (triggers in the schema refuse UPDATE, and DELETE but of the oldest rows
// the retention marks): every change to a volume, its QoS or its attachments, with when, what and
// who asked.
import { statementCache, type Db } from './db';
import type { Source } from './attachments';
import type { EventKind } from '../model/event-kinds';

export interface VolumeEvent {
  id: number;
  time: string;
  volume: string | null;
  kind: EventKind;
  source: Source;
  detail: Record<string, unknown>;
}

interface Row { id: number; time: string; volume: string | null; kind: EventKind; source: Source; detail: string }

export class EventLog {
  /** Told of every event once it is written (the daemon logs each as one line). */
  onAdd: ((e: Omit<VolumeEvent, 'id'>) => void) | undefined;
  private readonly q: ReturnType<typeof statementCache>;

  constructor(private readonly db: Db) {
    this.q = statementCache(db);
  }

  add(e: Omit<VolumeEvent, 'id'>): void {
    this
      .q('INSERT INTO events (time, volume, kind, source, detail) VALUES (?, ?, ?, ?, ?)')
      .run(e.time, e.volume, e.kind, e.source, JSON.stringify(e.detail));
    this.onAdd?.(e);
  }

  /**
   * Removes, oldest first, the events older than `before` (an ISO time) and those beyond the
   * newest `keep`, at most `batch` of them: the caller repeats until it returns 0, so a large
   * backlog is removed a batch per turn of the loop, not in one long transaction.
   */
  prune(before: string, keep: number, batch: number): number {
    return this.db.transaction(() => {
      const byAge = (this.q('SELECT max(id) FROM events WHERE time < ?').pluck().get(before) as number | null) ?? 0;
      const newest = (this.q('SELECT max(id) FROM events').pluck().get() as number | null) ?? 0;
      const from = (this.q('SELECT pruned_through FROM event_retention WHERE id = 1').pluck().get() as number | null) ?? 0;
      const through = Math.min(Math.max(byAge, newest - keep), from + batch);
      if (through <= from) return 0;
      this.q('UPDATE event_retention SET pruned_through = ? WHERE id = 1').run(through);
      return this.q('DELETE FROM events WHERE id <= ? AND id > ?').run(through, from).changes;
    }).immediate();
  }

  list(volume?: string, limit = 1000): VolumeEvent[] {
    const rows = volume === undefined
      ? this.q('SELECT * FROM events ORDER BY id DESC LIMIT ?').all(limit)
      : this.q('SELECT * FROM events WHERE volume = ? ORDER BY id DESC LIMIT ?').all(volume, limit);
    return (rows as Row[]).reverse().map((r) => ({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> }));
  }
}
