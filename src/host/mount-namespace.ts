// Whether this process shares the host's mount namespace, the one kubelet and the containers
// see. A mount made in a private namespace (a systemd unit with ProtectSystem=, PrivateTmp=, …)
// answers Success but is invisible on the host: the pod writes to an empty directory on the root
// disk, unthrottled, and the mount dies with the process. PID 1's namespace is the host's.
import * as fs from 'node:fs';

/** true: same namespace as PID 1; false: a private one; undefined: PID 1's cannot be read here. */
export function sharesHostMountNamespace(procRoot = '/proc'): boolean | undefined {
  let host: string;
  try {
    host = fs.readlinkSync(`${procRoot}/1/ns/mnt`);
  } catch {
    return undefined; // e.g. a sandbox that hides PID 1: nothing to compare with
  }
  return fs.readlinkSync(`${procRoot}/self/ns/mnt`) === host;
}
