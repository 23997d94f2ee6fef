// The tarball a node installs (`npm run package`), checked as a node gets it: what it carries, and
// that a copy installed from it offline, with no scripts, serves and manages a volume.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, makeTestNode, removeTestNode, waitForSocket, type TestNode } from '../helpers/daemon';
import { nodeTestBlocker } from '../helpers/host';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

// The README states the unpacked size; this is the ceiling the package must stay under.
const MAX_UNPACKED_BYTES = 20 * 1000 * 1000;

interface Entry { size: number; path: string }

function run(cmd: string, args: string[], cwd = REPO) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

describe('the package', () => {
  let work: string;
  let tarball: string;
  let entries: Entry[];
  let installed: string;

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-package-test-'));
    tarball = run(process.execPath, [path.join(REPO, 'scripts', 'package.js'), '--out', work]).trim();
    entries = run('tar', ['-tzvf', tarball]).split('\n').filter(Boolean).map((line) => {
      const f = line.trim().split(/\s+/);
      return { size: Number(f[2]), path: f.slice(5).join(' ') };
    });
    const prefix = path.join(work, 'prefix');
    run('npm', ['install', '-g', '--prefix', prefix, '--offline', '--ignore-scripts', '--no-audit', '--no-fund', tarball], work);
    installed = prefix;
  }, 600_000);

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('stays under its stated size and carries one SQLite addon, the dashboards and no build leftovers', () => {
    const total = entries.reduce((sum, e) => sum + e.size, 0);
    expect(total).toBeLessThan(MAX_UNPACKED_BYTES);
    const addons = entries.filter((e) => e.path.endsWith('.node'));
    expect(addons.map((e) => e.path)).toEqual([`package/dist/native/better_sqlite3-abi${process.versions.modules}.node`]);
    expect(entries.some((e) => e.path.startsWith('package/dashboards/') && e.path.endsWith('.json'))).toBe(true);
    expect(entries.some((e) => e.path === 'package/systemd/qosd.service')).toBe(true);
    expect(entries.filter((e) => /sqlite3\.c$|\.o$|\/deps\/|\.cpp$/.test(e.path))).toEqual([]);
    // Every bundled dependency is whole enough for npm to install it offline (checked below).
    expect(entries.some((e) => e.path === 'package/node_modules/better-sqlite3/lib/index.js')).toBe(true);
  });

  it('installed offline with no scripts: qosctl runs and names the daemon it cannot reach', () => {
    const r = spawnSync(path.join(installed, 'bin', 'qosctl'), ['--socket', path.join(work, 'none.sock'), 'version'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^qosctl +\d+\.\d+\.\d+$/m);
    expect(r.stdout).toMatch(/^qosd +\(not reachable: /m);
  });

  describe.skipIf(blocker)('installed, on this node', () => {
    let node: TestNode;
    let daemon: ReturnType<typeof spawn> | undefined;

    beforeAll(async () => {
      node = makeTestNode();
      daemon = spawn(path.join(installed, 'bin', 'qosd'), ['--config', node.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      await waitForSocket(node.socket);
    });

    afterAll(async () => {
      if (daemon && daemon.exitCode === null) {
        const exited = new Promise((r) => daemon!.once('exit', r));
        daemon.kill('SIGTERM');
        await exited;
      }
      if (node) removeTestNode(node);
    });

    it('serves, creates a volume with the packaged SQLite addon, and deletes it', () => {
      const qosctl = (args: string[]) => spawnSync(path.join(installed, 'bin', 'qosctl'), ['--socket', node.socket, ...args], { encoding: 'utf8' });
      const version = qosctl(['version']);
      expect(version.stdout).toMatch(/^qosd +\d+\.\d+\.\d+$/m);
      const created = qosctl(['-o', 'json', 'volume', 'create', 'packaged', '--size', '64Mi']);
      expect(created.stderr).toBe('');
      expect(JSON.parse(created.stdout)).toMatchObject({ name: 'packaged', state: 'ready' });
      expect(qosctl(['volume', 'delete', 'packaged']).status).toBe(0);
    });
  });
});
