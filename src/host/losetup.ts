// Loop devices for the file pool. Lookups read sysfs (no exec on the hot path); changes go
// through losetup(8). Direct IO on the loop device keeps the backing file out of the page cache,
// so reads and writes are charged where the cgroup throttle sees them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from './exec';

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

/** The backing file of one loop device (/dev/loopN), or undefined when it is not attached. */
export function loopBacking(device: string, sysRoot = '/sys'): string | undefined {
  try {
    return fs.readFileSync(path.join(sysRoot, 'block', path.basename(device), 'loop', 'backing_file'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Every attached loop device by backing file, from one pass over /sys/block. */
export function loopsByBackingFile(sysRoot = '/sys'): Map<string, string[]> {
  const blockDir = path.join(sysRoot, 'block');
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

/** The loop devices currently backed by `file`, found through /sys/block/loopN/loop/backing_file. */
export function findLoopsByFile(file: string, sysRoot = '/sys'): string[] {
  return loopsByBackingFile(sysRoot).get(path.resolve(file)) ?? [];
}
