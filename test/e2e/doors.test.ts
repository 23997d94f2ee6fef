// Each door trusts only what it must (the security audit's findings), on real mounts, loop
// devices and sockets: a target is pinned just before the mount, so a directory swapped for a
// symlink meanwhile cannot move it; a target reached through a symlinked kubelet root is stored by
// its real path and unmounted; NodeUnpublishVolume touches only targets qosd published, inside
// kubelet's directories; pool init takes only the devices the config names; the metrics port
// survives a local user's flood of idle connections with the API still answering.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeTestBlocker } from '../helpers/host';
import { installDriver, makeTestNode, removeTestNode, startDaemon, type RunningDaemon, type TestNode } from '../helpers/daemon';
import { callDriver, mountOptions, podVolumeDir } from '../helpers/kubelet';
import { makeLeaf, makePodCgroup, newPodUid } from '../helpers/cgroup';
import { csiClient, csiMountTarget } from '../helpers/csi';
import { request } from '../../src/cli/client';
import { readMountinfo } from '../../src/host/mountinfo';
import { hostRoot } from '../../src/host/host-root';
import { MAX_CONNECTIONS } from '../../src/periodic/metrics-listener';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mountsUnder = (dir: string) => readMountinfo(hostRoot()).filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(dir + '/'));
const nodes: TestNode[] = [];
const daemons: RunningDaemon[] = [];
afterAll(async () => {
  for (const d of daemons) await d.stop();
  for (const n of nodes) removeTestNode(n);
});

/**
 * The connections to `port` a process holds open (established, by its own file descriptors): the
 * kernel's TCP table joined with the process's socket descriptors. A connection still in the
 * listener's accept queue, or one the kernel dropped from a full queue, is not the process's.
 */
function connectionsHeld(pid: number, port: number): number {
  const sockets = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) sockets.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  const local = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return fs.readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1).filter((line) => {
    const f = line.trim().split(/\s+/);
    return f[1]?.endsWith(local) && f[3] === '01' && sockets.has(f[9]!);
  }).length;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

