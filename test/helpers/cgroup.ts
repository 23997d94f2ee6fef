// Pod and container cgroups made the way kubelet's cgroupfs driver and containerd name them, in a
// private cgroupRoot so tests never touch a real kubelet's tree.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { spawn } from 'node:child_process';

export const BLKIO = '/sys/fs/cgroup/blkio';

export function newPodUid(): string {
  return crypto.randomUUID();
}

export function containerId(): string {
  return crypto.randomBytes(32).toString('hex');
}

/** <blkio>/<cgroupRoot>/kubepods/burstable/pod<uid>: a Burstable pod under the cgroupfs driver. */
export function makePodCgroup(cgroupRoot: string, podUid: string, qos: 'guaranteed' | 'burstable' | 'besteffort' = 'burstable'): string {
  const dir = path.join(BLKIO, cgroupRoot, 'kubepods', ...(qos === 'guaranteed' ? [] : [qos]), `pod${podUid}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export function makeLeaf(podCgroup: string, id = containerId()): string {
  const dir = path.join(podCgroup, id);
  fs.mkdirSync(dir);
  return dir;
}

/** Removes a test cgroupRoot bottom-up (cgroupfs removes a cgroup with rmdir, children first). */
export function removeCgroupTree(cgroupRoot: string): void {
  const top = path.join(BLKIO, cgroupRoot);
  if (!fs.existsSync(top)) return;
  const dirs: string[] = [top];
  for (let i = 0; i < dirs.length; i++) {
    for (const e of fs.readdirSync(dirs[i]!, { withFileTypes: true })) if (e.isDirectory()) dirs.push(path.join(dirs[i]!, e.name));
  }
  for (const d of dirs.reverse()) {
    try {
      fs.rmdirSync(d);
    } catch {
      /* still has a task: leave it */
    }
  }
}

export function ruleLines(cgroupDir: string, file: string): string {
  return fs.readFileSync(path.join(cgroupDir, file), 'utf8').trim();
}

/**
 * Runs dd with direct IO from inside `cgroupDir` (the shell moves itself into the cgroup, then
 * execs dd) and returns the wall time in seconds.
 */
export function ddRead(cgroupDir: string, device: string, bs: string, count: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('/bin/sh', ['-c', `echo $$ > "$0/cgroup.procs" && exec dd if="$1" of=/dev/null bs=${bs} count=${count} iflag=direct status=none`, cgroupDir, device], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`dd failed (${code}): ${err}`));
      resolve(Number(process.hrtime.bigint() - started) / 1e9);
    });
  });
}
