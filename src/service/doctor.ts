// What makes qosd work on a node, checked from the daemon's side: each check is ok, warn or
// fail, with the fix. qosctl doctor adds what only the client can see (can it reach the socket).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Config } from '../config/config';
import type { Blkio } from '../host/blkio';
import { which } from '../host/exec';
import { kubepodsDirs } from '../host/pod-cgroup';
import { sharesHostMountNamespace } from '../host/mount-namespace';
import type { HostRoot } from '../host/host-root';
import { DIMENSIONS } from '../model/qos';
import type { PoolService } from './pools';
import { percent } from '../util/percent';

export interface Check {
  name: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  fix: string | null;
}

const REQUIRED_TOOLS: [string, string][] = [
  ['losetup', 'util-linux'], ['blkid', 'util-linux'], ['mount', 'mount'], ['umount', 'mount'],
  ['mkfs.ext4', 'e2fsprogs'], ['e2fsck', 'e2fsprogs'], ['resize2fs', 'e2fsprogs'], ['dd', 'coreutils'],
];
const OPTIONAL_TOOLS: [string, string, string][] = [
  ['mkfs.xfs', 'xfsprogs', 'xfs volumes cannot be created'],
  ['xfs_growfs', 'xfsprogs', 'xfs volumes cannot grow'],
  ['fio', 'fio', 'calibrate falls back to the built-in dd probe (queue depth 1 per worker, lower figures on NVMe)'],
  ['lvm', 'lvm2', 'lvm pools cannot be used'],
];

/** What kubelet last answered the CSI registration (csi/registration.ts), or undefined while it has not called. */
export type RegistrationAnswer = () => { registered: boolean; error: string } | undefined;

export async function runChecks(root: HostRoot, config: Config, blkio: Blkio, pools: PoolService, csiRegistration?: RegistrationAnswer): Promise<Check[]> {
  const checks: Check[] = [];
  const add: AddCheck = (name, status, detail, fix = null) => checks.push({ name, status, detail, fix });

  const uid = process.getuid?.() ?? -1;
  if (uid === 0) add('daemon runs as root', 'ok', 'uid 0');
  else add('daemon runs as root', 'fail', `uid ${uid}: loop devices, mounts and cgroup writes will fail`, 'run qosd as root (the systemd unit does)');

  const sharesHost = sharesHostMountNamespace(root);
  if (sharesHost === true) add('mount namespace', 'ok', "the host's (PID 1's): kubelet and containers see qosd's mounts");
  else if (sharesHost === false) add('mount namespace', 'fail', 'private: mounts qosd makes are invisible to kubelet and containers', 'remove the options that give qosd.service a mount namespace (ProtectSystem, PrivateTmp, ...; see systemd/qosd.service)');
  else add('mount namespace', 'warn', "PID 1's mount namespace cannot be read here, so it cannot be compared", null);

  checkCgroup(config, blkio, add);

  const podsDir = path.join(config.kubelet.rootDir, 'pods');
  if (fs.existsSync(podsDir)) add('kubelet pods directory', 'ok', podsDir);
  else add('kubelet pods directory', 'warn', `${podsDir} does not exist`, 'set kubelet.rootDir to kubelet\'s --root-dir');

  checkTools(add);

  try {
    const mode = fs.statSync(config.socket).mode & 0o777;
    if (mode === 0o660) add('API socket', 'ok', `${config.socket} mode 0660`);
    else add('API socket', 'warn', `${config.socket} mode 0${mode.toString(8)}`, 'qosd creates it 0660; something changed it');
  } catch {
    add('API socket', 'warn', `${config.socket} is not on disk (socket activation, or another mount namespace)`);
  }

  if (config.csi?.registration && csiRegistration) {
    const answer = csiRegistration();
    const dir = `${config.kubelet.rootDir}/plugins_registry`;
    if (answer === undefined) add('CSI registration', 'warn', `kubelet has not called qosd's registration socket in ${dir} yet`, "is kubelet running, with kubelet.rootDir as its --root-dir? (it watches plugins_registry/ for new sockets)");
    else if (answer.registered) add('CSI registration', 'ok', 'kubelet registered the driver nvme.qosd.io');
    else add('CSI registration', 'fail', `kubelet refused the driver: ${answer.error}`, 'see kubelet\'s log for nvme.qosd.io');
  }

  await checkPools(pools, add);
  return checks;
}

type AddCheck = (name: string, status: Check['status'], detail: string, fix?: string | null) => void;

