// The reconcile pass over the fixture cgroup trees (fixtures/cgroup: laid out by kubelet's naming
// rules, regular files standing in for kernel files), without root: what it writes, what it
// clears, what it leaves alone, and what it does when attaches and detaches land while it runs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { blkioFor, type Blkio } from '../../src/host/blkio';
import { confirmRepairs, findRepairs, reconcilePass, type PassContext } from '../../src/reconcile/rule-pass';
import { staticLimits } from '../../src/enforce/limit-policy';
import { TrustedRules, type RuleWatchNews } from '../../src/enforce/rule-watch';
import { StoreView } from '../../src/store/view';
import { TimeSlice } from '../../src/util/time-slice';
import { now, type Store } from '../../src/store/store';
import { FIXTURE_PODS, addAttachment, addVolume, copyTree, memoryStore } from '../helpers/fixtures';

const V1_RIOPS = 'blkio.throttle.read_iops_device';
const trees: string[] = [];
afterEach(() => {
  for (const t of trees.splice(0)) fs.rmSync(t, { recursive: true, force: true });
});

function node(tree: 'v1-cgroupfs' | 'v2-systemd'): { ctx: PassContext; store: Store; blkio: Blkio; pod: (uid: string) => string } {
  const root = copyTree(tree);
  trees.push(root);
  const v1 = tree.startsWith('v1');
  const base = v1 ? path.join(root, 'blkio') : root;
  const blkio = blkioFor({ version: v1 ? 'v1' : 'v2', base });
  const store = memoryStore();
  const pod = (uid: string): string => {
    if (v1) return uid === FIXTURE_PODS.guaranteed ? `${base}/kubepods/pod${uid}` : `${base}/kubepods/${uid === FIXTURE_PODS.burstable ? 'burstable' : 'besteffort'}/pod${uid}`;
    const u = uid.replace(/-/g, '_');
    if (uid === FIXTURE_PODS.guaranteed) return `${base}/kubepods.slice/kubepods-pod${u}.slice`;
    const qos = uid === FIXTURE_PODS.burstable ? 'burstable' : 'besteffort';
    return `${base}/kubepods.slice/kubepods-${qos}.slice/kubepods-${qos}-pod${u}.slice`;
  };
  const ctx: PassContext = { blkio, kubelet: { cgroupRoot: '/', cgroupDriver: v1 ? 'cgroupfs' : 'systemd' }, store, policy: staticLimits };
  return { ctx, store, blkio, pod };
}

const childDirs = (dir: string) => fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(dir, e.name));

describe('reconcile pass, cgroup v1 (flat: every cgroup of the pod carries the rule)', () => {
  it('writes a missing rule on the pod cgroup and each of its leaves, then finds nothing to do', async () => {
    const { ctx, store, pod } = node('v1-cgroupfs');
    const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
    const dir = pod(FIXTURE_PODS.burstable);
    addAttachment(store, vol, FIXTURE_PODS.burstable, dir, 'v1');
    const first = await reconcilePass(ctx, new TimeSlice());
    expect(first.repairs.map((r) => [r.dir, r.kind]).sort()).toEqual([dir, ...childDirs(dir)].map((d) => [d, 'differs']).sort());
    for (const d of [dir, ...childDirs(dir)]) expect(fs.readFileSync(path.join(d, V1_RIOPS), 'utf8')).toBe('7:5 200');
    // Other pods are left alone.
    expect(fs.readFileSync(path.join(pod(FIXTURE_PODS.besteffort), V1_RIOPS), 'utf8')).toBe('');
    expect((await reconcilePass(ctx, new TimeSlice())).repairs).toEqual([]);
  });

  it('rewrites a wrong rule and clears one that no attachment wants, leaving foreign devices alone', async () => {
    const { ctx, store, pod } = node('v1-cgroupfs');
    const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
    addVolume(store, { name: 'idle', deviceNumber: '7:6' });
    const dir = pod(FIXTURE_PODS.burstable);
    addAttachment(store, vol, FIXTURE_PODS.burstable, dir, 'v1');
    await reconcilePass(ctx, new TimeSlice());
    const leaf = childDirs(dir)[0]!;
    fs.writeFileSync(path.join(leaf, V1_RIOPS), '7:5 999\n');
    const other = pod(FIXTURE_PODS.besteffort);
    fs.writeFileSync(path.join(other, V1_RIOPS), '7:6 50\n'); // a crash mid-detach left it
    fs.writeFileSync(path.join(pod(FIXTURE_PODS.guaranteed), V1_RIOPS), '8:0 100\n'); // not qosd's
    const { repairs } = await reconcilePass(ctx, new TimeSlice());
    expect(repairs.map((r) => ({ dir: r.dir, kind: r.kind, found: r.found, want: r.want })).sort((a, b) => a.dir.localeCompare(b.dir))).toEqual(
      [
        { dir: leaf, kind: 'differs', found: { readIops: 999 }, want: { readIops: 200 } },
        { dir: other, kind: 'stray', found: { readIops: 50 }, want: {} },
      ].sort((a, b) => a.dir.localeCompare(b.dir)),
    );
    expect(fs.readFileSync(path.join(leaf, V1_RIOPS), 'utf8')).toBe('7:5 200');
    expect(fs.readFileSync(path.join(other, V1_RIOPS), 'utf8')).toBe('7:6 0'); // "0" is how v1 clears
    expect(fs.readFileSync(path.join(pod(FIXTURE_PODS.guaranteed), V1_RIOPS), 'utf8')).toBe('8:0 100\n');
  });
});

