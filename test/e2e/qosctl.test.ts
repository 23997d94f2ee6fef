// qosctl and the README's run command, as a user runs them (child processes, real socket).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QOSCTL, REPO, makeTestNode, removeTestNode, startDaemon, waitForSocket, type RunningDaemon, type TestNode } from '../helpers/daemon';
import { nodeTestBlocker } from '../helpers/host';

function qosctl(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [QOSCTL, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('qosctl', () => {
  let node: TestNode;
  let daemon: RunningDaemon;

  beforeAll(async () => {
    node = makeTestNode();
    daemon = await startDaemon(node);
  });

  afterAll(async () => {
    await daemon?.stop();
    if (node) removeTestNode(node);
  });

  it('status: a table by default, the API JSON with -o json', () => {
    const t = qosctl(['--socket', node.socket, 'status']);
    expect(t.code).toBe(0);
    expect(t.out).toMatch(/^version: +\d+\.\d+\.\d+/m);
    expect(t.out).toContain(`config:      ${node.configFile}`);
    expect(t.out).toMatch(/^default +file +0 +rIOPS=50000 wIOPS=50000 rBps=1G wBps=1G$/m);
    const j = qosctl(['--socket', node.socket, '-o', 'json', 'status']);
    expect(j.code).toBe(0);
    const s = JSON.parse(j.out);
    expect(s).toMatchObject({ socket: node.socket, config: node.configFile, volumes: 0, pools: [{ name: 'default', backend: 'file' }] });
  });

  it('reads the socket from QOSD_SOCKET', () => {
    const r = qosctl(['-o', 'json', 'status'], { QOSD_SOCKET: node.socket });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).socket).toBe(node.socket);
  });

  it('volumes and volume show on an empty and a missing volume', () => {
    const v = qosctl(['--socket', node.socket, '-o', 'json', 'volumes']);
    expect(v.code).toBe(0);
    expect(JSON.parse(v.out)).toEqual({ volumes: [] });
    expect(qosctl(['--socket', node.socket, 'volumes']).out.trim()).toMatch(/^NAME +POOL +SIZE/);
    const missing = qosctl(['--socket', node.socket, 'volume', 'show', 'nope']);
    expect(missing.code).toBe(1);
    expect(missing.err).toBe('qosctl: NotFound: volume nope not found\n');
  });

  it.skipIf(!!nodeTestBlocker())(`volume create/show/set/history/delete in both formats${nodeTestBlocker() ? ` (skipped: ${nodeTestBlocker()})` : ''}`, () => {
    const c = qosctl(['--socket', node.socket, 'volume', 'create', 'cli1', '--size', '32Mi', '--max-read-iops', '300', '--min-write-iops', '10']);
    expect(c.code, c.err).toBe(0);
    expect(c.out).toMatch(/^volume cli1 created: 32Mi ext4 on \/dev\/loop\d+, limits rIOPS=300, guarantees wIOPS=10$/m);
    const cj = qosctl(['--socket', node.socket, '-o', 'json', 'volume', 'create', 'cli2', '--size', '16Mi', '--class', 'best-effort']);
    expect(cj.code, cj.err).toBe(0);
    expect(JSON.parse(cj.out)).toMatchObject({ name: 'cli2', sizeBytes: 16 * 2 ** 20, class: 'best-effort', state: 'ready' });

    const show = JSON.parse(qosctl(['--socket', node.socket, '-o', 'json', 'volume', 'show', 'cli1']).out);
    expect(show.qos).toEqual({ min: { writeIops: 10 }, max: { readIops: 300 } });
    expect(qosctl(['--socket', node.socket, 'volume', 'show', 'cli1']).out).toMatch(/^limits: +rIOPS=300$/m);

    const set = qosctl(['--socket', node.socket, 'volume', 'set', 'cli1', '--max-write-bps', '10M']);
    expect(set.code, set.err).toBe(0);
    expect(set.out).toContain('limits rIOPS=300 wBps=10M');
    const setj = qosctl(['--socket', node.socket, '-o', 'json', 'volume', 'set', 'cli1', '--unset', 'max-read-iops']);
    expect(setj.code, setj.err).toBe(0);
    expect(JSON.parse(setj.out).qos.max).toEqual({ writeBps: 10e6 });
    // latency targets: one needs a guarantee in its direction, and a pool that knows its device's
    // own latency (this one does not); each refusal names why, and changes nothing
    const noGuarantee = qosctl(['--socket', node.socket, 'volume', 'set', 'cli1', '--read-latency-target', '2ms']);
    expect(noGuarantee.code).not.toBe(0);
    expect(noGuarantee.err).toContain('qos.latency.read: a latency target needs a read guarantee (min.readIops or min.readBps)');
    const noFigure = qosctl(['--socket', node.socket, 'volume', 'set', 'cli1', '--min-read-iops', '10', '--read-latency-target', '2ms']);
    expect(noFigure.code).not.toBe(0);
    expect(noFigure.err).toContain('pool default has no unloadedLatency.read figure, so it admits no read latency target');
    expect(JSON.parse(qosctl(['--socket', node.socket, '-o', 'json', 'volume', 'show', 'cli1']).out).qos).toEqual({ min: { writeIops: 10 }, max: { writeBps: 10e6 } });

    const vols = qosctl(['--socket', node.socket, 'volumes']);
    expect(vols.out).toMatch(/^cli1 +default +32Mi +ext4 +best-effort +ready +\/dev\/loop\d+ +wBps=10M +wIOPS=10 +0$/m);
    expect(JSON.parse(qosctl(['--socket', node.socket, '-o', 'json', 'volumes']).out).volumes.map((v: { name: string }) => v.name)).toEqual(['cli1', 'cli2']);

    const hist = qosctl(['--socket', node.socket, 'volume', 'history', 'cli1']);
    expect(hist.code).toBe(0);
    expect(hist.out).toMatch(/ cli +qos-changed +limits rIOPS=300 → rIOPS=300 wBps=10M; guarantees wIOPS=10 → wIOPS=10$/m);
    const histj = JSON.parse(qosctl(['--socket', node.socket, '-o', 'json', 'volume', 'history', 'cli1']).out);
    const changes = histj.events.filter((e: { kind: string }) => e.kind === 'qos-changed');
    expect(changes).toHaveLength(2);
    expect(changes[1]).toMatchObject({ source: 'cli', detail: { old: { qos: { max: { readIops: 300, writeBps: 10e6 } } }, new: { qos: { max: { writeBps: 10e6 } } } } });

    expect(qosctl(['--socket', node.socket, 'volume', 'delete', 'cli1']).out).toBe('volume cli1 deleted\n');
    expect(JSON.parse(qosctl(['--socket', node.socket, '-o', 'json', 'volume', 'delete', 'cli2']).out)).toEqual({ deleted: 'cli2' });
    // The history outlives the volume.
    const after = JSON.parse(qosctl(['--socket', node.socket, '-o', 'json', 'volume', 'history', 'cli1']).out);
    expect(after.events.at(-1)).toMatchObject({ kind: 'volume-deleted', source: 'cli' });
  });

  it('pools: capacity, guaranteed and free to guarantee, in the three formats (the table within 120 columns, every column with -o wide)', () => {
    const short = qosctl(['--socket', node.socket, 'pools']);
    expect(short.code, short.err).toBe(0);
    expect(short.out).toMatch(/^POOL +BACKEND +CAPACITY \(READ\/WRITE\) +PROMISED +VOLUMES +PROVISIONED +USED +FREE$/m);
    expect(short.out).toMatch(/^default +file +50k\/50k IOPS 1G\/1G B\/s +0% of 90% +\d+ +/m);
    for (const line of short.out.trimEnd().split('\n')) expect(line.length).toBeLessThanOrEqual(120);
    const t = qosctl(['--socket', node.socket, '-o', 'wide', 'pools']);
    expect(t.code, t.err).toBe(0);
    expect(t.out).toMatch(/^POOL +BACKEND +CAPACITY +SOURCE +GUARANTEED +PROMISED +FREE TO GUARANTEE \(EACH ALONE\)/m);
    expect(t.out).toMatch(/^default +file +rIOPS=50000 wIOPS=50000 rBps=1G wBps=1G +config +rIOPS=0 wIOPS=0 rBps=0 wBps=0 +0% of 90% +rIOPS=45000 wIOPS=45000 rBps=900M wBps=900M/m);
    const j = JSON.parse(qosctl(['--socket', node.socket, '-o', 'json', 'pools']).out);
    expect(j.pools[0]).toMatchObject({ name: 'default', headroom: 0.1, capacity: { readIops: 50000 }, admissible: { readIops: 45000 }, capacitySource: { readIops: 'config' }, share: { promised: 0, promisable: 0.9, available: 0.9 } });
  });

  // The copy is checked by a volume it must hold, and making one needs root.
  it.skipIf(!!nodeTestBlocker())(`backup: an online copy of the state, which a daemon started on it serves${nodeTestBlocker() ? ` (skipped: ${nodeTestBlocker()})` : ''}`, async () => {
    expect(qosctl(['--socket', node.socket, 'volume', 'create', 'kept', '--size', '16Mi', '--max-read-iops', '321']).code).toBe(0);
    const file = path.join(node.dir, 'backup.db');
    const r = qosctl(['--socket', node.socket, 'backup', file]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(new RegExp(`^state backed up to ${file} \\(\\d+ bytes\\)$`, 'm'));
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    // Never over an existing file.
    const again = qosctl(['--socket', node.socket, 'backup', file]);
    expect(again.code).toBe(1);
    expect(again.err).toContain('exists; a backup never overwrites anything');
    // Restored: a second node whose state dir holds the copy as qosd.db knows the volume.
    const restored = makeTestNode();
    try {
      fs.mkdirSync(restored.stateDir, { recursive: true, mode: 0o700 });
      fs.copyFileSync(file, path.join(restored.stateDir, 'qosd.db'));
      const d = await startDaemon(restored);
      try {
        const v = JSON.parse(qosctl(['--socket', restored.socket, '-o', 'json', 'volume', 'show', 'kept']).out);
        expect(v).toMatchObject({ name: 'kept', sizeBytes: 16 << 20, qos: { max: { readIops: 321 } } });
      } finally {
        await d.stop();
      }
    } finally {
      removeTestNode(restored);
    }
    expect(qosctl(['--socket', node.socket, 'volume', 'delete', 'kept']).code).toBe(0);
  });

  it('attachments in both formats', () => {
    expect(qosctl(['--socket', node.socket, 'attachments']).out).toMatch(/^VOLUME +POD +STATE/);
    expect(JSON.parse(qosctl(['--socket', node.socket, '-o', 'json', 'attachments']).out)).toEqual({ attachments: [] });
  });

  it('doctor: every check with ok/warn/fail and a fix, in both formats', () => {
    const t = qosctl(['--socket', node.socket, 'doctor']);
    expect(t.out).toMatch(/^STATUS +CHECK +DETAIL +FIX/);
    expect(t.out).toMatch(/^OK +daemon reachable/m);
    expect(t.out).toMatch(/^OK +tool losetup +\/usr\/sbin\/losetup/m);
    expect(t.out).toMatch(/^(OK|WARN) +pool default capacity/m);
    const j = JSON.parse(qosctl(['--socket', node.socket, '-o', 'json', 'doctor']).out);
    const names = j.checks.map((c: { name: string }) => c.name);
    for (const n of ['daemon runs as root', 'cgroup IO controller', 'kubelet cgroup driver', 'kubelet pods directory', 'tool mkfs.ext4', 'tool blkid', 'API socket', 'pool default', 'pool default capacity']) {
      expect(names).toContain(n);
    }
    for (const c of j.checks) {
      expect(['ok', 'warn', 'fail']).toContain(c.status);
      if (c.status !== 'ok') expect(c.fix, c.name).toBeTruthy();
    }
    // The test node has no kubelet: its cgroupRoot holds no kubepods, which doctor reports, and
    // nothing has called the CSI registration socket; no flex driver is in kubelet's default place.
    expect(j.checks.find((c: { name: string }) => c.name === 'kubelet cgroup driver').status).toBe('warn');
    expect(j.checks.find((c: { name: string }) => c.name === 'CSI registration')).toMatchObject({ status: 'warn', detail: expect.stringContaining("kubelet has not called qosd's registration socket") });
    const noDriver = JSON.parse(qosctl(['--socket', node.socket, '-o', 'json', 'doctor', '--plugin-dir', path.join(node.dir, 'no-plugins')]).out);
    expect(noDriver.checks.find((c: { name: string }) => c.name === 'flex driver')).toMatchObject({ status: 'warn', fix: `qosctl install-flex --plugin-dir ${path.join(node.dir, 'no-plugins')}` });
    const down = qosctl(['--socket', path.join(node.dir, 'absent.sock'), '-o', 'json', 'doctor']);
    expect(down.code).toBe(1);
    expect(JSON.parse(down.out).checks.find((c: { name: string }) => c.name === 'daemon reachable')).toMatchObject({ status: 'fail', fix: expect.stringContaining('systemctl start qosd') });
  });

  it('bad arguments exit 2 with a message naming the flag, before talking to the daemon', () => {
    const r = qosctl(['--socket', node.socket, 'volume', 'create', 'x', '--max-read-iops', 'lots']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--max-read-iops');
    expect(qosctl(['--socket', node.socket, '-o', 'yaml', 'status']).code).toBe(2);
    expect(qosctl(['--socket', node.socket, 'frobnicate']).code).toBe(2);
    expect(qosctl(['--socket', node.socket, 'volume', 'set', 'x', '--unset', 'max-speed']).code).toBe(2);
    expect(qosctl(['--socket', node.socket, 'volume', 'set', 'x']).err).toContain('nothing to change');
    expect(qosctl(['--socket', node.socket, 'calibrate', 'default', '--seconds', '0']).code).toBe(2);
    expect(JSON.parse(qosctl(['--socket', node.socket, '-o', 'json', 'volumes']).out)).toEqual({ volumes: [] });
  });

  it('says the daemon is not running (exit 1) when the socket is absent', () => {
    const r = qosctl(['--socket', path.join(node.dir, 'absent.sock'), 'status']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('qosd is not running at');
  });

  it('ends quietly when its reader closes the pipe (qosctl volumes | head)', async () => {
    const child = spawn(process.execPath, [QOSCTL, '--socket', node.socket, '-o', 'json', 'status'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.destroy(); // the reader is gone before qosctl writes a byte
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((res) => child.once('exit', res));
    expect(err).toBe('');
    expect(code).toBe(0);
  });

  it('install-flex: atomic install under qosd~nvme with the socket baked in', () => {
    const dir = path.join(node.dir, 'plugins-cli');
    const r = qosctl(['--socket', node.socket, '-o', 'json', 'install-flex', '--plugin-dir', dir]);
    expect(r.code, r.err).toBe(0);
    const installed = path.join(dir, 'qosd~nvme', 'nvme');
    expect(JSON.parse(r.out)).toMatchObject({ installed, driver: 'qosd/nvme' });
    const text = fs.readFileSync(installed, 'utf8');
    expect(text.split('\n')[0]).toBe(`#!${process.execPath} --no-warnings`);
    expect(text).toContain(`const INSTALLED_SOCKET = ${JSON.stringify(node.socket)};`);
    const doctor = JSON.parse(qosctl(['--socket', node.socket, '-o', 'json', 'doctor', '--plugin-dir', dir]).out);
    expect(doctor.checks.find((c: { name: string }) => c.name === 'flex driver')).toMatchObject({ status: 'ok', detail: installed });
    expect(fs.readdirSync(path.dirname(installed))).toEqual(['nvme']);
    // Re-installing replaces the file in one rename.
    const t = qosctl(['--socket', node.socket, 'install-flex', '--plugin-dir', dir]);
    expect(t.code).toBe(0);
    expect(t.out).toBe(`installed qosd/nvme at ${installed}\n`);
    expect(fs.readdirSync(path.dirname(installed))).toEqual(['nvme']);
  });
});

describe("the README's run command", () => {
  it('npm start builds and starts a daemon on the dev config that qosctl status reaches', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-readme-'));
    const socket = path.join(dir, 'qosd.sock');
    // Socket, state and metrics moved aside so a developer's own dev daemon is left alone;
    // everything else is config/dev.yaml as `npm start` runs it.
    const child = spawn('npm', ['start', '--', '--socket', socket, '--state-dir', path.join(dir, 'state'), '--metrics-listen', 'off'], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    try {
      // npm start builds first: under load (CI builds Kubernetes beside the suite) that is slow.
      await waitForSocket(socket, 300_000).catch((err: Error) => {
        throw new Error(`${err.message}; npm start said:\n${out}`);
      });
      const r = qosctl(['--socket', socket, '-o', 'json', 'status']);
      expect(r.code, out).toBe(0);
      expect(JSON.parse(r.out).config).toBe(path.join(REPO, 'config', 'dev.yaml'));
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((res) => child.once('exit', res));
        process.kill(-child.pid!, 'SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 400_000);

});
