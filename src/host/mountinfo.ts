// This process's mountinfo (<proc>/self/mountinfo), parsed per proc(5): fields up to the optional tags, a "-" separator, then
// fstype, source and super options. Paths escape space, tab, newline and backslash as \ooo.
import * as fs from 'node:fs';
import { linePieces } from '../util/line-pieces';
import type { HostRoot } from './host-root';

export interface MountEntry {
  id: number;
  parentId: number;
  device: string; // MAJ:MIN of the filesystem's st_dev
  root: string;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
  superOptions: string;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 3) continue;
    out.push({
      id: Number(f[0]),
      parentId: Number(f[1]),
      device: f[2]!,
      root: unescape(f[3]!),
      mountPoint: unescape(f[4]!),
      options: f[5]!,
      fsType: f[sep + 1]!,
      source: unescape(f[sep + 2]!),
      superOptions: f[sep + 3] ?? '',
    });
  }
  return out;
}

export function readMountinfo(root: HostRoot): MountEntry[] {
  return parseMountinfo(fs.readFileSync(`${root.proc}/self/mountinfo`, 'utf8'));
}

/** The mounts stacked on a path, last-mounted last. */
export function mountsAt(root: HostRoot, target: string): MountEntry[] {
  return readMountinfo(root).filter((e) => e.mountPoint === target);
}

/**
 * readMountinfo in pieces, awaiting `pause` between them: a node with 10,000 volumes mounted has
 * a mountinfo of a few megabytes, more than a periodic job may parse in one go.
 */
export async function readMountinfoInPieces(root: HostRoot, pause: () => Promise<void>): Promise<MountEntry[]> {
  const text = fs.readFileSync(`${root.proc}/self/mountinfo`, 'utf8');
  const out: MountEntry[] = [];
  for (const [from, to] of linePieces(text, 16 * 1024)) {
    if (from > 0) await pause();
    for (const e of parseMountinfo(text.slice(from, to))) out.push(e);
  }
  return out;
}

/** The mounts stacked on each path, last-mounted last: one lookup per target, not a scan. */
export function byMountPoint(entries: MountEntry[]): Map<string, MountEntry[]> {
  const out = new Map<string, MountEntry[]>();
  for (const e of entries) {
    const list = out.get(e.mountPoint);
    if (list) list.push(e);
    else out.set(e.mountPoint, [e]);
  }
  return out;
}
