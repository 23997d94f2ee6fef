// Shared set-up for the VM tests: a daemon config for a node with real cgroup v2 (kubelet's
// systemd driver, cgroupRoot "/") and lvm pools, and pods laid out as that driver makes them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import type { TestNode } from '../helpers/daemon';

export const CG = '/sys/fs/cgroup';

/** A node config in a temp dir; `extra` are YAML lines (pools, defaults, controller…). */
export function makeVmNode(extra: string[]): TestNode {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-vm-'));
  const node: TestNode = {
    dir, configFile: path.join(dir, 'config.yaml'), socket: path.join(dir, 'qosd.sock'), csiSocket: path.join(dir, 'csi.sock'), stateDir: path.join(dir, 'state'),
    kubeletRoot: path.join(dir, 'kubelet'), poolDir: path.join(dir, 'unused'), cgroupRoot: '/', pluginDir: path.join(dir, 'plugins'), extraConfig: '',
  };
  fs.mkdirSync(path.join(node.kubeletRoot, 'pods'), { recursive: true });
  fs.writeFileSync(node.configFile, [
    `socket: ${node.socket}`, `csi: { socket: ${node.csiSocket}, nodeName: qosd-vm }`, `stateDir: ${node.stateDir}`, 'logLevel: warn', 'metrics: { listen: "off" }',
    `kubelet: { rootDir: ${node.kubeletRoot}, cgroupRoot: /, cgroupDriver: systemd }`,
    ...extra,
  ].join('\n'));
  return node;
}

export interface SystemdPod {
  uid: string;
  pod: string;
  container: string;
}

/** A pod of a QoS class as kubelet's systemd driver lays it out, with one containerd scope. */
export function makeSystemdPod(qos: 'burstable' | 'besteffort', uid: string = crypto.randomUUID()): SystemdPod {
  const slice = path.join(CG, 'kubepods.slice');
  const cls = path.join(slice, `kubepods-${qos}.slice`);
  const pod = path.join(cls, `kubepods-${qos}-pod${uid.replace(/-/g, '_')}.slice`);
  for (const d of [slice, cls, pod]) {
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, 'cgroup.subtree_control'), '+io +memory');
  }
  const container = path.join(pod, `cri-containerd-${crypto.randomBytes(32).toString('hex')}.scope`);
  fs.mkdirSync(container);
  return { uid, pod, container };
}
