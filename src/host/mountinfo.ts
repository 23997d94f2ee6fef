// /proc/self/mountinfo, parsed per proc(5): fields up to the optional tags, a "-" separator, then
// fstype, source and super options. Paths escape space, tab, newline and backslash as \ooo.
import * as fs from 'node:fs';

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

export function readMountinfo(file = '/proc/self/mountinfo'): MountEntry[] {
  return parseMountinfo(fs.readFileSync(file, 'utf8'));
}

/** The mounts stacked on a path, last-mounted last. */
export function mountsAt(target: string, entries: MountEntry[] = readMountinfo()): MountEntry[] {
  return entries.filter((e) => e.mountPoint === target);
}
