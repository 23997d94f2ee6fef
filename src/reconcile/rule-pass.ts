// One full reconcile pass: make the kernel's cgroup rules equal what SQLite says. Walks every
// cgroup under kubelet's kubepods tree (and any attached pod outside it) once, reads its rules,
// and rewrites only what differs: a wanted rule that is missing or wrong is written; a rule for a
// qosd volume's device that no attachment wants any more (a crash mid-detach, a hand edit) is
// cleared. Rules for devices qosd does not manage are never touched.
//
// A pass is a repair job (repair-job.ts) in two steps. Finding (findRepairs) reads only: the
// periodic jobs' worker runs it off the daemon's thread, recovery at start runs it in-thread. It
// gives the event loop back between small steps (util/time-slice.ts): at 10,000 attachments it
// reads tens of thousands of files, and attaches and detaches commit meanwhile. So confirming
// (confirmRepairs, on the daemon's thread) checks each finding against the cgroup and the store as
// they are now, in the same synchronous step as the write: a pass never clears a rule an attach
// has just written nor rewrites one a detach has just cleared.
import type { Blkio } from '../host/blkio';
import { isGone, listCgroup, listCgroupOffLoop } from '../host/cgroupfs';
import type { CgroupDriverSetting } from '../model/cgroup';
import { sameFigures, type Figures } from '../model/qos';
import type { Store } from '../store/store';
import type { Attachment } from '../store/attachments';
import { StoreView, type StoreSnapshot } from '../store/view';
import type { TimeSlice } from '../util/time-slice';
import type { LimitPolicy } from '../enforce/limit-policy';
import type { TrustedRules } from '../enforce/rule-watch';
import { DeviceOwners, type DeviceOwner, type Identify, type OnMismatch } from '../enforce/device-owner';
import * as path from 'node:path';

export interface Repair {
  dir: string;
  device: string;
  /** "differs": a wanted rule was missing or wrong; "stray": nothing wants this rule. */
  kind: 'differs' | 'stray';
  found: Figures;
  want: Figures;
}

export interface PassResult {
  /** The cgroups checked: their rules read, or vouched for by a watch (`trusted`). */
  cgroups: number;
  /** Of those, the ones vouched for and not read. */
  vouched: number;
  repairs: Repair[];
}

export interface PassContext {
  blkio: Blkio;
  kubelet: { cgroupRoot: string; cgroupDriver: CgroupDriverSetting };
  store: Store;
  /** The store as periodic jobs read it (default: a view of its own). */
  view?: StoreView;
  policy: LimitPolicy;
  /** Whose a device is now (the pools' identify); undefined: a recorded number is its volume's. */
  identify?: Identify;
  /** Told of a volume whose recorded device is another's or gone (found before a write). */
  onMismatch?: OnMismatch;
  /**
   * The cgroups whose rules need no reading: read right before and watched since with no write
   * seen (rule-watch.ts). The worker's pass only; a pass without it reads every cgroup.
   */
  trusted?: TrustedRules;
}

type Wants = Map<string, Figures>; // device → limits

/**
 * Whether an attachment's rules must stay: attached, or detaching (a detach unmounts before it
 * clears, so until the mount is gone, or if it cannot go, the pod keeps its limits).
 */
function holdsRules(att: Pick<Attachment, 'state'>): boolean {
  return att.state === 'attached' || att.state === 'detaching';
}

/** What SQLite wants: each pod's limits per device, and qosd's devices. */
async function wanted(snapshot: StoreSnapshot, policy: LimitPolicy, slice: TimeSlice): Promise<{ podWants: Map<string, Wants>; ours: Set<string> }> {
  const podWants = new Map<string, Wants>();
  for (const att of snapshot.attachments) {
    if (slice.due()) await slice.yield();
    if (!holdsRules(att) || !att.podCgroup) continue;
    const vol = snapshot.volumes.get(att.volume);
    if (!vol?.deviceNumber) continue;
    const wants = podWants.get(att.podCgroup) ?? new Map<string, Figures>();
    wants.set(vol.deviceNumber, policy.limitsFor(vol));
    podWants.set(att.podCgroup, wants);
  }
  const ours = new Set<string>();
  for (const v of snapshot.volumes.values()) if (v.deviceNumber) ours.add(v.deviceNumber);
  return { podWants, ours };
}

