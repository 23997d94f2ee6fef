// The volumes table: one row per volume, with its QoS spec in eight nullable columns.
import { allRows, statementCache, type Db } from './db';
import { DIMENSIONS, DIRECTIONS, type Dimension, type Direction, type LatencyTargets, type QosSpec } from '../model/qos';
import type { FsType } from '../model/filesystem';

export type VolumeState = 'creating' | 'ready' | 'deleting';

export interface Volume {
  name: string;
  pool: string;
  sizeBytes: number;
  fsType: FsType;
  class: string;
  ephemeral: boolean;
  state: VolumeState;
  formatted: boolean;
  /** Where the data lives: the file pool's backing file, or the lvm pool's LV path. */
  backing: string | null;
  /** The block device node the volume is reached through, e.g. /dev/loop3. */
  device: string | null;
  /** Its MAJ:MIN, the key of every cgroup rule. */
  deviceNumber: string | null;
  /** What the volume enforces and is admitted for: its class's figures, then `overrides`. */
  qos: QosSpec;
  /** The figures given explicitly for this volume (they survive a class change). */
  overrides: QosSpec;
  /** Whose it is (model/owner.ts): "ns:<namespace>", "csi", or null (nobody's yet). */
  owner: string | null;
  createdAt: string;
  updatedAt: string;
}

const COLUMN: Record<Dimension, string> = {
  readIops: 'read_iops', writeIops: 'write_iops', readBps: 'read_bps', writeBps: 'write_bps',
};

interface Row {
  name: string; pool: string; size_bytes: number; fs_type: FsType; class: string; ephemeral: number;
  state: VolumeState; formatted: number; backing: string | null; device: string | null;
  dev_major: number | null; dev_minor: number | null; qos_overrides: string; owner: string | null; created_at: string; updated_at: string;
  [qosColumn: string]: unknown;
}

/** Parses stored overrides, dropping nulls (migration 2 wrote absent figures as null). */
function parseOverrides(text: string): QosSpec {
  const raw = JSON.parse(text) as { min?: Record<string, number | null>; max?: Record<string, number | null>; latency?: Record<string, number | null> };
  const out: QosSpec = { min: {}, max: {} };
  for (const side of ['min', 'max'] as const) {
    for (const d of DIMENSIONS) {
      const v = raw[side]?.[d];
      if (typeof v === 'number') out[side][d] = v;
    }
  }
  const latency: LatencyTargets = {};
  for (const dir of DIRECTIONS) {
    const v = raw.latency?.[dir];
    if (typeof v === 'number') latency[dir] = v;
  }
  if (Object.keys(latency).length) out.latency = latency;
  return out;
}

/** The latency target columns, in whole microseconds (the model's are seconds). */
const LATENCY_COLUMN: Record<Direction, string> = { read: 'read_latency_us', write: 'write_latency_us' };
const LATENCY_COLUMNS = DIRECTIONS.map((dir) => LATENCY_COLUMN[dir]);

// Column names per dimension, computed once: fromRow runs for every row of every list.
const QOS_COLUMNS = DIMENSIONS.map((d) => [d, `min_${COLUMN[d]}`, `max_${COLUMN[d]}`] as const);
const NO_OVERRIDES = '{"min":{},"max":{}}';

function fromRow(r: Row): Volume {
  const qos: QosSpec = { min: {}, max: {} };
  for (const [d, minCol, maxCol] of QOS_COLUMNS) {
    const lo = r[minCol];
    const hi = r[maxCol];
    if (typeof lo === 'number') qos.min[d] = lo;
    if (typeof hi === 'number') qos.max[d] = hi;
  }
  for (const dir of DIRECTIONS) {
    const us = r[LATENCY_COLUMN[dir]];
    if (typeof us === 'number') (qos.latency ??= {})[dir] = us / 1e6;
  }
  return {
    name: r.name, pool: r.pool, sizeBytes: r.size_bytes, fsType: r.fs_type, class: r.class,
    ephemeral: r.ephemeral === 1, state: r.state, formatted: r.formatted === 1, backing: r.backing,
    device: r.device, deviceNumber: r.dev_major === null || r.dev_minor === null ? null : `${r.dev_major}:${r.dev_minor}`,
    qos, overrides: r.qos_overrides === NO_OVERRIDES ? { min: {}, max: {} } : parseOverrides(r.qos_overrides), owner: r.owner,
    createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

function qosColumns(qos: QosSpec): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const d of DIMENSIONS) {
    out[`min_${COLUMN[d]}`] = qos.min[d] ?? null;
    out[`max_${COLUMN[d]}`] = qos.max[d] ?? null;
  }
  for (const dir of DIRECTIONS) {
    const target = qos.latency?.[dir];
    out[LATENCY_COLUMN[dir]] = target === undefined ? null : Math.round(target * 1e6);
  }
  return out;
}