describe('reconcile pass, cgroup v2 (hierarchical: the pod cgroup alone)', () => {
  it('writes io.max on the pod cgroup only', async () => {
    const { ctx, store, pod } = node('v2-systemd');
    const vol = addVolume(store, { name: 'db', deviceNumber: '259:3', max: { writeBps: 4 << 20 } });
    const dir = pod(FIXTURE_PODS.guaranteed);
    addAttachment(store, vol, FIXTURE_PODS.guaranteed, dir, 'v2');
    const { repairs } = await reconcilePass(ctx, new TimeSlice());
    expect(repairs.map((r) => r.dir)).toEqual([dir]);
    expect(fs.readFileSync(path.join(dir, 'io.max'), 'utf8')).toBe(`259:3 rbps=max wbps=${4 << 20} riops=max wiops=max`);
    for (const leaf of childDirs(dir)) expect(fs.readFileSync(path.join(leaf, 'io.max'), 'utf8')).toBe('');
    expect((await reconcilePass(ctx, new TimeSlice())).repairs).toEqual([]);
  });
});

describe('reconcile pass while the store changes under it', () => {
  // A slice of 0 ms gives the loop back at every step, so work queued with setImmediate lands
  // in the middle of the pass, after it took its snapshot of the store.
  const everyStep = () => new TimeSlice(0);

  it('keeps a rule that an attach wrote after the pass read the store', async () => {
    const { ctx, store, blkio, pod } = node('v1-cgroupfs');
    const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
    ctx.view = new StoreView(store);
    await ctx.view.read(new TimeSlice()); // the snapshot the pass will start from
    const dir = pod(FIXTURE_PODS.besteffort);
    setImmediate(() => {
      addAttachment(store, vol, FIXTURE_PODS.besteffort, dir, 'v1');
      for (const d of blkio.ruleDirs(dir)) blkio.syncRules(d, '7:5', { readIops: 200 });
    });
    const { repairs } = await reconcilePass(ctx, everyStep());
    expect(repairs).toEqual([]);
    expect(fs.readFileSync(path.join(dir, V1_RIOPS), 'utf8')).toBe('7:5 200');
  });

  it('does not put back a rule that a detach cleared after the pass read the store', async () => {
    const { ctx, store, blkio, pod } = node('v1-cgroupfs');
    const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
    const dir = pod(FIXTURE_PODS.burstable);
    const att = addAttachment(store, vol, FIXTURE_PODS.burstable, dir, 'v1');
    ctx.view = new StoreView(store);
    await reconcilePass(ctx, new TimeSlice()); // rules in place, snapshot taken
    // A detach clears the rules once the volume is unmounted, and deletes the row in the same step.
    setImmediate(() => {
      for (const d of blkio.ruleDirs(dir)) blkio.clearRules(d, '7:5');
      store.attachments.delete(att.id);
    });
    const { repairs } = await reconcilePass(ctx, everyStep());
    expect(repairs).toEqual([]);
    for (const d of blkio.ruleDirs(dir)) expect(fs.readFileSync(path.join(d, V1_RIOPS), 'utf8')).toBe('7:5 0');
  });

  it('gives the loop back while it works, and still finishes', async () => {
    const { ctx, store, pod } = node('v1-cgroupfs');
    const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
    addAttachment(store, vol, FIXTURE_PODS.burstable, pod(FIXTURE_PODS.burstable), 'v1');
    const slice = everyStep();
    const { cgroups, repairs } = await reconcilePass(ctx, slice);
    expect(repairs.length).toBe(3);
    expect(cgroups).toBeGreaterThanOrEqual(9);
    expect(slice.yields).toBeGreaterThanOrEqual(cgroups);
  });
});

