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

/** The cgroup and every cgroup below it, breadth-first. */
export function cgroupTree(dir: string, children: (dir: string) => string[] = childCgroups): string[] {
  const out = [dir];
  for (let i = 0; i < out.length; i++) out.push(...children(out[i]!));
  return out;
}