function deviceColumns(deviceNumber: string | null): { dev_major: number | null; dev_minor: number | null } {
  if (!deviceNumber) return { dev_major: null, dev_minor: null };
  const [ma, mi] = deviceNumber.split(':').map(Number);
  return { dev_major: ma!, dev_minor: mi! };
}

export type VolumeChanges = Partial<Pick<Volume, 'sizeBytes' | 'class' | 'state' | 'formatted' | 'backing' | 'device' | 'deviceNumber' | 'qos' | 'overrides' | 'owner'>>;

export class VolumeTable {
  private readonly q: ReturnType<typeof statementCache>;

  constructor(db: Db) {
    this.q = statementCache(db);
  }

  get(name: string): Volume | undefined {
    const r = this.q('SELECT * FROM volumes WHERE name = ?').get(name) as Row | undefined;
    return r && fromRow(r);
  }

  list(): Volume[] {
    return allRows<Row>(this.q('SELECT * FROM volumes ORDER BY name')).map(fromRow);
  }

  /** The volumes whose device has this number (one, unless the store is stale after a reboot). */
  byDeviceNumber(deviceNumber: string): Volume[] {
    const { dev_major, dev_minor } = deviceColumns(deviceNumber);
    return allRows<Row>(this.q('SELECT * FROM volumes WHERE dev_major = ? AND dev_minor = ?'), dev_major, dev_minor).map(fromRow);
  }

  /** list() in pages of `size`, by name: callers that must not hold the event loop yield between pages. */
  *pages(size: number): Generator<Volume[]> {
    let after = '';
    for (;;) {
      const page = allRows<Row>(this.q('SELECT * FROM volumes WHERE name > ? ORDER BY name LIMIT ?'), after, size).map(fromRow);
      if (page.length === 0) return;
      yield page;
      if (page.length < size) return;
      after = page[page.length - 1]!.name;
    }
  }

  /** Per pool: volumes, provisioned bytes and the sum of guarantees (every state counts: a volume
   *  being created or deleted still holds its reservation). */
  /** Per pool: its volumes, their bytes, their guarantees' sums, and the strictest latency target in each direction. */
  poolTotals(): Map<string, { volumes: number; sizeBytes: number; guaranteed: Record<Dimension, number>; strictest: LatencyTargets }> {
    const rows = this.q(
      `SELECT pool, count(*) AS n, sum(size_bytes) AS bytes, ${DIMENSIONS.map((d) => `coalesce(sum(min_${COLUMN[d]}), 0) AS ${d}`).join(', ')},
         min(read_latency_us) AS read, min(write_latency_us) AS write
       FROM volumes GROUP BY pool`,
    ).all() as ({ pool: string; n: number; bytes: number; read: number | null; write: number | null } & Record<Dimension, number>)[];
    return new Map(
      rows.map((r) => {
        const strictest: LatencyTargets = {};
        if (r.read !== null) strictest.read = r.read / 1e6;
        if (r.write !== null) strictest.write = r.write / 1e6;
        return [r.pool, { volumes: r.n, sizeBytes: r.bytes, guaranteed: { readIops: r.readIops, writeIops: r.writeIops, readBps: r.readBps, writeBps: r.writeBps }, strictest }];
      }),
    );
  }

