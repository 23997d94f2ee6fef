// One full reconcile pass: make the kernel's cgroup rules equal what SQLite says. Walks every
// cgroup under kubelet's kubepods tree (and any attached pod outside it) once, reads its rules,
// and rewrites only what differs: a wanted rule that is missing or wrong is written; a rule for a
// qosd volume's device that no attachment wants any more (a crash mid-detach, a hand edit) is
// cleared. Rules for devices qosd does not manage are never touched.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CgroupLayout } from '../host/cgroup-layout';
import { kubepodsDirs, type CgroupDriver } from '../host/pod-cgroup';
import * as v1 from '../host/cgroup-v1';
import * as v2 from '../host/cgroup-v2';
import { readSmall } from '../host/read-small';
import type { Store } from '../store/store';
import type { LimitPolicy } from '../service/limit-policy';
import { DIMENSIONS, type Dimension, type Figures } from '../service/qos-spec';

export interface Repair {
  dir: string;
  device: string;
  /** "differs": a wanted rule was missing or wrong; "stray": nothing wants this rule. */
  kind: 'differs' | 'stray';
  found: Figures;
  want: Figures;
}

export interface PassResult {
  cgroups: number;
  repairs: Repair[];
}

export interface PassContext {
  layout: CgroupLayout;
  kubelet: { cgroupRoot: string; cgroupDriver: 'auto' | CgroupDriver };
  store: Store;
  policy: LimitPolicy;
}

type Wants = Map<string, Figures>; // device → limits

function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENODEV';
}

function readV1(dir: string): Map<string, Figures> {
  const out = new Map<string, Figures>();
  for (const d of DIMENSIONS) {
    const text = readSmall(`${dir}/${v1.V1_FILES[d]}`);
    if (text === '') continue; // the common case: no rule at all
    for (const [dev, value] of v1.parseRuleFile(text)) {
      // A "0" line only exists in a fake tree (the kernel drops it); it means no rule.
      if (value === 0) continue;
      const f = out.get(dev) ?? {};
      f[d] = value;
      out.set(dev, f);
    }
  }
  return out;
}

function same(a: Figures, b: Figures): boolean {
  return DIMENSIONS.every((d) => a[d] === b[d]);
}

export function reconcilePass(ctx: PassContext): PassResult {
  const { layout, store } = ctx;
  const volumes = new Map(store.volumes.list().map((v) => [v.name, v]));
  const ours = new Set<string>();
  for (const v of volumes.values()) if (v.deviceNumber) ours.add(v.deviceNumber);

  // What each attached pod wants, per device.
  const podWants = new Map<string, Wants>();
  for (const att of store.attachments.list()) {
    if (att.state !== 'attached' || !att.podCgroup) continue;
    const vol = volumes.get(att.volume);
    if (!vol?.deviceNumber) continue;
    const wants = podWants.get(att.podCgroup) ?? new Map<string, Figures>();
    wants.set(vol.deviceNumber, ctx.policy.limitsFor(vol));
    podWants.set(att.podCgroup, wants);
  }

  const drivers: CgroupDriver[] = ctx.kubelet.cgroupDriver === 'auto' ? ['cgroupfs', 'systemd'] : [ctx.kubelet.cgroupDriver];
  const dirs = kubepodsDirs(ctx.kubelet.cgroupRoot);
  const roots = drivers.map((d) => path.join(layout.base, dirs[d])).filter((r) => fs.existsSync(r));
  for (const pod of podWants.keys()) {
    if (!roots.some((r) => pod === r || pod.startsWith(r + path.sep))) roots.push(pod);
  }

  const repairs: Repair[] = [];
  let cgroups = 0;
  // Breadth-first; on v1 a pod's wants are inherited by every cgroup below it (the flat
  // hierarchy needs the rule on each), on v2 they hold on the pod cgroup alone.
  const queue: [string, Wants | undefined][] = roots.map((r) => [r, undefined]);
  for (let i = 0; i < queue.length; i++) {
    const [dir, inherited] = queue[i]!;
    const own = podWants.get(dir);
    const wants = own ?? (layout.version === 'v1' ? inherited : undefined);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      if (isGone(err)) continue; // removed while walking: a container that just exited
      throw err;
    }
    cgroups++;
    try {
      syncDir(layout.version, dir, wants ?? new Map(), ours, repairs);
    } catch (err) {
      if (!isGone(err)) throw err; // exited between the listing and the read: nothing to keep
    }
    for (const e of entries) if (e.isDirectory()) queue.push([`${dir}/${e.name}`, wants]);
  }
  return { cgroups, repairs };
}

function syncDir(version: 'v1' | 'v2', dir: string, wants: Wants, ours: Set<string>, repairs: Repair[]): void {
  const current = version === 'v1' ? readV1(dir) : v2.parseIoMax(readSmall(`${dir}/io.max`));
  for (const [device, want] of wants) {
    const found = current.get(device) ?? {};
    if (same(found, want)) continue;
    repairs.push({ dir, device, kind: 'differs', found, want });
    if (version === 'v1') v1.syncRules(dir, device, want);
    else v2.syncIoMax(dir, device, want);
  }
  for (const [device, found] of current) {
    if (wants.has(device) || !ours.has(device) || Object.keys(found).length === 0) continue;
    repairs.push({ dir, device, kind: 'stray', found, want: {} });
    if (version === 'v1') v1.clearRules(dir, device, Object.keys(found) as Dimension[]);
    else v2.clearIoMax(dir, device);
  }
}
