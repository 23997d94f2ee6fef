// Pool calibrations: a measured capacity per dimension, with how and when it was measured. A
// "running" row is the intent record of a calibration's scratch volume.
import { statementCache, type Db } from './db';
import type { Figures } from '../model/qos';
import type { MixCheck } from '../model/device-cost';

export interface Calibration {
  id: number;
  pool: string;
  state: 'running' | 'done' | 'failed';
  method: string;
  scratch: string;
  startedAt: string;
  finishedAt: string | null;
  figures: Figures;
  /** The mixed workloads run after the four corners, and how well the cost model predicted each. */
  mixes: MixCheck[];
  error: string | null;
}

interface Row {
  id: number; pool: string; state: Calibration['state']; method: string; scratch: string; started_at: string;
  finished_at: string | null; read_iops: number | null; write_iops: number | null; read_bps: number | null;
  write_bps: number | null; mixes: string; error: string | null;
}

function fromRow(r: Row): Calibration {
  const figures: Figures = {};
  if (r.read_iops !== null) figures.readIops = r.read_iops;
  if (r.write_iops !== null) figures.writeIops = r.write_iops;
  if (r.read_bps !== null) figures.readBps = r.read_bps;
  if (r.write_bps !== null) figures.writeBps = r.write_bps;
  return {
    id: r.id, pool: r.pool, state: r.state, method: r.method, scratch: r.scratch, startedAt: r.started_at,
    finishedAt: r.finished_at, figures, mixes: JSON.parse(r.mixes) as MixCheck[], error: r.error,
  };
}

export class CalibrationTable {
  private readonly q: ReturnType<typeof statementCache>;

  constructor(db: Db) {
    this.q = statementCache(db);
  }

  start(pool: string, method: string, scratch: string, now: string): Calibration {
    const res = this.q("INSERT INTO calibrations (pool, state, method, scratch, started_at) VALUES (?, 'running', ?, ?, ?)").run(pool, method, scratch, now);
    return this.byId(Number(res.lastInsertRowid))!;
  }

  byId(id: number): Calibration | undefined {
    const r = this.q('SELECT * FROM calibrations WHERE id = ?').get(id) as Row | undefined;
    return r && fromRow(r);
  }

  finish(id: number, method: string, f: Figures, now: string, mixes: MixCheck[] = []): Calibration {
    this.q(
      "UPDATE calibrations SET state = 'done', method = ?, finished_at = ?, read_iops = ?, write_iops = ?, read_bps = ?, write_bps = ?, mixes = ? WHERE id = ?",
    ).run(method, now, f.readIops ?? null, f.writeIops ?? null, f.readBps ?? null, f.writeBps ?? null, JSON.stringify(mixes), id);
    return this.byId(id)!;
  }

  fail(id: number, error: string, now: string): void {
    this.q("UPDATE calibrations SET state = 'failed', finished_at = ?, error = ? WHERE id = ?").run(now, error, id);
  }

  /** The newest finished calibration of each pool. */
  latestDone(): Map<string, Calibration> {
    const rows = this.q(
      "SELECT * FROM calibrations WHERE id IN (SELECT max(id) FROM calibrations WHERE state = 'done' GROUP BY pool)",
    ).all() as Row[];
    return new Map(rows.map((r) => [r.pool, fromRow(r)]));
  }

  running(): Calibration[] {
    return (this.q("SELECT * FROM calibrations WHERE state = 'running' ORDER BY id").all() as Row[]).map(fromRow);
  }
}
