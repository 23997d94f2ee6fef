// Whether this process shares the host's mount namespace, the one kubelet and the containers
// see. A mount made in a private namespace (a systemd unit with ProtectSystem=, PrivateTmp=, …)
// answers Success but is invisible on the host: the pod writes to an empty directory on the root
// disk, unthrottled, and the mount dies with the process. PID 1's namespace is the host's.
// The namespace links of PID 1 (<proc>/1/ns/mnt) are readable only with CAP_SYS_PTRACE when PID 1
// holds capabilities this process lacks (qosd.service drops all but two), so the mount tables
// are compared too: mount ids are unique across namespaces, and a namespace copied from the
// host's gets new ones, so the same id on "/" means the same namespace.
import * as fs from 'node:fs';
import { parseMountinfo } from './mountinfo';
import type { HostRoot } from './host-root';

function rootMountId(mountinfo: string): number | undefined {
  const roots = parseMountinfo(mountinfo).filter((m) => m.mountPoint === '/');
  return roots.at(-1)?.id; // the top of any stack on "/"
}

/** true: same namespace as PID 1; false: a private one; undefined: PID 1's cannot be read here. */
export function sharesHostMountNamespace(root: HostRoot): boolean | undefined {
  try {
    return fs.readlinkSync(`${root.proc}/self/ns/mnt`) === fs.readlinkSync(`${root.proc}/1/ns/mnt`);
  } catch {
    /* no access to PID 1's namespace links: compare mount tables */
  }
  try {
    const host = rootMountId(fs.readFileSync(`${root.proc}/1/mountinfo`, 'utf8'));
    const self = rootMountId(fs.readFileSync(`${root.proc}/self/mountinfo`, 'utf8'));
    return host === undefined || self === undefined ? undefined : host === self;
  } catch {
    return undefined; // e.g. a sandbox that hides PID 1: nothing to compare with
  }
}
