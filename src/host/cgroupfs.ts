// cgroupfs as a file tree: directories are cgroups, and a cgroup can vanish at any moment (a
// container exits, a pod is deleted) between listing it and reading it.
import * as fs from 'node:fs';

/** A cgroup that went away: nothing to read or write, not an error. */
export function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENODEV';
}

/** The child cgroups among a directory's entries. */
function subdirs(dir: string, entries: fs.Dirent[]): string[] {
  const out: string[] = [];
  for (const e of entries) if (e.isDirectory()) out.push(`${dir}/${e.name}`);
  return out;
}

/** The child cgroups of a directory, or undefined when it is gone. */
export function listCgroup(dir: string): string[] | undefined {
  try {
    return subdirs(dir, fs.readdirSync(dir, { withFileTypes: true }));
  } catch (err) {
    if (isGone(err)) return undefined;
    throw err;
  }
}

/** listCgroup in the thread pool, for a directory that may hold thousands of cgroups. */
export async function listCgroupOffLoop(dir: string): Promise<string[] | undefined> {
  try {
    return subdirs(dir, await fs.promises.readdir(dir, { withFileTypes: true }));
  } catch (err) {
    if (isGone(err)) return undefined;
    throw err;
  }
}

/** The child cgroups of a directory ([] when it is gone). */
export function childCgroups(dir: string): string[] {
  return listCgroup(dir) ?? [];
}

/**
 * Whether a directory surely has no subdirectory: its link count is 2 + its subdirectories on
 * cgroupfs (kernfs keeps the count; checked on this machine's cgroup v1), tmpfs and ext4. A
 * filesystem that does not keep it reports 1, and is listed. One stat costs a third of opening
 * and listing a directory; a reconcile pass at 10,000 pods asks it of every container cgroup.
 */
function surelyLeaf(dir: string): boolean {
  return fs.statSync(dir, { throwIfNoEntry: false })?.nlink === 2;
}

/** The cgroup and every cgroup below it, breadth-first; cgroups below the first are listed only when they have children. */
export function cgroupTree(dir: string, children: (dir: string) => string[] = childCgroups): string[] {
  const out = [dir];
  for (let i = 0; i < out.length; i++) {
    if (i > 0 && surelyLeaf(out[i]!)) continue;
    out.push(...children(out[i]!));
  }
  return out;
}
