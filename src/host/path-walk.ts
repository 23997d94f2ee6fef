// Paths taken without following symlinks. A mount target kubelet names lies in directories other
// users' pods write to: a directory on its path swapped for a symlink between a check and the
// mount would put the mount elsewhere (mount(8) follows symlinks). So a target is opened, pinned
// by its file descriptor, and checked by what the kernel says that descriptor is; the mount is
// then made on <proc>/<pid>/fd/<fd>, which is that very directory whatever the path says meanwhile.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HostRoot } from './host-root';

/** The first component of absolute `p` that is a symlink, or undefined (missing ones are not). */
export function symlinkOn(p: string): string | undefined {
  let at = '/';
  for (const part of path.resolve(p).split('/').filter(Boolean)) {
    at = path.join(at, part);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(at);
    } catch {
      return undefined; // missing from here on: nothing to follow
    }
    if (st.isSymbolicLink()) return at;
  }
  return undefined;
}

export interface Pinned {
  /** The path the kernel gives the open file (readlink of <proc>/self/fd/N). */
  real: string;
  /** The open file as a path of its own, for a tool to act on it: <proc>/<pid>/fd/<fd>. */
  procPath: string;
  close(): void;
}

/**
 * Opens `p` (a directory, or a regular file) without following a symlink in its last component;
 * the caller compares `real` with the path it meant before acting on `procPath`.
 */
export function openPinned(root: HostRoot, p: string, kind: 'directory' | 'file'): Pinned {
  const { O_RDONLY, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = fs.constants;
  const fd = fs.openSync(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | (kind === 'directory' ? O_DIRECTORY : 0));
  try {
    if (kind === 'file' && !fs.fstatSync(fd).isFile()) throw Object.assign(new Error(`${p} is not a regular file`), { code: 'EFTYPE' });
    const real = fs.readlinkSync(`${root.proc}/self/fd/${fd}`);
    return { real, procPath: `${root.proc}/${process.pid}/fd/${fd}`, close: () => fs.closeSync(fd) };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}