describe('reconcile pass found in the worker thread, confirmed on the daemon\'s (findRepairs, confirmRepairs)', () => {
  it('finds without writing, and the confirmation writes what still differs', async () => {
    const { ctx, store, pod } = node('v1-cgroupfs');
    const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
    addVolume(store, { name: 'idle', deviceNumber: '7:6' });
    const dir = pod(FIXTURE_PODS.burstable);
    addAttachment(store, vol, FIXTURE_PODS.burstable, dir, 'v1');
    const other = pod(FIXTURE_PODS.besteffort);
    fs.writeFileSync(path.join(other, V1_RIOPS), '7:6 50\n');
    const found = (await findRepairs(ctx, new TimeSlice())).repairs;
    expect(found.map((r) => [r.dir, r.kind]).sort()).toEqual([...[dir, ...childDirs(dir)].map((d) => [d, 'differs']), [other, 'stray']].sort());
    // Nothing written yet.
    for (const d of [dir, ...childDirs(dir)]) expect(fs.readFileSync(path.join(d, V1_RIOPS), 'utf8')).toBe('');
    expect(fs.readFileSync(path.join(other, V1_RIOPS), 'utf8')).toBe('7:6 50\n');
    const written = await confirmRepairs(ctx, found, new TimeSlice());
    expect(written.length).toBe(found.length);
    for (const d of [dir, ...childDirs(dir)]) expect(fs.readFileSync(path.join(d, V1_RIOPS), 'utf8')).toBe('7:5 200');
    expect(fs.readFileSync(path.join(other, V1_RIOPS), 'utf8')).toBe('7:6 0');
    expect((await findRepairs(ctx, new TimeSlice())).repairs).toEqual([]);
  });

  it('gives the event loop back between the repairs it confirms', async () => {
    const { ctx, store, pod } = node('v1-cgroupfs');
    const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
    const dir = pod(FIXTURE_PODS.burstable);
    addAttachment(store, vol, FIXTURE_PODS.burstable, dir, 'v1');
    const found = (await findRepairs(ctx, new TimeSlice())).repairs;
    expect(found.length).toBeGreaterThan(1);
    const slice = new TimeSlice(0); // every step is over budget: a turn of the loop before each
    const written = await confirmRepairs(ctx, found, slice);
    expect(written.length).toBe(found.length);
    expect(slice.yields).toBe(found.length);
  });

  it('does not undo a detach or an attach that committed between the finding and the confirmation', async () => {
    const { ctx, store, blkio, pod } = node('v1-cgroupfs');
    const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
    const late = addVolume(store, { name: 'late', deviceNumber: '7:7', max: { readIops: 300 } });
    const dir = pod(FIXTURE_PODS.burstable);
    const att = addAttachment(store, vol, FIXTURE_PODS.burstable, dir, 'v1');
    const other = pod(FIXTURE_PODS.besteffort);
    fs.writeFileSync(path.join(other, V1_RIOPS), '7:7 1\n'); // stray now: nothing wants 7:7 there
    const found = (await findRepairs(ctx, new TimeSlice())).repairs;
    expect(found.length).toBeGreaterThan(0);
    // Meanwhile the detach of db commits (clears, then deletes the row), and an attach of late to the other pod writes its rule.
    for (const d of blkio.ruleDirs(dir)) blkio.clearRules(d, '7:5');
    store.attachments.delete(att.id);
    addAttachment(store, late, FIXTURE_PODS.besteffort, other, 'v1');
    for (const d of blkio.ruleDirs(other)) blkio.syncRules(d, '7:7', { readIops: 300 });
    expect(await confirmRepairs(ctx, found, new TimeSlice())).toEqual([]);
    for (const d of blkio.ruleDirs(dir)) expect(fs.readFileSync(path.join(d, V1_RIOPS), 'utf8')).not.toContain('7:5 200');
    expect(fs.readFileSync(path.join(other, V1_RIOPS), 'utf8')).toBe('7:7 300');
  });

  it('skips a cgroup that went away before the confirmation', async () => {
    const { ctx, store, pod } = node('v1-cgroupfs');
    const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
    addAttachment(store, vol, FIXTURE_PODS.burstable, pod(FIXTURE_PODS.burstable), 'v1');
    expect(await confirmRepairs(ctx, [{ dir: path.join(pod(FIXTURE_PODS.burstable), 'gone-container'), device: '7:5' }], new TimeSlice())).toEqual([]);
  });
});

