// Where kubelet may ask qosd to mount: only inside directories kubelet owns, and never by way of
// a symlink that leads out of them (mount would follow it). Shared by the flex and CSI doors.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalid } from '../model/errors';

/**
 * The absolute target, or InvalidArgument (naming `what`, e.g. "mount directory" or "target_path")
 * when it is not inside one of `dirs`.
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
  return resolved;
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
