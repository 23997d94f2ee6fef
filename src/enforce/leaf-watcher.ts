// Watches pod cgroups for new child cgroups (containers, the sandbox, crun's sub-groups). On cgroup
// v1 the throttle hierarchy is flat, so every new leaf needs its own rules the moment it appears;
// inotify on cgroupfs reports a mkdir as a "rename" event within a millisecond or so. The
// periodic reconcile pass (rule-pass.ts) is the safety net for anything a watch misses.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type NewCgroupHandler = (podCgroup: string, cgroupDir: string) => void;

interface PodWatch {
  /** Who wants this pod watched (attachment ids): idempotent, unlike a counter. */
  holders: Set<number>;
  watchers: Map<string, fs.FSWatcher>;
}

export class LeafWatcher {
  private readonly pods = new Map<string, PodWatch>();

  constructor(private readonly onNewCgroup: NewCgroupHandler) {}

  /** Starts (or shares) a watch on a pod cgroup and everything below it, for `holder`. */
  watch(podCgroup: string, holder: number): void {
    const existing = this.pods.get(podCgroup);
    if (existing) {
      existing.holders.add(holder);
      return;
    }
    const pod: PodWatch = { holders: new Set([holder]), watchers: new Map() };
    this.pods.set(podCgroup, pod);
    this.watchDir(podCgroup, pod, podCgroup);
  }

  /** Drops `holder`; the watch stops when the last attachment in the pod goes. */
  unwatch(podCgroup: string, holder: number): void {
    const pod = this.pods.get(podCgroup);
    if (!pod) return;
    pod.holders.delete(holder);
    if (pod.holders.size > 0) return;
    for (const w of pod.watchers.values()) w.close();
    this.pods.delete(podCgroup);
  }

  /** Whether `holder` already has the pod watched. */
  watching(podCgroup: string, holder: number): boolean {
    return this.pods.get(podCgroup)?.holders.has(holder) ?? false;
  }

  watchedPods(): string[] {
    return [...this.pods.keys()];
  }

  close(): void {
    for (const pod of this.pods.values()) for (const w of pod.watchers.values()) w.close();
    this.pods.clear();
  }

  private watchDir(podCgroup: string, pod: PodWatch, dir: string): void {
    if (pod.watchers.has(dir)) return;
    let watcher: fs.FSWatcher;
    try {
      watcher = fs.watch(dir, { persistent: false }, (event, name) => {
        if (event !== 'rename' || !name) return;
        const child = path.join(dir, name.toString());
        if (!isDir(child)) {
          // Removed: stop watching it (its watcher also errors out on its own).
          pod.watchers.get(child)?.close();
          pod.watchers.delete(child);
          return;
        }
        this.watchDir(podCgroup, pod, child);
        this.onNewCgroup(podCgroup, child);
      });
    } catch {
      return; // the directory went away before we could watch it
    }
    watcher.on('error', () => {
      watcher.close();
      pod.watchers.delete(dir);
    });
    pod.watchers.set(dir, watcher);
    // Children that already exist get watched too (a restart, or a leaf that raced the watch).
    for (const e of readDirs(dir)) this.watchDir(podCgroup, pod, path.join(dir, e));
  }
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function readDirs(dir: string): string[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}
