// The state store: the tables plus transactions. Everything the daemon promises lives here, and
// every change to the node is preceded by a committed row saying what is about to happen.
import { openDb, openReader, type Db } from './db';
import { VolumeTable } from './volumes';
import { AttachmentTable } from './attachments';
import { EventLog } from './events';
import { CalibrationTable } from './calibrations';

export class Store {
  readonly volumes: VolumeTable;
  readonly attachments: AttachmentTable;
  readonly events: EventLog;
  readonly calibrations: CalibrationTable;

  constructor(readonly db: Db) {
    this.volumes = new VolumeTable(db);
    this.attachments = new AttachmentTable(db);
    this.events = new EventLog(db);
    this.calibrations = new CalibrationTable(db);
  }

  static open(file: string): Store {
    return new Store(openDb(file));
  }

  /** A read-only connection beside the daemon's (the periodic jobs' worker thread). */
  static openReader(file: string): Store {
    return new Store(openReader(file));
  }

  /** Runs fn in one IMMEDIATE transaction (it takes the write lock up front, so read-then-write is safe). */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  /**
   * A number that changes whenever anything in the store was written: this connection's own
   * writes (SQLite's total_changes()) plus the commits of other connections (data_version moves
   * when another connection commits; a reader beside the daemon sees the daemon's writes so).
   * Periodic readers keep what they read until it moves, instead of reading thousands of rows
   * four times a second.
   */
  generation(): number {
    const own = (this.changes ??= this.db.prepare('SELECT total_changes() AS n').pluck()).get() as number;
    return own + ((this.version ??= this.db.prepare('PRAGMA data_version').pluck()).get() as number);
  }

  private changes: ReturnType<Db['prepare']> | undefined;
  private version: ReturnType<Db['prepare']> | undefined;

  close(): void {
    this.db.close();
  }
}

export function now(): string {
  return new Date().toISOString();
}
