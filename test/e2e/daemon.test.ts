// Starting qosd: a bad config stops it at once naming the key; a second daemon on the same socket
// is refused; GET /metrics answers on the socket and on the metrics listener.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { QOSD, makeTestNode, removeTestNode, startDaemon, type TestNode } from '../helpers/daemon';
import { request } from '../../src/cli/client';

const nodes: TestNode[] = [];
afterAll(() => {
  for (const n of nodes) removeTestNode(n);
});

function qosd(args: string[]) {
  return spawnSync(process.execPath, [QOSD, ...args], { encoding: 'utf8', timeout: 20_000 });
}

describe('qosd start-up', () => {
  it('stops with the file, key path and reason on a bad config (exit 2)', () => {
    const n = makeTestNode();
    nodes.push(n);
    const bad = path.join(n.dir, 'bad.yaml');
    fs.writeFileSync(bad, 'pools:\n  - name: default\n    backend: file\n    capacity: { readIops: -1 }\n');
    const r = qosd(['--config', bad]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`qosd: invalid configuration: ${bad}: pools[0].capacity.readIops: must be a positive integer\n`);
    expect(fs.existsSync(n.socket)).toBe(false);
  });

  it('starts with an lvm pool whose volume group is not built yet, and says so on first use', async () => {
    const n = makeTestNode();
    nodes.push(n);
    const cfg = path.join(n.dir, 'lvm.yaml');
    fs.writeFileSync(cfg, `socket: ${n.socket}\ncsi: { socket: ${n.csiSocket}, nodeName: qosd-test-node }\nkubelet: { rootDir: ${n.kubeletRoot} }\nstateDir: ${n.stateDir}\nmetrics: { listen: "off" }\npools:\n  - { name: nvme, backend: lvm, volumeGroup: qosd-test-absent-vg, capacity: { readIops: 1000 } }\n`);
    fs.writeFileSync(n.configFile, fs.readFileSync(cfg));
    const d = await startDaemon(n);
    try {
      const r = await request<{ error: { code: string; message: string } }>(n.socket, 'POST', '/v1/volumes', { name: 'v', size: '8Mi' });
      expect(r.status).toBeGreaterThanOrEqual(400);
      // With lvm2 installed: the pool says how to build it; without, that the tool is missing.
      expect(r.body.error.message).toMatch(/run: qosctl pool init nvme|command not found/);
      expect((await request<{ volumes: unknown[] }>(n.socket, 'GET', '/v1/volumes')).body.volumes).toEqual([]);
    } finally {
      await d.stop();
    }
  });

  it('refuses to start over a live daemon, and replaces a stale socket file', async () => {
    const n = makeTestNode();
    nodes.push(n);
    const first = await startDaemon(n);
    try {
      const r = qosd(['--config', n.configFile]);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`another process is serving ${n.socket}`);
      expect((await request(n.socket, 'GET', '/v1/status')).status).toBe(200);
    } finally {
      await first.stop();
    }
    // A socket file left by a process that died without cleaning up.
    const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(n.socket)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise((r) => holder.stdout!.once('data', r));
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    expect(fs.existsSync(n.socket)).toBe(true);
    const second = await startDaemon(n);
    await second.stop();
  });

  it('refuses a second daemon on the same state directory, naming the first one\'s pid, and leaves the first serving', async () => {
    const n = makeTestNode();
    nodes.push(n);
    const first = await startDaemon(n);
    try {
      // Same state, another socket and CSI socket: only the state directory is shared.
      const other = path.join(n.dir, 'other.yaml');
      fs.writeFileSync(other, fs.readFileSync(n.configFile, 'utf8').replace(`socket: ${n.socket}`, `socket: ${path.join(n.dir, 'other.sock')}`).replace(`socket: ${n.csiSocket}`, `socket: ${path.join(n.dir, 'other-csi.sock')}`));
      const r = qosd(['--config', other]);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(`qosd: qosd (pid ${first.child.pid}) already serves the state in ${n.stateDir} (${path.join(n.stateDir, 'qosd.lock')} is locked); one daemon per state directory: stop it first, or give this one another --state-dir\n`);
      expect(fs.existsSync(path.join(n.dir, 'other.sock'))).toBe(false);
      expect((await request(n.socket, 'GET', '/v1/status')).status).toBe(200);
    } finally {
      await first.stop();
    }
    // The lock goes with its holder: a daemon killed outright leaves nothing that stops the next.
    const killed = await startDaemon(n);
    killed.child.kill('SIGKILL');
    await killed.exited;
    const next = await startDaemon(n);
    await next.stop();
  });

  it('serves Prometheus metrics on the socket and on metrics.listen', async () => {
    const n = makeTestNode();
    nodes.push(n);
    const port = 20000 + Math.floor(Math.random() * 20000);
    const d = await startDaemon(n, ['--metrics-listen', `127.0.0.1:${port}`]);
    try {
      const viaSocket = await request<string>(n.socket, 'GET', '/metrics');
      expect(viaSocket.status).toBe(200);
      expect(viaSocket.body).toContain('# TYPE qosd_volumes gauge');
      expect(viaSocket.body).toContain('qosd_volumes{pool="default"} 0');
      expect(viaSocket.body).toContain('qosd_process_resident_memory_bytes');
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('# TYPE qosd_flex_calls_total counter');
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      await d.stop();
    }
  });
});
