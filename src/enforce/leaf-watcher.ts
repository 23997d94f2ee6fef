// Watches pod cgroups for new child cgroups (containers, the sandbox, crun's sub-groups). On cgroup
// v1 the throttle hierarchy is flat, so every new leaf needs its own rules the moment it appears;
// inotify on cgroupfs reports a mkdir as a "rename" event within a millisecond or so. The
// periodic reconcile pass (rule-pass.ts) is the safety net for anything a watch misses. The same
// watches report writes to the cgroups' rule files ("change"), which lets the pass skip reading
// what nobody wrote (rule-watch.ts): each watch begun and ended, and each write, goes in the log.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RuleWatchLog } from './rule-watch';

export type NewCgroupHandler = (podCgroup: string, cgroupDir: string) => void;

interface PodWatch {
  /** Who wants this pod watched (attachment ids): idempotent, unlike a counter. */
  holders: Set<number>;
  watchers: Map<string, fs.FSWatcher>;
}

export class LeafWatcher {
  private readonly pods = new Map<string, PodWatch>();

  constructor(
    private readonly onNewCgroup: NewCgroupHandler,
    readonly log: RuleWatchLog,
  ) {}

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
    for (const dir of [...pod.watchers.keys()]) this.stop(pod, dir);
    this.pods.delete(podCgroup);
  }

  /** Whether `holder` already has the pod watched. */
  watching(podCgroup: string, holder: number): boolean {
    return this.pods.get(podCgroup)?.holders.has(holder) ?? false;
  }

  watchedPods(): string[] {
    return [...this.pods.keys()];
  }

  /** Every cgroup watched now, as it is asked for. */
  *watchedDirs(): Generator<string> {
    for (const pod of this.pods.values()) yield* pod.watchers.keys();
  }

  close(): void {
    for (const pod of this.pods.values()) for (const dir of [...pod.watchers.keys()]) this.stop(pod, dir);
    this.pods.clear();
  }

  private stop(pod: PodWatch, dir: string): void {
    pod.watchers.get(dir)?.close();
    pod.watchers.delete(dir);
    this.log.watchEnded(dir);
  }

  private watchDir(podCgroup: string, pod: PodWatch, dir: string): void {
    if (pod.watchers.has(dir)) return;
    let watcher: fs.FSWatcher;
    try {
      watcher = fs.watch(dir, { persistent: false }, (event, name) => {
        this.log.event();
        // A write to a file in it: its rules, as far as this watch can tell.
        if (event === 'change') return this.log.ruleWritten(dir);
        if (!name) return;
        const child = path.join(dir, name.toString());
        if (!isDir(child)) {
          // Removed: stop watching it (its watcher also errors out on its own).
          if (pod.watchers.has(child)) this.stop(pod, child);
          return;
        }
        this.watchDir(podCgroup, pod, child);
        this.onNewCgroup(podCgroup, child);
      });
    } catch {
      return; // the directory went away before we could watch it
    }
    watcher.on('error', () => {
      if (pod.watchers.get(dir) === watcher) this.stop(pod, dir);
      else watcher.close();
    });
    pod.watchers.set(dir, watcher);
    this.log.watchStarted(dir);
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
