// IO that nobody counted: on cgroup v1 (this machine's kernel) blk-throttle lists a device in a
// cgroup's stats only once a throttle rule has been set for it, so a pod reading a volume without
// limits on a loop device that never had a rule looked idle to the metrics and the controller.
// Here the volume's loop device is one made fresh for the test (a minor no loop device had), the
// pod does direct IO on it, and the metrics count it and the controller sees it as a neighbour.
import * as fs from 'node:fs';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeTestBlocker } from '../helpers/host';
import { installDriver, makeTestNode, removeTestNode, startDaemon, type RunningDaemon, type TestNode } from '../helpers/daemon';
import { callDriver, mountOptions, podVolumeDir } from '../helpers/kubelet';
import { ddRead, makeLeaf, makePodCgroup, newPodUid, ruleLines } from '../helpers/cgroup';
import { request } from '../../src/cli/client';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

interface Vol { name: string; device: string; deviceNumber: string; backing: string }
const RIOPS = 'blkio.throttle.read_iops_device';

/** A loop device node with a minor no loop device of this boot has had. */
function freshLoop(): string {
  const minors = fs.readdirSync('/sys/block').filter((n) => /^loop\d+$/.test(n)).map((n) => Number(n.slice(4)));
  const minor = Math.max(0, ...minors) + 100 + Math.floor(Math.random() * 400);
  const dev = `/dev/loop${minor}`;
  if (!fs.existsSync(dev)) execFileSync('mknod', [dev, 'b', '7', String(minor)]);
  return dev;
}

describe.skipIf(blocker)(`IO on a device that never had a rule${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  let node: TestNode;
  let daemon: RunningDaemon;
  let driver: string;
  const readers: ChildProcess[] = [];
  const api = <T>(method: string, url: string, body?: unknown) => request<T>(node.socket, method, url, body);

  async function mount(name: string, user: Record<string, string>) {
    const uid = newPodUid();
    const leaf = makeLeaf(makePodCgroup(node.cgroupRoot, uid));
    const target = podVolumeDir(node.kubeletRoot, uid, name);
    fs.mkdirSync(target, { recursive: true });
    const r = await callDriver(driver, ['mount', target, mountOptions({ podUid: uid, volumeName: name, user })]);
    expect(r.reply.status, r.reply.message).toBe('Success');
    return { leaf, target, ...(await api<Vol>('GET', `/v1/volumes/${name}`)).body };
  }

  beforeAll(async () => {
    node = makeTestNode('controller: { intervalMs: 250 }', '{ readIops: 1000, writeIops: 1000, readBps: 1G, writeBps: 1G }');
    daemon = await startDaemon(node);
    driver = installDriver(node);
  });

  afterAll(async () => {
    for (const p of readers) {
      try {
        process.kill(-p.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await daemon?.stop();
    if (node) removeTestNode(node);
  });

  it('counts the pod\'s IO in the metrics and shows the volume to the controller', async () => {
    // The volume is made, then its loop device is swapped for a fresh one, as after a reboot.
    expect((await api('POST', '/v1/volumes', { name: 'quiet', size: '32Mi' })).status).toBe(201);
    const made = (await api<Vol>('GET', '/v1/volumes/quiet')).body;
    execFileSync('losetup', ['-d', made.device]);
    const fresh = freshLoop();
    execFileSync('losetup', ['--direct-io=on', fresh, made.backing]);
    const quiet = await mount('quiet', {});
    expect(quiet.device).toBe(fresh);

    await ddRead(quiet.leaf, quiet.device, '4k', 1000);
    const text = (await api<string>('GET', '/metrics')).body;
    const line = text.split('\n').find((l) => l.startsWith('qosd_volume_io_operations_total{') && l.includes('volume="quiet"') && l.includes('direction="read"'));
    expect(line, 'a series for the volume').toBeDefined();
    expect(Number(line!.split(' ').pop())).toBeGreaterThanOrEqual(1000);

    // The controller sees it: a guarantee (300, asking about 200: on a saturated pool that cannot
    // be told from starvation) cuts this neighbour, which it could not see if it looked idle.
    const victim = await mount('victim', { size: '32Mi', minReadIops: '300' });
    const loop = (leaf: string, device: string, paced: boolean) => {
      const script = paced
        ? 'echo $$ > "$0/cgroup.procs"; while :; do dd if="$1" of=/dev/null bs=4k count=20 iflag=direct status=none; sleep 0.1; done'
        : 'echo $$ > "$0/cgroup.procs"; while :; do dd if="$1" of=/dev/null bs=4k count=20000 iflag=direct status=none; done';
      const p = spawn('/bin/sh', ['-c', script, leaf, device], { stdio: 'ignore', detached: true });
      readers.push(p);
    };
    loop(quiet.leaf, quiet.device, false);
    loop(victim.leaf, victim.device, true);
    const end = Date.now() + 15_000;
    while (Date.now() < end && ruleLines(quiet.leaf, RIOPS) === '') await new Promise((r) => setTimeout(r, 100));
    expect(ruleLines(quiet.leaf, RIOPS)).toMatch(new RegExp(`^${quiet.deviceNumber} \\d+$`));
    expect(ruleLines(victim.leaf, RIOPS)).toBe('');
  });
});
