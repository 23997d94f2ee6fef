// End of phase 2 of the systemd-mode VM: a pod's mount creates a new volume, and in the middle of
// it (the volume recorded, its storage being made and formatted) the power goes: sysrq "b"
// reboots at once, without syncing or unmounting, which qemu (-no-reboot) ends as a power-off.
// Phase 3 checks what comes back. Plain JavaScript: it runs with node, outside vitest.
import * as fs from 'node:fs';
import * as crypto from 'node:crypto';
import { spawn, execFileSync } from 'node:child_process';
import * as http from 'node:http';

const DRIVER = '/usr/libexec/kubernetes/kubelet-plugins/volume/exec/qosd~nvme/nvme';
const state = JSON.parse(fs.readFileSync('/mnt/share/state.json', 'utf8'));
const uid = crypto.randomUUID();
let dir = '/sys/fs/cgroup';
for (const p of ['kubepods', 'burstable', `pod${uid}`]) {
  fs.writeFileSync(`${dir}/cgroup.subtree_control`, '+io +memory');
  dir = `${dir}/${p}`;
  fs.mkdirSync(dir, { recursive: true });
}
const name = 'interrupted';
const target = `/var/lib/kubelet/pods/${uid}/volumes/qosd~nvme/${name}`;
fs.mkdirSync(target, { recursive: true });
const user = { size: '768Mi', maxReadIops: '250' };
state.interrupted = { name, pool: 'default', podUid: uid, target, data: '', mountedAtEnd: false, user };
fs.writeFileSync('/mnt/share/state.json', JSON.stringify(state, null, 2));
execFileSync('sync');

const opts = JSON.stringify({
  'kubernetes.io/fsType': '', 'kubernetes.io/pod.name': 'db-0', 'kubernetes.io/pod.namespace': 'default', 'kubernetes.io/pod.uid': uid,
  'kubernetes.io/pvOrVolumeName': name, 'kubernetes.io/readwrite': 'rw', 'kubernetes.io/serviceAccount.name': 'default', ...user,
});
spawn(DRIVER, ['mount', target, opts], { stdio: 'inherit', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });

const volumeState = () => new Promise((resolve) => {
  const req = http.request({ socketPath: '/run/qosd/qosd.sock', path: `/v1/volumes/${name}` }, (res) => {
    let body = '';
    res.on('data', (c) => (body += c));
    res.on('end', () => resolve(res.statusCode === 200 ? JSON.parse(body).state : undefined));
  });
  req.on('error', () => resolve(undefined));
  req.end();
});
const until = Date.now() + 120_000;
while (Date.now() < until && (await volumeState()) !== 'creating') await new Promise((r) => setTimeout(r, 20));
// Somewhere inside the create: its intent is recorded, the file made, mkfs under way.
await new Promise((r) => setTimeout(r, 200 + Math.floor(Math.random() * 400)));
console.log(`vm: pulling the plug while volume ${name} is ${await volumeState()}`);
fs.writeFileSync('/proc/sysrq-trigger', 'b');
