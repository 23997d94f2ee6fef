// The append-only event log (triggers in the schema refuse UPDATE and DELETE): every change to a
// volume, its QoS or its attachments, with when, what and who asked.
import { statementCache, type Db } from './db';
import type { Source } from './attachments';

export interface VolumeEvent {
  id: number;
  time: string;
  volume: string | null;
  kind: string;
  source: Source;
  detail: Record<string, unknown>;
}

interface Row { id: number; time: string; volume: string | null; kind: string; source: Source; detail: string }

export class EventLog {
  /** Told of every event once it is written (the daemon logs each as one line). */
  onAdd: ((e: Omit<VolumeEvent, 'id'>) => void) | undefined;
  private readonly q: ReturnType<typeof statementCache>;

  constructor(db: Db) {
    this.q = statementCache(db);
  }

  add(e: Omit<VolumeEvent, 'id'>): void {
    this
      .q('INSERT INTO events (time, volume, kind, source, detail) VALUES (?, ?, ?, ?, ?)')
      .run(e.time, e.volume, e.kind, e.source, JSON.stringify(e.detail));
    this.onAdd?.(e);
  }

  list(volume?: string, limit = 1000): VolumeEvent[] {
    const rows = volume === undefined
      ? this.q('SELECT * FROM events ORDER BY id DESC LIMIT ?').all(limit)
      : this.q('SELECT * FROM events WHERE volume = ? ORDER BY id DESC LIMIT ?').all(volume, limit);
    return (rows as Row[]).reverse().map((r) => ({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> }));
  }
}