/** The IO controller, and kubelet's cgroup driver as the node's kubepods tree shows it. */
function checkCgroup(config: Config, blkio: Blkio, add: AddCheck): void {
  if (blkio.unavailable || !blkio.base) {
    add('cgroup IO controller', 'fail', blkio.unavailable ?? 'none', 'mount the blkio controller (v1) or enable "io" in the root cgroup.subtree_control (v2); check cgroup.mountPoint');
  } else {
    add('cgroup IO controller', 'ok', `${blkio.version} at ${blkio.base}`);
    const dirs = kubepodsDirs(config.kubelet.cgroupRoot);
    const cgroupfs = path.join(blkio.base, dirs.cgroupfs);
    const systemd = path.join(blkio.base, dirs.systemd);
    const found = fs.existsSync(systemd) ? 'systemd' : fs.existsSync(cgroupfs) ? 'cgroupfs' : undefined;
    const want = config.kubelet.cgroupDriver;
    if (!found) {
      add('kubelet cgroup driver', 'warn', `no kubepods cgroup at ${cgroupfs} or ${systemd}`, 'is kubelet running on this node? check kubelet.cgroupRoot');
    } else if (want !== 'auto' && want !== found) {
      add('kubelet cgroup driver', 'fail', `config says ${want}, the node has ${found} (${found === 'systemd' ? systemd : cgroupfs})`, `set kubelet.cgroupDriver: ${found} (or auto)`);
    } else {
      add('kubelet cgroup driver', 'ok', `${found}${want === 'auto' ? ' (detected)' : ''}`);
    }
  }
}

function checkTools(add: AddCheck): void {
  for (const [tool, pkg] of REQUIRED_TOOLS) {
    const at = which(tool);
    if (at) add(`tool ${tool}`, 'ok', at);
    else add(`tool ${tool}`, 'fail', 'not found', `install the ${pkg} package`);
  }
  for (const [tool, pkg, impact] of OPTIONAL_TOOLS) {
    const at = which(tool);
    if (at) add(`tool ${tool}`, 'ok', at);
    else add(`tool ${tool}`, 'warn', `not found: ${impact}`, `install the ${pkg} package`);
  }
}

/** Each pool: its path writable, its capacity known, its guarantees within what it may promise. */
async function checkPools(pools: PoolService, add: AddCheck): Promise<void> {
  for (const p of await pools.listWithSpace()) {
    if (p.path !== null) {
      try {
        fs.accessSync(p.path, fs.constants.W_OK);
        const free = p.freeBytes === null ? 'unknown' : `${(p.freeBytes / 2 ** 30).toFixed(1)} GiB free`;
        add(`pool ${p.name}`, 'ok', `${p.backend} at ${p.path}, ${p.volumes} volumes, ${free}`);
      } catch (err) {
        add(`pool ${p.name}`, 'fail', `${p.path}: ${(err as Error).message}`, `create ${p.path} writable by root, or fix pools[].path`);
      }
    } else {
      add(`pool ${p.name}`, 'ok', `${p.backend}, ${p.volumes} volumes`);
    }
    const missing = DIMENSIONS.filter((d) => p.capacity[d] === undefined);
    if (missing.length === 0) {
      add(`pool ${p.name} capacity`, 'ok', DIMENSIONS.map((d) => `${d}=${p.capacity[d]} (${p.capacitySource[d]})`).join(' '));
    } else {
      add(`pool ${p.name} capacity`, 'warn', `no figure for ${missing.join(', ')}: no guarantee can be admitted in those`, `qosctl calibrate ${p.name} (or set pools[].capacity)`);
    }
    // One device, one budget: guarantees admitted before a calibration found the device smaller (or
    // a capacity set lower by hand) may together promise more than it has.
    const { promised, promisable } = p.share;
    if (promised > promisable + 1e-9) {
      add(
        `pool ${p.name} guarantees`, 'warn',
        `over-promised: the guarantees take ${percent(promised)} of the device, more than the ${percent(promisable)} that may be promised; they stay, but under contention not all can be held`,
        `lower guarantees (qosctl volume set <name> --min-… ) or move volumes to another pool until the sum is under ${percent(promisable)}; new or raised guarantees are refused meanwhile`,
      );
    } else {
      add(`pool ${p.name} guarantees`, 'ok', `${percent(promised)} of the device promised, of ${percent(promisable)}`);
    }
  }
}
