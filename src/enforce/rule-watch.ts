// What the leaf watches tell the reconcile pass. On cgroup v1 the daemon's thread watches every
// cgroup of every attached pod for new children (leaf-watcher.ts); the same inotify watch reports
// every write(2) to a rule file in it (IN_MODIFY, which the kernel raises for cgroupfs files too:
// checked on this machine's v1 blkio, a write without O_TRUNC included). So a pass need not read a
// watched cgroup's four rule files again when it read them before, found them right, and no write
// to them has been reported since: eight files per pod that a pass finding nothing to do no
// longer opens (bench/reconcile.js measures the CPU that saves).
//
// What could slip past a watch, and what bounds it:
// - The inotify queue overflowing drops events (libuv drops the overflow notice with them). An
//   overflow needs max_queued_events events queued at once, all of which then arrive: when half
//   that many arrived since the last pass, the next pass reads every cgroup.
// - A rule vanishing without a write, with its device (blk-throttle drops a disk's rules with the
//   disk). An attached volume's device cannot go while it is mounted; to bound anything unforeseen
//   all the same, every FULL_EVERY-th pass reads every cgroup.
// The worker thread that runs the pass keeps what it verified (TrustedRules); the daemon's thread,
// where the watches are, sends it the news with each pass (RuleWatchLog.take).
import * as path from 'node:path';
import type { HostRoot } from '../host/host-root';
import * as fs from 'node:fs';
import { sameFigures, type Figures } from '../model/qos';

/** What a cgroup should hold: limits per device. */
export type Wants = ReadonlyMap<string, Figures>;

/** A full pass at least this often (with the default 10 s interval: every 5 minutes). */
export const FULL_EVERY = 30;

/** What happened to the watched cgroups since the last pass. */
export interface RuleWatchNews {
  /** `watched` is every cgroup watched now, not only those watched since: the worker is new. */
  resync: boolean;
  watched: string[];
  unwatched: string[];
  /** Cgroups whose rule files were written (by anyone, the daemon included). */
  changed: string[];
  /** Trust nothing verified before: this pass reads every cgroup. */
  full: boolean;
}

/** The inotify queue's length (procfs's sys/fs/inotify/max_queued_events), or Linux's default. */
export function inotifyQueueLength(root: HostRoot): number {
  try {
    const n = Number(fs.readFileSync(path.join(root.proc, 'sys/fs/inotify/max_queued_events'), 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : 16384;
  } catch {
    return 16384;
  }
}

/**
 * What the log held at a pass: handed over whole (the log starts afresh), turned into news in
 * parts as they are sent (newsParts).
 */
export interface RuleWatchBatch {
  resync: boolean;
  full: boolean;
  /** Each cgroup's latest: watched (true) or no longer (false). */
  watches: ReadonlyMap<string, boolean>;
  changed: ReadonlySet<string>;
  /**
   * With `resync`: every cgroup watched now, read as the parts are made. A watch begun or ended
   * meanwhile is also in the next batch, which the worker learns after this one.
   */
  all?: Iterable<string>;
}

/**
 * The batch's news in parts of at most `size` cgroups, made as they are asked for, so that the
 * daemon's thread can send them between slices: tens of thousands of paths in one message hold
 * the thread for milliseconds to copy, and as long again to gather. Learnt in order, the parts tell what the whole
 * would: the first carries `resync` and `full`.
 */
export function* newsParts(batch: RuleWatchBatch, size: number): Generator<RuleWatchNews> {
  let part: RuleWatchNews = { resync: batch.resync, watched: [], unwatched: [], changed: [], full: batch.full };
  let count = 0;
  function* add(list: 'watched' | 'unwatched' | 'changed', dir: string): Generator<RuleWatchNews> {
    if (count === size) {
      yield part;
      part = { resync: false, watched: [], unwatched: [], changed: [], full: false };
      count = 0;
    }
    part[list].push(dir);
    count++;
  }
  if (batch.all) for (const d of batch.all) yield* add('watched', d);
  else for (const [d, on] of batch.watches) if (on) yield* add('watched', d);
  for (const [d, on] of batch.watches) if (!on) yield* add('unwatched', d);
  for (const d of batch.changed) yield* add('changed', d);
  yield part;
}

/** The daemon's thread's record of its watches, drained once per pass. */
export class RuleWatchLog {
  private watches = new Map<string, boolean>();
  private changed = new Set<string>();
  private events = 0;
  private passesSinceFull = 0;

  constructor(
    private readonly queueLength: number,
    private readonly fullEvery = FULL_EVERY,
  ) {}

  watchStarted(dir: string): void {
    this.watches.set(dir, true);
  }

  watchEnded(dir: string): void {
    this.watches.set(dir, false);
  }

  /** Any event a watch delivered (counted: many of them mean the queue may have overflowed). */
  event(): void {
    this.events++;
  }

  ruleWritten(dir: string): void {
    this.changed.add(dir);
  }

  /** What the log holds, for the next pass (it starts afresh); `allWatched` when the worker is new. */
  take(allWatched?: () => Iterable<string>): RuleWatchBatch {
    const full = this.passesSinceFull + 1 >= this.fullEvery || this.events * 2 >= this.queueLength;
    const batch: RuleWatchBatch = { resync: allWatched !== undefined, full, watches: this.watches, changed: this.changed };
    if (allWatched) batch.all = allWatched();
    this.watches = new Map();
    this.changed = new Set();
    this.events = 0;
    this.passesSinceFull = full ? 0 : this.passesSinceFull + 1;
    return batch;
  }
}

/** The worker's side: which cgroups' rules a pass may take as verified, and against what. */
export class TrustedRules {
  private watched = new Set<string>();
  /** Each verified cgroup's wants when its rules were found equal to them. */
  private readonly verified = new Map<string, Wants>();

  learn(news: RuleWatchNews): void {
    if (news.resync) {
      this.watched = new Set(news.watched);
      this.verified.clear();
    } else {
      for (const d of news.watched) {
        this.watched.add(d);
        this.verified.delete(d); // watched afresh: its rules were read before the watch began
      }
    }
    for (const d of news.unwatched) {
      this.watched.delete(d);
      this.verified.delete(d);
    }
    for (const d of news.changed) this.verified.delete(d);
    if (news.full) this.verified.clear();
  }

  /**
   * Whether `dir`'s rules were read and found to be `wants` exactly, and nothing has written them
   * since: reading them again would find the same. Wants that changed since (a new limit, the
   * controller's) are compared afresh, whether or not the daemon wrote them.
   */
  vouchesFor(dir: string, wants: Wants): boolean {
    const then = this.verified.get(dir);
    return then !== undefined && sameWants(then, wants);
  }

  /**
   * A pass read `dir`'s rules. Found equal to `wants` (every wanted device's rules right, no rule
   * for another device) in a cgroup watched since before this pass, they are verified until a
   * write is reported; otherwise the next pass reads them again.
   */
  read(dir: string, wants: Wants, exact: boolean): void {
    if (exact && this.watched.has(dir)) this.verified.set(dir, wants);
    else this.verified.delete(dir);
  }

  /** How many cgroups are verified (tests, benchmarks). */
  get size(): number {
    return this.verified.size;
  }
}

function sameWants(a: Wants, b: Wants): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const [device, f] of a) {
    const g = b.get(device);
    if (g === undefined || !sameFigures(f, g)) return false;
  }
  return true;
}