describe('reconcile pass with what the leaf watches vouch for (rule-watch.ts)', () => {
  const news = (n: Partial<RuleWatchNews>): RuleWatchNews => ({ resync: false, watched: [], unwatched: [], changed: [], full: false, ...n });

  it('does not read a watched cgroup it found right until a write is reported, a full pass comes, or its wants change', async () => {
    const { ctx, store, pod } = node('v1-cgroupfs');
    const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
    const dir = pod(FIXTURE_PODS.burstable);
    addAttachment(store, vol, FIXTURE_PODS.burstable, dir, 'v1');
    await reconcilePass(ctx, new TimeSlice()); // the rules written
    const trusted = new TrustedRules();
    const leaf = childDirs(dir)[0]!;
    trusted.learn(news({ resync: true, watched: [dir, ...childDirs(dir)] }));
    const findings = async () => (await findRepairs({ ...ctx, trusted }, new TimeSlice())).repairs.map((r) => r.dir);
    expect(await findings()).toEqual([]);
    expect(trusted.size).toBe(1 + childDirs(dir).length);
    // Changed behind the watches' back (a fixture file, no event): not read, so not seen...
    fs.writeFileSync(path.join(leaf, V1_RIOPS), '7:5 999\n');
    expect(await findings()).toEqual([]);
    // ...until the watch reports the write,
    trusted.learn(news({ changed: [leaf] }));
    expect(await findings()).toEqual([leaf]);
    // and found wrong it is read at every pass until it is right.
    expect(await findings()).toEqual([leaf]);
    fs.writeFileSync(path.join(leaf, V1_RIOPS), '7:5 200\n');
    expect(await findings()).toEqual([]);
    // A full pass reads everything.
    fs.writeFileSync(path.join(leaf, V1_RIOPS), '7:5 999\n');
    expect(await findings()).toEqual([]);
    trusted.learn(news({ full: true }));
    expect(await findings()).toEqual([leaf]);
    fs.writeFileSync(path.join(leaf, V1_RIOPS), '7:5 200\n');
    expect(await findings()).toEqual([]);
    // Wants that change are compared afresh even when nobody wrote the cgroup (a store change the
    // daemon did not apply, a controller limit).
    store.volumes.update(vol.name, { qos: { min: {}, max: { readIops: 300 } } }, now());
    expect((await findings()).sort()).toEqual([dir, ...childDirs(dir)].sort());
  });

  it('trusts only cgroups watched since before the pass read them, and none whose watch ended', async () => {
    const { ctx, store, pod } = node('v1-cgroupfs');
    const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
    const dir = pod(FIXTURE_PODS.burstable);
    addAttachment(store, vol, FIXTURE_PODS.burstable, dir, 'v1');
    await reconcilePass(ctx, new TimeSlice());
    const trusted = new TrustedRules();
    const leaves = childDirs(dir);
    await findRepairs({ ...ctx, trusted }, new TimeSlice());
    expect(trusted.size).toBe(0); // nothing watched: nothing verified
    trusted.learn(news({ watched: [dir] }));
    await findRepairs({ ...ctx, trusted }, new TimeSlice());
    expect(trusted.size).toBe(1);
    trusted.learn(news({ watched: leaves }));
    await findRepairs({ ...ctx, trusted }, new TimeSlice());
    expect(trusted.size).toBe(1 + leaves.length);
    trusted.learn(news({ unwatched: [dir] }));
    expect(trusted.size).toBe(leaves.length);
    fs.writeFileSync(path.join(dir, V1_RIOPS), '7:5 999\n');
    expect((await findRepairs({ ...ctx, trusted }, new TimeSlice())).repairs.map((r) => r.dir)).toEqual([dir]);
  });

  it('does not trust a cgroup holding a rule for a device it does not want', async () => {
    const { ctx, store, pod } = node('v1-cgroupfs');
    const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
    const dir = pod(FIXTURE_PODS.burstable);
    addAttachment(store, vol, FIXTURE_PODS.burstable, dir, 'v1');
    await reconcilePass(ctx, new TimeSlice());
    fs.writeFileSync(path.join(dir, V1_RIOPS), '7:5 200\n8:0 100\n'); // 8:0 is not qosd's: left alone
    const trusted = new TrustedRules();
    trusted.learn(news({ resync: true, watched: [dir, ...childDirs(dir)] }));
    expect((await findRepairs({ ...ctx, trusted }, new TimeSlice())).repairs).toEqual([]);
    expect(trusted.vouchesFor(dir, new Map([['7:5', { readIops: 200 }]]))).toBe(false);
    expect(trusted.size).toBe(childDirs(dir).length);
  });
});

