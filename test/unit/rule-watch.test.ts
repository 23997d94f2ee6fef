// The leaf watches' news for the reconcile pass (enforce/rule-watch.ts), without root: what the
// log hands over, when it asks for a full pass, and the leaf watcher reporting a rule file's write.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hostRoot } from '../../src/host/host-root';
import { FULL_EVERY, RuleWatchLog, TrustedRules, inotifyQueueLength, newsParts, type RuleWatchBatch, type RuleWatchNews } from '../../src/enforce/rule-watch';
import { LeafWatcher } from '../../src/enforce/leaf-watcher';

const dirs: string[] = [];
/** A batch's news in one part. */
const whole = (b: RuleWatchBatch): RuleWatchNews => [...newsParts(b, Number.MAX_SAFE_INTEGER)][0]!;
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
const until = async (what: string, ok: () => boolean): Promise<void> => {
  for (let i = 0; i < 200; i++) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe('rule watch log', () => {
  it('hands over each watch begun and ended (the latest of each) and each write, once', () => {
    const log = new RuleWatchLog(16384, 1000);
    log.watchStarted('/a');
    log.watchStarted('/b');
    log.watchEnded('/b');
    log.watchEnded('/c');
    log.watchStarted('/c');
    log.ruleWritten('/a');
    log.ruleWritten('/a');
    expect(whole(log.take())).toEqual({ resync: false, watched: ['/a', '/c'], unwatched: ['/b'], changed: ['/a'], full: false });
    expect(whole(log.take())).toEqual({ resync: false, watched: [], unwatched: [], changed: [], full: false });
  });

  it('a new worker is told every watched cgroup', () => {
    const log = new RuleWatchLog(16384, 1000);
    log.watchStarted('/a');
    expect(whole(log.take(() => ['/a', '/old']))).toMatchObject({ resync: true, watched: ['/a', '/old'] });
  });

  it(`asks for a full pass every ${FULL_EVERY}th pass, and after as many events as could have overflowed the queue`, () => {
    const log = new RuleWatchLog(100, FULL_EVERY);
    const fulls: number[] = [];
    for (let i = 1; i <= 2 * FULL_EVERY; i++) if (log.take().full) fulls.push(i);
    expect(fulls).toEqual([FULL_EVERY, 2 * FULL_EVERY]);
    for (let i = 0; i < 49; i++) log.event();
    expect(log.take().full).toBe(false);
    for (let i = 0; i < 50; i++) log.event();
    expect(log.take().full).toBe(true);
    expect(log.take().full).toBe(false);
  });

  it('splits the news in parts that, learnt in order, tell what the whole does', () => {
    const watched = Array.from({ length: 5 }, (_, i) => `/w${i}`);
    const batch: RuleWatchBatch = { resync: true, all: watched, watches: new Map([['/u0', false], ['/u1', false]]), changed: new Set(['/w1', '/w3']), full: false };
    const news = whole(batch);
    const parts = [...newsParts(batch, 3)];
    expect(parts.map((p) => [p.resync, p.watched.length + p.unwatched.length + p.changed.length])).toEqual([[true, 3], [false, 3], [false, 3]]);
    expect(parts.flatMap((p) => p.watched)).toEqual(watched);
    expect(parts.flatMap((p) => p.unwatched)).toEqual(['/u0', '/u1']);
    expect(parts.flatMap((p) => p.changed)).toEqual(['/w1', '/w3']);
    expect([...newsParts({ ...batch, full: true }, 3)][0]!.full).toBe(true);
    expect([...newsParts({ resync: false, watches: new Map(), changed: new Set(), full: false }, 3)]).toHaveLength(1);
    // Learnt whole or in parts, the same cgroups are trusted once read right.
    const wants = new Map([['7:5', { readIops: 1 }]]);
    const learntWhole = new TrustedRules();
    const learntInParts = new TrustedRules();
    learntWhole.learn(news);
    for (const p of parts) learntInParts.learn(p);
    for (const t of [learntWhole, learntInParts]) for (const d of [...watched, '/u0']) t.read(d, wants, true);
    expect(learntInParts.size).toBe(learntWhole.size);
    expect(learntWhole.size).toBe(5);
  });

  it('reads the inotify queue length, or takes Linux\'s default', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-rule-watch-'));
    dirs.push(dir);
    const root = (name: string) => hostRoot({ proc: path.join(dir, name) });
    const limit = (name: string, text: string) => {
      fs.mkdirSync(path.join(dir, name, 'sys/fs/inotify'), { recursive: true });
      fs.writeFileSync(path.join(dir, name, 'sys/fs/inotify/max_queued_events'), text);
    };
    limit('q', '5000\n');
    expect(inotifyQueueLength(root('q'))).toBe(5000);
    expect(inotifyQueueLength(root('missing'))).toBe(16384);
    limit('bad', 'lots\n');
    expect(inotifyQueueLength(root('bad'))).toBe(16384);
  });
});

describe('leaf watcher: rule writes in the watched cgroups', () => {
  it('reports a write to a rule file, with or without truncating it, and a leaf that goes', async () => {
    const pod = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-leaf-watch-'));
    dirs.push(pod);
    const leaf = path.join(pod, 'c1');
    fs.mkdirSync(leaf);
    const rule = path.join(leaf, 'blkio.throttle.read_iops_device');
    fs.writeFileSync(rule, '');
    const log = new RuleWatchLog(16384, 1000);
    const watcher = new LeafWatcher(() => {}, log);
    try {
      watcher.watch(pod, 1);
      expect(whole(log.take())).toMatchObject({ watched: [pod, leaf], changed: [] });
      let news = whole(log.take());
      const fd = fs.openSync(rule, 'r+'); // as a writer that does not truncate
      fs.writeSync(fd, '7:5 999');
      fs.closeSync(fd);
      await until('the write reported', () => (news = whole(log.take())).changed.length > 0);
      expect(news.changed).toEqual([leaf]);
      fs.writeFileSync(rule, '7:5 0'); // as most writers do (O_TRUNC)
      await until('the second write reported', () => (news = whole(log.take())).changed.length > 0);
      expect(news.changed).toEqual([leaf]);
      fs.rmSync(leaf, { recursive: true });
      await until('the leaf gone', () => (news = whole(log.take())).unwatched.length > 0);
      expect(news.unwatched).toEqual([leaf]);
      expect([...watcher.watchedDirs()]).toEqual([pod]);
    } finally {
      watcher.close();
    }
  });
});
