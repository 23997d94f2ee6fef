// Real daemons on temporary configs: each gets its own state dir, socket, kubelet root, file pool
// and kubelet cgroupRoot (a private subtree of the node's cgroup hierarchy), and runs as a child
// process exactly as `qosd --config FILE` would.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { request } from '../../src/cli/client';
import { DAEMON_NODE_FLAGS } from '../../src/cli/node-flags';
import { readMountinfo } from '../../src/host/mountinfo';
import { hostRoot } from '../../src/host/host-root';
import { removeCgroupTree } from './cgroup';
import { afterAll, beforeAll } from 'vitest';

export const REPO = path.resolve(__dirname, '..', '..');
export const QOSD = path.join(REPO, 'dist', 'cli', 'qosd.js');
export const QOSCTL = path.join(REPO, 'dist', 'cli', 'qosctl.js');
export const VERSION_OF_PACKAGE: string = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

export interface TestNode {
  dir: string;
  configFile: string;
  socket: string;
  /** The CSI socket (csi.socket), and kubelet's plugin registration dir under kubeletRoot. */
  csiSocket: string;
  stateDir: string;
  kubeletRoot: string;
  poolDir: string;
  cgroupRoot: string; // kubelet.cgroupRoot, e.g. /qosd-test-ab12cd
  pluginDir: string;
  extraConfig: string;
}

const DEFAULT_CAPACITY = '{ readIops: 50000, writeIops: 50000, readBps: 1G, writeBps: 1G }';

/** A node config in a fresh temp dir; `capacity` is the default pool's (YAML flow map, or "" for none). */
export function makeTestNode(extraConfig = '', capacity = DEFAULT_CAPACITY): TestNode {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-test-'));
  const id = path.basename(dir).replace(/[^a-zA-Z0-9]/g, '').toLowerCase();
  const node: TestNode = {
    dir,
    configFile: path.join(dir, 'config.yaml'),
    socket: path.join(dir, 'qosd.sock'),
    csiSocket: path.join(dir, 'csi.sock'),
    stateDir: path.join(dir, 'state'),
    kubeletRoot: path.join(dir, 'kubelet'),
    poolDir: path.join(dir, 'volumes'),
    cgroupRoot: `/${id}`,
    pluginDir: path.join(dir, 'plugins'),
    extraConfig,
  };
  fs.mkdirSync(path.join(node.kubeletRoot, 'pods'), { recursive: true });
  fs.writeFileSync(
    node.configFile,
    [
      `socket: ${node.socket}`,
      `stateDir: ${node.stateDir}`,
      'logLevel: warn',
      'metrics: { listen: "off" }',
      `kubelet: { rootDir: ${node.kubeletRoot}, cgroupRoot: ${node.cgroupRoot}, cgroupDriver: cgroupfs }`,
      'reconcile: { intervalSeconds: 2 }',
      // Every test daemon serves CSI on its own socket (a test's extraConfig may say otherwise).
      /^csi:/m.test(extraConfig) ? '' : `csi: { socket: ${node.csiSocket}, nodeName: qosd-test-node }`,
      'pools:',
      `  - { name: default, backend: file, path: ${node.poolDir}, create: true${capacity ? `, capacity: ${capacity}` : ''} }`,
      'defaults: { size: 64Mi }',
      extraConfig,
    ].join('\n'),
  );
  return node;
}

export interface RunningDaemon {
  child: ChildProcess;
  exited: Promise<void>;
  output: () => string;
  stop: () => Promise<void>;
}

// Under the VM's emulated CPU a daemon start takes tens of seconds.
const START_TIMEOUT_MS = process.env.QOSD_VM === '1' ? 120_000 : 15_000;

export async function waitForSocket(socket: string, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await request(socket, 'GET', '/v1/status', undefined, 2000);
      if (r.status === 200) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > until) throw new Error(`qosd did not answer on ${socket} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startDaemon(node: TestNode, extraArgs: string[] = [], env: Record<string, string> = {}): Promise<RunningDaemon> {
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, QOSD, '--config', node.configFile, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    await Promise.race([
      waitForSocket(node.socket),
      exited.then(() => {
        throw new Error(`qosd exited at start:\n${out}`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    child,
    exited,
    output: () => out,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Installs the flex driver for this node the way an operator does, and returns its path. */
export function installDriver(node: TestNode): string {
  execFileSync(process.execPath, [QOSCTL, '--socket', node.socket, 'install-flex', '--plugin-dir', node.pluginDir]);
  return path.join(node.pluginDir, 'qosd~nvme', 'nvme');
}

/** Takes down whatever a test node left on the machine: mounts, loop devices, cgroups, files. */
export function removeTestNode(node: TestNode): void {
  for (const m of readMountinfo(hostRoot()).filter((e) => e.mountPoint.startsWith(node.dir)).reverse()) {
    try {
      execFileSync('umount', [m.mountPoint]);
    } catch {
      /* already gone */
    }
  }
  if (process.getuid?.() === 0) {
    for (const f of fs.existsSync(node.poolDir) ? fs.readdirSync(node.poolDir) : []) {
      for (const line of execFileSync('losetup', ['-j', path.join(node.poolDir, f)], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
        execFileSync('losetup', ['-d', line.split(':')[0]!]);
      }
    }
  }
  removeCgroupTree(node.cgroupRoot);
  fs.rmSync(node.dir, { recursive: true, force: true });
}

export interface TestDaemon {
  node: TestNode;
  /** Replace it after a restart; afterAll stops whichever is current. */
  daemon: RunningDaemon;
  driver: string;
  api<T>(method: string, url: string, body?: unknown): ReturnType<typeof request<T>>;
}

/**
 * A test node, its running daemon and the installed flex driver for the enclosing describe:
 * made in beforeAll, taken down (daemon, mounts, loops, cgroups, files) in afterAll.
 */
export function useTestDaemon(extraConfig = '', capacity?: string): TestDaemon {
  const t = {
    api: <T>(method: string, url: string, body?: unknown) => request<T>(t.node.socket, method, url, body),
  } as TestDaemon;
  beforeAll(async () => {
    t.node = capacity === undefined ? makeTestNode(extraConfig) : makeTestNode(extraConfig, capacity);
    t.daemon = await startDaemon(t.node);
    t.driver = installDriver(t.node);
  });
  afterAll(async () => {
    await t.daemon?.stop();
    if (t.node) removeTestNode(t.node);
  });
  return t;
}
