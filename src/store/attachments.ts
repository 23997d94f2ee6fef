// The attachments table: a volume mounted at a target for a pod, and the cgroups qosd wrote
// rules into for it (so detach clears exactly those and a restart can re-apply them).
import { allRows, statementCache, type Db } from './db';
import type { CgroupVersion } from '../model/cgroup';

export type AttachmentState = 'attaching' | 'attached' | 'detaching';
export type Source = 'api' | 'flex' | 'csi' | 'cli' | 'reconcile';
/** mount: the volume's filesystem on a directory; block: its device node bind-mounted on a file. */
export type AttachmentKind = 'mount' | 'block';

export interface Attachment {
  id: number;
  volume: string;
  podUid: string | null;
  target: string;
  readOnly: boolean;
  kind: AttachmentKind;
  state: AttachmentState;
  cgroupVersion: CgroupVersion | null;
  podCgroup: string | null;
  /** MAJ:MIN the rules were written for. */
  device: string | null;
  cgroupPaths: string[];
  source: Source;
  createdAt: string;
  updatedAt: string;
}

interface Row {
  id: number; volume: string; pod_uid: string | null; target: string; read_only: number; kind: AttachmentKind; state: AttachmentState;
  cgroup_version: CgroupVersion | null; pod_cgroup: string | null; device: string | null; cgroup_paths: string;
  source: Source; created_at: string; updated_at: string;
}

function fromRow(r: Row): Attachment {
  return {
    id: r.id, volume: r.volume, podUid: r.pod_uid, target: r.target, readOnly: r.read_only === 1, kind: r.kind, state: r.state,
    cgroupVersion: r.cgroup_version, podCgroup: r.pod_cgroup, device: r.device,
    cgroupPaths: JSON.parse(r.cgroup_paths) as string[], source: r.source, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

export type AttachmentChanges = Partial<Pick<Attachment, 'state' | 'cgroupVersion' | 'podCgroup' | 'device' | 'cgroupPaths' | 'target'>>;

export class AttachmentTable {
  private readonly q: ReturnType<typeof statementCache>;

  constructor(db: Db) {
    this.q = statementCache(db);
  }

  byTarget(target: string): Attachment | undefined {
    const r = this.q('SELECT * FROM attachments WHERE target = ?').get(target) as Row | undefined;
    return r && fromRow(r);
  }

  byId(id: number): Attachment | undefined {
    const r = this.q('SELECT * FROM attachments WHERE id = ?').get(id) as Row | undefined;
    return r && fromRow(r);
  }

  list(volume?: string): Attachment[] {
    const rows = volume === undefined
      ? allRows<Row>(this.q('SELECT * FROM attachments ORDER BY id'))
      : allRows<Row>(this.q('SELECT * FROM attachments WHERE volume = ? ORDER BY id'), volume);
    return rows.map(fromRow);
  }

  /** The attachments whose rules go on this pod cgroup. */
  inPod(podCgroup: string): Attachment[] {
    return allRows<Row>(this.q('SELECT * FROM attachments WHERE pod_cgroup = ? ORDER BY id'), podCgroup).map(fromRow);
  }

  /** list() in pages of `size`, by id: callers that must not hold the event loop yield between pages. */
  *pages(size: number): Generator<Attachment[]> {
    let after = 0;
    for (;;) {
      const page = allRows<Row>(this.q('SELECT * FROM attachments WHERE id > ? ORDER BY id LIMIT ?'), after, size).map(fromRow);
      if (page.length === 0) return;
      yield page;
      if (page.length < size) return;
      after = page[page.length - 1]!.id;
    }
  }

  insert(a: Pick<Attachment, 'volume' | 'podUid' | 'target' | 'readOnly' | 'state' | 'source'> & { kind?: AttachmentKind }, now: string): Attachment {
    const res = this
      .q(
        `INSERT INTO attachments (volume, pod_uid, target, read_only, kind, state, source, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(a.volume, a.podUid, a.target, a.readOnly ? 1 : 0, a.kind ?? 'mount', a.state, a.source, now, now);
    return this.byId(Number(res.lastInsertRowid))!;
  }

  update(id: number, c: AttachmentChanges, now: string): Attachment {
    const sets = ['updated_at = @now'];
    const params: Record<string, unknown> = { id, now };
    if (c.state !== undefined) { sets.push('state = @state'); params.state = c.state; }
    if (c.cgroupVersion !== undefined) { sets.push('cgroup_version = @cv'); params.cv = c.cgroupVersion; }
    if (c.podCgroup !== undefined) { sets.push('pod_cgroup = @pc'); params.pc = c.podCgroup; }
    if (c.device !== undefined) { sets.push('device = @device'); params.device = c.device; }
    if (c.cgroupPaths !== undefined) { sets.push('cgroup_paths = @paths'); params.paths = JSON.stringify(c.cgroupPaths); }
    if (c.target !== undefined) { sets.push('target = @target'); params.target = c.target; }
    this.q(`UPDATE attachments SET ${sets.join(', ')} WHERE id = @id`).run(params);
    return this.byId(id)!;
  }

  delete(id: number): void {
    this.q('DELETE FROM attachments WHERE id = ?').run(id);
  }
}