  /** The strictest latency target per direction among a pool's volumes other than `except`. */
  strictestTargets(pool: string, except: string): LatencyTargets {
    const r = this.q('SELECT min(read_latency_us) AS read, min(write_latency_us) AS write FROM volumes WHERE pool = ? AND name != ?').get(pool, except) as { read: number | null; write: number | null };
    const out: LatencyTargets = {};
    if (r.read !== null) out.read = r.read / 1e6;
    if (r.write !== null) out.write = r.write / 1e6;
    return out;
  }

  countByPool(): Map<string, number> {
    const rows = this.q('SELECT pool, count(*) AS n FROM volumes GROUP BY pool').all() as { pool: string; n: number }[];
    return new Map(rows.map((r) => [r.pool, r.n]));
  }

  insert(v: Omit<Volume, 'createdAt' | 'updatedAt' | 'owner'> & { owner?: string | null }, now: string): Volume {
    this
      .q(
        `INSERT INTO volumes (name, pool, size_bytes, fs_type, class, ephemeral, state, formatted, backing, device,
           dev_major, dev_minor, ${DIMENSIONS.flatMap((d) => [`min_${COLUMN[d]}`, `max_${COLUMN[d]}`]).join(', ')}, ${LATENCY_COLUMNS.join(', ')},
           qos_overrides, owner, created_at, updated_at)
         VALUES (@name, @pool, @size_bytes, @fs_type, @class, @ephemeral, @state, @formatted, @backing, @device,
           @dev_major, @dev_minor, ${DIMENSIONS.flatMap((d) => [`@min_${COLUMN[d]}`, `@max_${COLUMN[d]}`]).join(', ')}, ${LATENCY_COLUMNS.map((c) => `@${c}`).join(', ')},
           @overrides, @owner, @now, @now)`,
      )
      .run({
        name: v.name, pool: v.pool, size_bytes: v.sizeBytes, fs_type: v.fsType, class: v.class,
        ephemeral: v.ephemeral ? 1 : 0, state: v.state, formatted: v.formatted ? 1 : 0, backing: v.backing,
        device: v.device, ...deviceColumns(v.deviceNumber), ...qosColumns(v.qos), overrides: JSON.stringify(v.overrides), owner: v.owner ?? null, now,
      });
    return this.get(v.name)!;
  }

  update(name: string, changes: VolumeChanges, now: string): Volume {
    const sets: string[] = ['updated_at = @now'];
    const params: Record<string, unknown> = { name, now };
    const simple: [keyof VolumeChanges, string, (v: never) => unknown][] = [
      ['sizeBytes', 'size_bytes', (v: number) => v],
      ['class', 'class', (v: string) => v],
      ['state', 'state', (v: string) => v],
      ['formatted', 'formatted', (v: boolean) => (v ? 1 : 0)],
      ['backing', 'backing', (v: string | null) => v],
      ['device', 'device', (v: string | null) => v],
      ['owner', 'owner', (v: string | null) => v],
    ];
    for (const [key, col, conv] of simple) {
      if (changes[key] !== undefined) {
        sets.push(`${col} = @${col}`);
        params[col] = conv(changes[key] as never);
      }
    }
    if (changes.deviceNumber !== undefined) {
      sets.push('dev_major = @dev_major', 'dev_minor = @dev_minor');
      Object.assign(params, deviceColumns(changes.deviceNumber));
    }
    if (changes.qos !== undefined) {
      const cols = qosColumns(changes.qos);
      for (const [col, val] of Object.entries(cols)) {
        sets.push(`${col} = @${col}`);
        params[col] = val;
      }
    }
    if (changes.overrides !== undefined) {
      sets.push('qos_overrides = @overrides');
      params.overrides = JSON.stringify(changes.overrides);
    }
    const res = this.q(`UPDATE volumes SET ${sets.join(', ')} WHERE name = @name`).run(params);
    if (res.changes !== 1) throw new Error(`volume ${name} not found`);
    return this.get(name)!;
  }

  delete(name: string): void {
    this.q('DELETE FROM volumes WHERE name = ?').run(name);
  }
}