/**
 * What the store wants on `device` in `dir` right now (undefined: nothing), from the device's
 * confirmed owner, and whether a rule of ours on it may be cleared (the owner's, or nobody's).
 */
function wantNow(ctx: PassContext, dir: string, owner: DeviceOwner): { ours: boolean; want: Figures | undefined } {
  const vol = owner.volume;
  if (vol) {
    // Only the path from a pod cgroup down to `dir`: enough to ask whether the pod's rules cover it.
    const toward = (d: string): string[] => (dir.startsWith(d + '/') ? [`${d}/${dir.slice(d.length + 1).split('/')[0]}`] : []);
    for (const att of ctx.store.attachments.list(vol.name)) {
      if (!holdsRules(att) || !att.podCgroup) continue;
      if (ctx.blkio.ruleDirs(att.podCgroup, toward).includes(dir)) return { ours: true, want: ctx.policy.limitsFor(vol) };
    }
  }
  return { ours: vol !== undefined || owner.free, want: undefined };
}

/**
 * What differs between the cgroups' rules and what the store wants, found without writing: each
 * finding is a rule to write (differs) or to clear (stray), for confirmRepairs to settle.
 */
export async function findRepairs(ctx: PassContext, slice: TimeSlice): Promise<PassResult> {
  const { blkio, store } = ctx;
  const snapshot = await (ctx.view ?? new StoreView(store)).read(slice);
  const { podWants, ours } = await wanted(snapshot, ctx.policy, slice);

  const roots = blkio.kubepodsRoots(ctx.kubelet);
  for (const pod of podWants.keys()) {
    if (!roots.some((r) => pod === r || pod.startsWith(r + path.sep))) roots.push(pod);
  }

  const repairs: Repair[] = [];
  let cgroups = 0;
  let vouched = 0;
  const trusted = ctx.trusted;
  const sync = (dir: string, wants: Wants): void => {
    try {
      if (trusted?.vouchesFor(dir, wants)) {
        cgroups++;
        vouched++;
        return;
      }
      const before = repairs.length;
      const current = findIn(ctx, dir, wants, ours, repairs);
      trusted?.read(dir, wants, repairs.length === before && onlyWanted(current, wants));
      cgroups++;
    } catch (err) {
      if (!isGone(err)) throw err; // exited between the listing and the read: nothing to keep
    }
  };

  // Depth-first from the roots: each cgroup is listed and synced as it is reached, so a pass
  // keeps no picture of the whole tree. A pod with wants gets them on the cgroups the blkio
  // face names for it (v1: its whole tree, listed as it is named); everything else is checked
  // for rules nobody wants. The kubepods cgroups and their QoS-class children hold a child per
  // pod (10,000 entries take ~10 ms to list): they are listed off the loop.
  const none: Wants = new Map();
  const crowded = new Set(roots);
  const stack = [...roots].reverse();
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const wants = podWants.get(dir);
    if (wants) {
      const listed = new Map<string, string[]>();
      const ruled = blkio.ruleDirs(dir, (d) => {
        const kids = listCgroup(d) ?? [];
        listed.set(d, kids);
        return kids;
      });
      for (const r of ruled) {
        sync(r, wants);
        if (slice.due()) await slice.yield();
      }
      // Below the cgroups that carry the pod's rules (v2: below the pod cgroup), only strays.
      if (!listed.has(dir)) listed.set(dir, listCgroup(dir) ?? []);
      const covered = new Set(ruled);
      for (const kids of listed.values()) for (const k of kids) if (!covered.has(k)) stack.push(k);
      continue;
    }
    const kids = crowded.has(dir) ? await slice.wait(listCgroupOffLoop(dir)) : listCgroup(dir);
    if (kids === undefined) continue; // removed while walking: a container that just exited
    sync(dir, none);
    for (let i = kids.length - 1; i >= 0; i--) {
      const k = kids[i]!;
      if (roots.includes(dir) && !podWants.has(k)) crowded.add(k);
      stack.push(k);
    }
    if (slice.due()) await slice.yield();
  }
  slice.end();
  return { cgroups, vouched, repairs };
}