describe.skipIf(blocker)(`doors${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  it('a directory on the target\'s path swapped for a symlink between the check and the mount: refused, nothing mounted anywhere', async () => {
    const node = makeTestNode();
    nodes.push(node);
    const hold = path.join(node.dir, 'hold');
    fs.writeFileSync(hold, '');
    const daemon = await startDaemon(node, [], { QOSD_HOLD_AT: 'attach:target-made', QOSD_HOLD_FILE: hold });
    daemons.push(daemon);
    const driver = installDriver(node);
    const podUid = newPodUid();
    makePodCgroup(node.cgroupRoot, podUid);
    const target = podVolumeDir(node.kubeletRoot, podUid, 'swapped');
    fs.mkdirSync(target, { recursive: true, mode: 0o750 });
    const call = callDriver(driver, ['mount', target, mountOptions({ podUid, volumeName: 'swapped', user: { size: '16Mi' } })]);
    const until = Date.now() + 30_000;
    while (!fs.existsSync(`${hold}.reached`) && Date.now() < until) await sleep(20);
    expect(fs.existsSync(`${hold}.reached`)).toBe(true);
    // The pod's volumes directory becomes a symlink to a tree outside kubelet's, laid out alike.
    const volumes = path.join(node.kubeletRoot, 'pods', podUid, 'volumes');
    const outside = path.join(node.dir, 'outside');
    fs.mkdirSync(path.join(outside, 'qosd~nvme', 'swapped'), { recursive: true });
    fs.renameSync(volumes, `${volumes}.was`);
    fs.symlinkSync(outside, volumes);
    fs.rmSync(hold);
    const r = await call;
    expect(r.reply.status).toBe('Failure');
    expect(r.reply.message).toContain(`target ${target}: `);
    expect(r.reply.message).toMatch(/symlink/);
    expect(mountsUnder(outside)).toEqual([]);
    expect(mountsUnder(node.kubeletRoot)).toEqual([]);
    expect((await request<{ attachments: unknown[] }>(node.socket, 'GET', '/v1/attachments')).body.attachments).toEqual([]);
  }, 60_000);

  it('a kubelet root reached through a symlink: the target is stored by its real path, unmounted, and the volume can be deleted', async () => {
    const node = makeTestNode();
    nodes.push(node);
    const real = `${node.kubeletRoot}-real`;
    fs.renameSync(node.kubeletRoot, real);
    fs.symlinkSync(real, node.kubeletRoot);
    const daemon = await startDaemon(node);
    daemons.push(daemon);
    const driver = installDriver(node);
    const podUid = newPodUid();
    makeLeaf(makePodCgroup(node.cgroupRoot, podUid));
    const target = podVolumeDir(node.kubeletRoot, podUid, 'linked');
    fs.mkdirSync(target, { recursive: true, mode: 0o750 });
    const m = await callDriver(driver, ['mount', target, mountOptions({ podUid, volumeName: 'linked', user: { size: '16Mi', maxReadIops: '100' } })]);
    expect(m.reply.status, m.reply.message).toBe('Success');
    const realTarget = podVolumeDir(real, podUid, 'linked');
    const atts = (await request<{ attachments: { target: string }[] }>(node.socket, 'GET', '/v1/attachments')).body.attachments;
    expect(atts.map((a) => a.target)).toEqual([realTarget]);
    expect(mountsUnder(realTarget)).toHaveLength(1);
    expect((await callDriver(driver, ['unmount', target])).reply.status).toBe('Success');
    expect(mountsUnder(realTarget)).toEqual([]);
    expect((await request<{ attachments: unknown[] }>(node.socket, 'GET', '/v1/attachments')).body.attachments).toEqual([]);
    expect((await request(node.socket, 'DELETE', '/v1/volumes/linked')).status).toBe(204);
  }, 60_000);

  it('NodeUnpublishVolume removes nothing outside kubelet\'s directories, and nothing qosd did not publish', async () => {
    const node = makeTestNode();
    nodes.push(node);
    const daemon = await startDaemon(node);
    daemons.push(daemon);
    expect((await request(node.socket, 'POST', '/v1/volumes', { name: 'vol', size: '16Mi' })).status).toBe(201);
    const outsideDir = path.join(node.dir, 'outside-dir');
    const outsideFile = path.join(node.dir, 'outside-file');
    fs.mkdirSync(outsideDir);
    fs.writeFileSync(outsideFile, '');
    const inside = csiMountTarget(node.kubeletRoot, newPodUid(), 'pv-vol');
    fs.mkdirSync(inside, { recursive: true });
    const csi = csiClient(node.csiSocket);
    try {
      for (const t of [outsideDir, outsideFile, path.join(node.kubeletRoot, '..', 'outside-dir')]) {
        expect(await csi.code('Node', 'NodeUnpublishVolume', { volume_id: 'vol', target_path: t })).toBe('INVALID_ARGUMENT');
      }
      expect(await csi.code('Node', 'NodeUnpublishVolume', { volume_id: 'vol', target_path: inside })).toBe('OK');
    } finally {
      csi.close();
    }
    expect(fs.statSync(outsideDir).isDirectory()).toBe(true);
    expect(fs.existsSync(outsideFile)).toBe(true);
    expect(fs.statSync(inside).isDirectory()).toBe(true); // never published by qosd: left alone
  }, 60_000);

  it('pool init takes only the devices the config names, whatever the caller asks', async () => {
    const node = makeTestNode();
    nodes.push(node);
    fs.writeFileSync(node.configFile, fs.readFileSync(node.configFile, 'utf8').replace(/^pools:\n/m, 'pools:\n  - { name: nvme, backend: lvm, volumeGroup: qosd-doors-vg, devices: [/dev/nvme9n9] }\n'));
    const daemon = await startDaemon(node);
    daemons.push(daemon);
    const r = await request<{ error: { code: string; message: string } }>(node.socket, 'POST', '/v1/pools/nvme/init', { devices: ['/dev/loop0'], force: true });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toBe("devices: /dev/loop0 is not among pool nvme's devices in the config (pools[].devices: /dev/nvme9n9); qosd initializes only those");
  }, 60_000);

  it('the metrics port: 1,100 idle connections from an unprivileged user are cut to a few, and the API and CSI keep answering', async () => {
    const port = await freePort();
    const node = makeTestNode();
    nodes.push(node);
    const daemon = await startDaemon(node, ['--metrics-listen', `127.0.0.1:${port}`]);
    daemons.push(daemon);
    const latencies = async (n: number) => {
      const ms: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        expect((await request(node.socket, 'GET', '/v1/status')).status).toBe(200);
        ms.push(performance.now() - t);
      }
      return ms.sort((a, b) => a - b)[Math.floor(n * 0.99) - 1]!;
    };
    const quiet = await latencies(200);
    // User "nobody" opens 1,100 connections and sends nothing (its own file limit raised for it).
    const flood = spawn('prlimit', ['--nofile=4096', 'runuser', '-u', 'nobody', '--', process.execPath, '-e', `
      const net = require('net'); let open = 0, closed = 0, failed = 0;
      for (let i = 0; i < 1100; i++) {
        const s = net.connect(${port}, '127.0.0.1');
        let connected = false;
        s.on('connect', () => { connected = true; open++; }); s.on('close', () => closed++); s.on('error', () => { if (!connected) failed++; });
      }
      setInterval(() => console.log(JSON.stringify({ open, closed, failed })), 500);
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    let last = { open: 0, closed: 0, failed: 0 };
    flood.stdout!.on('data', (c: Buffer) => {
      const lines = c.toString().trim().split('\n');
      last = JSON.parse(lines[lines.length - 1]!) as typeof last;
    });
    try {
      // Every connection made (or, where the listener's accept queue overflowed, given up by the
      // kernel). The guard allows for a machine so busy that the flooder starts late.
      const until = Date.now() + 150_000;
      while (last.open + last.failed < 1100 && Date.now() < until) await sleep(100);
      expect(last.open + last.failed).toBe(1100);
      expect(last.open).toBeGreaterThan(MAX_CONNECTIONS); // the flood reached the listener past its cap
      // qosd holds no more than its cap of them, however many are knocking (and, at the instant
      // looked at, perhaps one being turned away: accepted and closed in one step).
      const heldDuring: number[] = [];
      for (let i = 0; i < 10; i++) {
        heldDuring.push(connectionsHeld(daemon.child.pid!, port));
        await sleep(100);
      }
      expect(Math.max(...heldDuring)).toBeLessThanOrEqual(MAX_CONNECTIONS + 1);
      const loaded = await latencies(200);
      console.log(`[metrics flood] API p99 quiet ${quiet.toFixed(1)} ms, under 1,100 idle connections ${loaded.toFixed(1)} ms; connections closed by qosd so far: ${last.closed}, held by it at most ${Math.max(...heldDuring)}`);
      // Under 100 ms, or within three times this machine's own quiet p99 where it is that busy.
      expect(loaded).toBeLessThan(Math.max(100, 3 * quiet));
      const csi = csiClient(node.csiSocket, 10_000);
      try {
        expect(await csi.call('Identity', 'Probe')).toMatchObject({});
      } finally {
        csi.close();
      }
      // Past the cap, connections are closed as they come; the idle ones left, after the idle
      // timeout: qosd ends up holding none of them while the flooder still holds every one. What
      // is asserted is qosd's side: a connection the kernel dropped from a full accept queue is
      // never told to the flooder, and never was qosd's. (The bound is a guard for a stuck
      // daemon: the metrics listener runs in the niced worker thread, so on a machine busy
      // building Kubernetes, as CI is, its timers fire late.)
      const idle = Date.now() + 240_000;
      while (connectionsHeld(daemon.child.pid!, port) > 0 && Date.now() < idle) await sleep(200);
      expect(connectionsHeld(daemon.child.pid!, port)).toBe(0);
      console.log(`[metrics flood] the flooder saw ${last.closed} of its 1,100 closed (${last.failed} never connected)`);
      const fds = fs.readdirSync(`/proc/${daemon.child.pid}/fd`).length;
      expect(fds).toBeLessThan(200);
      const scrape = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(scrape.status).toBe(200);
    } finally {
      flood.kill('SIGKILL');
    }
  }, 420_000);
});