describe('reconcile pass: a device is confirmed as its volume\'s before any rule for it is written or cleared', () => {
  // identify stands in for the pools' (sysfs and stat): which numbers are whose now.
  function withIdentity(is: Record<string, 'ours' | 'gone' | 'other'>) {
    const n = node('v1-cgroupfs');
    const told: { volume: string; device: string; is: string }[] = [];
    n.ctx.identify = (_vol, device) => (is[device] === 'ours' || is[device] === undefined ? { is: 'ours' } : { is: is[device]!, why: `${device} is ${is[device]}` });
    n.ctx.onMismatch = (vol, device, id) => told.push({ volume: vol.name, device, is: id.is });
    return { ...n, told };
  }

  it("leaves a rule on a number the kernel gave to another's device, and says which volume's record is stale", async () => {
    const { ctx, store, pod, told } = withIdentity({ '7:6': 'other' });
    addVolume(store, { name: 'stale', deviceNumber: '7:6' }); // its loop detached; 7:6 is another file's now
    const foreign = pod(FIXTURE_PODS.besteffort);
    fs.writeFileSync(path.join(foreign, V1_RIOPS), '7:6 55\n'); // the other device's owner wrote it
    expect((await reconcilePass(ctx, new TimeSlice())).repairs).toEqual([]);
    expect(fs.readFileSync(path.join(foreign, V1_RIOPS), 'utf8')).toBe('7:6 55\n');
    expect(told).toEqual([{ volume: 'stale', device: '7:6', is: 'other' }]);
    // The same through the worker's path: found there, confirmed (and refused) here.
    const found = (await findRepairs(ctx, new TimeSlice())).repairs;
    expect(found.map((r) => [r.dir, r.device, r.kind])).toEqual([[foreign, '7:6', 'stray']]);
    expect(await confirmRepairs(ctx, found, new TimeSlice())).toEqual([]);
    expect(fs.readFileSync(path.join(foreign, V1_RIOPS), 'utf8')).toBe('7:6 55\n');
  });

  it('writes no rule for an attached volume whose number is another\'s now, and clears a rule of ours on a number that is nobody\'s', async () => {
    const { ctx, store, pod, told } = withIdentity({ '7:5': 'other', '7:6': 'gone' });
    const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
    const dir = pod(FIXTURE_PODS.burstable);
    addAttachment(store, vol, FIXTURE_PODS.burstable, dir, 'v1');
    addVolume(store, { name: 'idle', deviceNumber: '7:6' });
    const other = pod(FIXTURE_PODS.besteffort);
    fs.writeFileSync(path.join(other, V1_RIOPS), '7:6 50\n');
    const { repairs } = await reconcilePass(ctx, new TimeSlice());
    expect(repairs.map((r) => [r.dir, r.device, r.kind])).toEqual([[other, '7:6', 'stray']]);
    expect(fs.readFileSync(path.join(dir, V1_RIOPS), 'utf8')).toBe('');
    expect(fs.readFileSync(path.join(other, V1_RIOPS), 'utf8')).toBe('7:6 0');
    expect(told.map((t) => `${t.volume} ${t.device} ${t.is}`).sort()).toEqual(['db 7:5 other', 'idle 7:6 gone']);
  });

  it('takes the confirmed one where two volumes record one number (a stale record beside the volume that has it now)', async () => {
    const { ctx, store, pod } = node('v1-cgroupfs');
    ctx.identify = (vol) => (vol.name === 'now' ? { is: 'ours' } : { is: 'other', why: 'another file' });
    const old = addVolume(store, { name: 'old', deviceNumber: '7:5', max: { readIops: 111 } });
    const cur = addVolume(store, { name: 'now', deviceNumber: '7:5', max: { readIops: 222 } });
    addAttachment(store, old, FIXTURE_PODS.burstable, pod(FIXTURE_PODS.burstable), 'v1');
    addAttachment(store, cur, FIXTURE_PODS.besteffort, pod(FIXTURE_PODS.besteffort), 'v1');
    await reconcilePass(ctx, new TimeSlice());
    expect(fs.readFileSync(path.join(pod(FIXTURE_PODS.besteffort), V1_RIOPS), 'utf8')).toBe('7:5 222');
    expect(fs.readFileSync(path.join(pod(FIXTURE_PODS.burstable), V1_RIOPS), 'utf8')).toBe('');
  });
});
