// Where kubelet may ask qosd to mount: only inside directories kubelet owns, and never by way of
// a symlink (mount would follow it). Shared by the flex and CSI doors. A target is checked twice:
// at the door (inside kubelet's directories, as it resolves now: its canonical path is the key it
// is stored and compared by), and under the lock just before the mount, where it is made without
// following a symlink and pinned by a file descriptor the mount is then made through.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalid } from '../model/errors';
import { openPinned, symlinkOn, type Pinned } from '../host/path-walk';
import type { HostRoot } from '../host/host-root';
import type { Attachment, AttachmentKind } from '../store/attachments';
import type { MountEntry } from '../host/mountinfo';
import { deviceOf, formatDevice } from '../host/block-device';

/**
 * The canonical target (every symlink on it resolved), or InvalidArgument (naming `what`, e.g.
 * "mount directory" or "target_path") when it is not inside one of `dirs`.
 */
export function checkTargetIn(target: string | undefined, dirs: readonly string[], what: string, hint = ''): string {
  if (!target) throw invalid(`${what}: missing`);
  if (target.includes('\0')) throw invalid(`${what}: contains a NUL byte`);
  if (!path.isAbsolute(target)) throw invalid(`${what} ${target}: must be an absolute path`);
  const resolved = path.resolve(target);
  const inside = dirs.map((d) => path.resolve(d)).find((d) => resolved.startsWith(d + path.sep));
  if (inside === undefined) {
    throw invalid(`${what} ${target}: must be inside ${dirs.map((d) => `${path.resolve(d)}/`).join(' or ')}${hint}`);
  }
  // Symlinks must not lead out of the directory either: both are compared as they resolve (the
  // deepest part that exists resolved, the rest appended). A dangling link cannot be resolved and
  // is refused, since mount would follow it wherever it points later.
  const real = resolvedAsFarAsItExists(resolved, what, target);
  const realInside = resolvedAsFarAsItExists(inside, what, target);
  if (!real.startsWith(realInside + path.sep)) {
    throw invalid(`${what} ${target}: resolves outside ${inside}/ through a symlink`);
  }
  return real;
}

/**
 * Makes what a mount needs at `target` (canonical, from checkTargetIn), under the target's lock:
 * a directory for a filesystem, an empty file for a block device's bind mount. Missing
 * directories are made one at a time, and a symlink met on the way is refused.
 */
export function makeTarget(target: string, kind: AttachmentKind): void {
  refuseSymlinkOn(target);
  const dirs = kind === 'mount' ? target : path.dirname(target);
  const missing: string[] = [];
  for (let d = dirs; !lexists(d); d = path.dirname(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      fs.mkdirSync(d, { mode: 0o750 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (!fs.lstatSync(d).isDirectory()) throw invalid(`target ${target}: ${d} is not a directory (a symlink?); refusing to mount on it`);
  }
  if (kind === 'block' && !lexists(target)) {
    fs.closeSync(fs.openSync(target, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW, 0o640));
  }
}

/**
 * The target opened and pinned, checked to be the path it was meant to be: the mount is made on
 * `procPath`, so a directory swapped for a symlink after this check cannot move it. Throws
 * InvalidArgument when the target is not (or no longer) a directory (a regular file for a block
 * target) at its own path.
 */
export function pinTarget(root: HostRoot, target: string, kind: AttachmentKind): Pinned {
  let pinned: Pinned;
  try {
    pinned = openPinned(root, target, kind === 'mount' ? 'directory' : 'file');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw invalid(`target ${target}: not a ${kind === 'mount' ? 'directory' : 'regular file'} of its own (${code ?? (err as Error).message}: a symlink?); refusing to mount on it`);
  }
  if (pinned.real !== target) {
    pinned.close();
    throw invalid(`target ${target}: leads to ${pinned.real} now (a symlink was put on its path); refusing to mount on it`);
  }
  return pinned;
}

/** InvalidArgument when a component of `target` is a symlink (checked just before the node is touched there). */
export function refuseSymlinkOn(target: string): void {
  const link = symlinkOn(target);
  if (link !== undefined) throw invalid(`target ${target}: ${link} is a symlink now; refusing to act on it`);
}

/**
 * Removes what publish made at the target (the CSI spec: the SP deletes the file or directory it
 * created): an empty directory or an empty file, never anything with content in it, never through
 * a symlink.
 */
export function removeMadeTarget(target: string): void {
  refuseSymlinkOn(target);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(target);
  } catch {
    return;
  }
  if (st.isDirectory()) fs.rmdirSync(target);
  else if (st.isFile() && st.size === 0) fs.unlinkSync(target);
  else throw new Error('not an empty directory or an empty file');
}

/** A path with every symlink on it resolved as far as it exists (the key targets are stored by); `p` itself if that fails. */
export function canonicalPath(p: string): string {
  try {
    return resolvedAsFarAsItExists(path.resolve(p), 'path', p);
  } catch {
    return p;
  }
}

function resolvedAsFarAsItExists(p: string, what: string, target: string): string {
  let probe = p;
  while (!lexists(probe)) probe = path.dirname(probe);
  let real: string;
  try {
    real = fs.realpathSync(probe);
  } catch {
    throw invalid(`${what} ${target}: ${probe} is a symlink to nowhere`);
  }
  return path.join(real, path.relative(probe, p));
}

function lexists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Whether the mounts at the attachment's target hold `want` (null: any device will do). */
export function holdsDevice(att: Attachment, here: readonly MountEntry[], want: string | null): boolean {
  if (here.length === 0) return false;
  if (want === null) return true;
  if (att.kind === 'mount') return here.some((m) => m.device === want);
  try {
    return formatDevice(deviceOf(att.target)) === want;
  } catch {
    return false;
  }
}