/** Whether a cgroup holds rules for wanted devices only. */
function onlyWanted(current: ReadonlyMap<string, Figures>, wants: Wants): boolean {
  for (const device of current.keys()) if (!wants.has(device)) return false;
  return true;
}

/** Reads a cgroup's rules and notes what differs from `wants`; returns what it read. */
function findIn(ctx: PassContext, dir: string, wants: Wants, ours: Set<string>, repairs: Repair[]): ReadonlyMap<string, Figures> {
  const current = ctx.blkio.readRules(dir);
  const note = (device: string, found: Figures): void => {
    const want = wants.get(device);
    if (want !== undefined && sameFigures(found, want)) return;
    if (want === undefined && (!ours.has(device) || Object.keys(found).length === 0)) return;
    repairs.push({ dir, device, kind: want !== undefined ? 'differs' : 'stray', found, want: want ?? {} });
  };
  for (const device of wants.keys()) note(device, current.get(device) ?? {});
  for (const [device, found] of current) if (!wants.has(device)) note(device, found);
  return current;
}

/** Writes what the store wants of `device` in `dir`, or clears a rule of qosd's nobody wants. */
function settle(ctx: PassContext, dir: string, device: string, found: Figures, now: { ours: boolean; want: Figures | undefined }, repairs: Repair[]): void {
  const { want, ours } = now;
  if (want !== undefined) {
    if (sameFigures(found, want)) return;
    repairs.push({ dir, device, kind: 'differs', found, want });
    ctx.blkio.syncRules(dir, device, want);
  } else if (ours && Object.keys(found).length > 0) {
    repairs.push({ dir, device, kind: 'stray', found, want: {} });
    ctx.blkio.clearRules(dir, device);
  }
}

/**
 * Repairs a pass found, confirmed one by one against the cgroup and the store as they are now and
 * written in the same synchronous step, so an attach or detach that committed since the finding
 * is never undone. Between repairs it gives the loop back: a pass that finds every rule missing
 * (10,000 pods, 20,000 cgroups) has as many to confirm. Returns the repairs written.
 */
export async function confirmRepairs(ctx: PassContext, found: readonly Pick<Repair, 'dir' | 'device'>[], slice: TimeSlice): Promise<Repair[]> {
  const repairs: Repair[] = [];
  const owners = ownersFor(ctx);
  for (const { dir, device } of found) {
    if (slice.due()) await slice.yield();
    let current: Figures;
    try {
      current = ctx.blkio.readRules(dir).get(device) ?? {};
    } catch (err) {
      if (isGone(err)) continue; // the cgroup went away meanwhile: nothing to repair
      throw err;
    }
    settle(ctx, dir, device, current, wantNow(ctx, dir, owners.of(device)), repairs);
  }
  return repairs;
}

/** One whole pass in the calling thread (recovery at start, tests): found, then confirmed. */
export async function reconcilePass(ctx: PassContext, slice: TimeSlice): Promise<PassResult> {
  const found = await findRepairs(ctx, slice);
  return { ...found, repairs: await confirmRepairs(ctx, found.repairs, slice) };
}

function ownersFor(ctx: PassContext): DeviceOwners {
  return new DeviceOwners(ctx.store, ctx.identify, ctx.onMismatch);
}
