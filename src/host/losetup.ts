// Loop devices for the file pool. Lookups read sysfs (no exec on the hot path); changes go
// through losetup(8). Direct IO on the loop device keeps the backing file out of the page cache,
// so reads and writes are charged where the cgroup throttle sees them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { TOOL_PATH, run } from './exec';
import { decodeRdev, formatDevice } from './block-device';
import type { HostRoot } from './host-root';

export async function attachLoop(file: string): Promise<string> {
  const { stdout } = await run('losetup', ['--direct-io=on', '--find', '--show', file], { timeoutMs: 30_000 });
  const dev = stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(dev)) throw new Error(`losetup printed an unexpected device name: ${JSON.stringify(dev)}`);
  return dev;
}

export async function detachLoop(device: string): Promise<void> {
  await run('losetup', ['--detach', device], { timeoutMs: 30_000 });
}

/** Makes the loop device see the backing file's new size after a grow. */
export async function refreshLoopCapacity(device: string): Promise<void> {
  await run('losetup', ['--set-capacity', device], { timeoutMs: 30_000 });
}

/** Every attached loop device by backing file, from one pass over sysfs's <sys>/block. */
export function loopsByBackingFile(root: HostRoot): Map<string, string[]> {
  const blockDir = path.join(root.sys, 'block');
  const out = new Map<string, string[]>();
  let names: string[];
  try {
    names = fs.readdirSync(blockDir);
  } catch {
    return out;
  }
  for (const name of names) {
    if (!name.startsWith('loop')) continue;
    let backing: string;
    try {
      backing = fs.readFileSync(path.join(blockDir, name, 'loop', 'backing_file'), 'utf8').trim();
    } catch {
      continue; // not attached
    }
    const list = out.get(backing) ?? [];
    list.push(`/dev/${name}`);
    out.set(backing, list.sort());
  }
  return out;
}

/** The loop devices currently backed by `file`, found through <sys>/block/loopN/loop/backing_file. */
export function findLoopsByFile(file: string, root: HostRoot): string[] {
  return loopsByBackingFile(root).get(path.resolve(file)) ?? [];
}

/** losetup --list --json with the backing file's identity: device → "MAJ:MIN:INODE" of its file. */
export function parseLoopIdentities(json: string): Map<string, string> {
  const out = new Map<string, string>();
  const parsed = JSON.parse(json.trim() || '{}') as { loopdevices?: { name?: string; 'back-ino'?: number | string; 'back-maj:min'?: string }[] };
  for (const l of parsed.loopdevices ?? []) {
    const majMin = String(l['back-maj:min'] ?? '').trim();
    if (!l.name || l['back-ino'] === undefined || !/^\d+:\d+$/.test(majMin)) continue;
    out.set(l.name, `${majMin}:${String(l['back-ino']).trim()}`);
  }
  return out;
}

/** The identity parseLoopIdentities gives a file: its filesystem's MAJ:MIN and its inode. */
export function fileIdentity(file: string): string | undefined {
  try {
    const st = fs.statSync(file, { bigint: true });
    return `${formatDevice(decodeRdev(st.dev))}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Every loop device backed by `file`, found by the file's device and inode (LOOP_GET_STATUS64,
 * through losetup), not by path. The path a loop reports is the one it was attached through, as
 * seen in the mount namespace that attached it: a loop attached inside a service's private
 * namespace (a bind-mounted /var/lib/qosd) reports a path that matches nothing once that
 * namespace is gone, and attaching another loop to the same file would give two writable
 * devices on one filesystem.
 */
export async function findLoopsByInode(file: string): Promise<string[]> {
  const id = fileIdentity(file);
  if (!id) return [];
  return [...(await loopIdentities())].filter(([, v]) => v === id).map(([dev]) => dev).sort();
}

/**
 * The identity of the file behind one loop device (/dev/loopN), from the kernel (LOOP_GET_STATUS64,
 * through losetup), waiting for it: for the rare loop whose backing_file names a path that exists
 * nowhere (attached from a mount namespace that is gone). undefined: not attached.
 */
export function loopIdentitySync(device: string): string | undefined {
  let stdout: string;
  try {
    stdout = execFileSync('losetup', ['--list', '--json', '--output', 'NAME,BACK-INO,BACK-MAJ:MIN', device], { timeout: 5000, killSignal: 'SIGKILL', env: { PATH: TOOL_PATH, LC_ALL: 'C' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
  return parseLoopIdentities(stdout).get(device);
}

/** Every attached loop device with its backing file's identity (see parseLoopIdentities). */
export async function loopIdentities(): Promise<Map<string, string>> {
  const { stdout } = await run('losetup', ['--list', '--json', '--output', 'NAME,BACK-INO,BACK-MAJ:MIN'], { timeoutMs: 30_000 });
  return parseLoopIdentities(stdout);
}

/** The loop devices of `file`: by path first (one sysfs pass, no exec), then by inode. */
export async function findLoops(file: string, root: HostRoot): Promise<string[]> {
  const byPath = findLoopsByFile(file, root);
  const byInode = await findLoopsByInode(file);
  return [...new Set([...byPath, ...byInode])].sort();
}
