// Socket handoff without systemd: the test holds the listening socket (as systemd's qosd.socket
// would), starts the daemon with it as fd 3 and LISTEN_FDS=1, and SIGTERMs and restarts the
// daemon three times while parallel clients make 200 flex calls: not one may fail.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeTestBlocker } from '../helpers/host';
import { QOSD, installDriver, makeTestNode, removeTestNode, waitForSocket, type TestNode } from '../helpers/daemon';
import { callDriver, mountOptions, podVolumeDir, type DriverResult } from '../helpers/kubelet';
import { makeLeaf, makePodCgroup, newPodUid } from '../helpers/cgroup';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

const HOLDER = path.join(__dirname, '..', 'helpers', 'socket-holder.py');

describe.skipIf(blocker)(`socket handoff across restarts${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  let node: TestNode;
  let holder: ChildProcess;
  let driver: string;
  let output = '';
  let socketInode = 0;

  beforeAll(async () => {
    node = makeTestNode();
    holder = spawn('python3', [HOLDER, node.socket, process.execPath, QOSD, '--config', node.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    holder.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    holder.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    await waitForSocket(node.socket);
    socketInode = fs.statSync(node.socket).ino;
    driver = installDriver(node);
  });

  afterAll(async () => {
    if (holder && holder.exitCode === null) {
      holder.kill('SIGTERM');
      await new Promise((r) => holder.once('exit', r));
    }
    if (node) removeTestNode(node);
  });

  it('serves 200 parallel flex calls with zero failures while restarting three times', async () => {
    const workers = 10;
    const pods = Array.from({ length: workers }, () => {
      const uid = newPodUid();
      makeLeaf(makePodCgroup(node.cgroupRoot, uid));
      return uid;
    });
    const results: DriverResult[] = [];
    const clients = pods.map(async (uid, w) => {
      const target = podVolumeDir(node.kubeletRoot, uid, `h${w}`);
      const opts = mountOptions({ podUid: uid, volumeName: `h${w}`, user: { size: '16Mi', maxReadIops: '500' } });
      for (let i = 0; i < 10; i++) {
        fs.mkdirSync(target, { recursive: true });
        results.push(await callDriver(driver, ['mount', target, opts]));
        results.push(await callDriver(driver, ['unmount', target]));
      }
    });
    let restarts = 0;
    const restarter = (async () => {
      for (; restarts < 3; restarts++) {
        await new Promise((res) => setTimeout(res, 800));
        holder.kill('SIGUSR1');
        // Wait for the old daemon to be gone before the next restart.
        while ((output.match(/daemon restarted/g) ?? []).length <= restarts) await new Promise((res) => setTimeout(res, 20));
      }
    })();
    await Promise.all(clients);
    await restarter;
    const failed = results.filter((r) => r.reply.status !== 'Success');
    expect(results).toHaveLength(200);
    expect(failed.map((f) => f.reply.message), output.slice(-3000)).toEqual([]);
    // Three graceful stops (exit 0), four daemons serving on the inherited socket.
    expect(output.match(/daemon exited -?\d+/g)).toEqual(['daemon exited 0', 'daemon exited 0', 'daemon exited 0']);
    expect((output.match(/daemon restarted/g) ?? []).length).toBe(3);
    // The daemons served the inherited socket and never bound their own: the file is the one
    // the holder made at the start.
    expect(fs.statSync(node.socket).ino).toBe(socketInode);
  }, 180_000);
});
