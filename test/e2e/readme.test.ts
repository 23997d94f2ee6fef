// The README's shell blocks, run as written. Each command is claimed by the test that runs it:
// here, the build of the package from a clone and the two commands of "Run it, test it"; the
// install on a node in the VM's systemd phase (test/vm/systemd/1-install.vm.ts); the kubectl
// commands in test/kube (csi.kube.ts). A command nobody runs fails the first test.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, waitForSocket } from '../helpers/daemon';
import { nodeTestBlocker } from '../helpers/host';
import { readmeShellBlocks, sectionCommands } from '../helpers/readme';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);
// The README's commands are run once per CI, on the machine's own Node.js; the Node.js 24 pass
// (test/node-lts.sh) runs the rest of the suite.
const skipReason = blocker ?? (process.env.QOSD_NODE_LTS === '1' ? 'run once, on the machine Node.js' : undefined);

const HERE = 'Run it, test it';
const BUILD = 'Install on a node';
const KUBE = 'Use it from Kubernetes';

/** The test that runs each README command (by section and position). */
function runnerOf(section: string, command: string): string | undefined {
  if (section === HERE) return 'readme.test.ts';
  if (section === BUILD) return command.startsWith('git clone') ? 'readme.test.ts' : 'test/vm/systemd/1-install.vm.ts';
  if (section === KUBE && command.startsWith('kubectl apply')) return 'test/kube/csi.kube.ts';
  return undefined;
}

function shell(command: string, cwd: string, timeoutMs = 900_000) {
  const r = spawnSync('bash', ['-c', command], { cwd, encoding: 'utf8', timeout: timeoutMs, env: process.env });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

/** `sudo` as written, or nothing when the test already runs as root (CI's machine has no sudo). */
function asRoot(command: string): string {
  return process.getuid?.() === 0 ? command.replace(/^sudo /, '') : command;
}

describe('the README', () => {
  it('has no shell command that no test runs', () => {
    const blocks = readmeShellBlocks();
    expect(blocks.length).toBeGreaterThan(0);
    const unclaimed = blocks.flatMap((b) => b.commands.filter((c) => !runnerOf(b.section, c)).map((c) => `${b.section}: ${c}`));
    expect(unclaimed).toEqual([]);
  });

  describe.skipIf(skipReason)('run as written from a clone', () => {
    let work: string;
    let clone: string;
    let daemon: ChildProcess | undefined;

    beforeAll(() => {
      work = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-readme-'));
      clone = path.join(work, 'qosd');
    });

    afterAll(async () => {
      if (daemon && daemon.exitCode === null && daemon.pid) {
        const exited = new Promise((r) => daemon!.once('exit', r));
        process.kill(-daemon.pid, 'SIGTERM');
        await exited;
      }
      if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    it('builds the package from a clone (the "…" being where the clone comes from)', () => {
      const build = sectionCommands(BUILD)[0] ?? '';
      expect(build).toMatch(/^git clone … qosd && /);
      const r = shell(build.replace('…', REPO), work);
      expect(r.code, r.err + r.out).toBe(0);
      expect(fs.readdirSync(clone).filter((f) => /^qosd-\d+\.\d+\.\d+\.tgz$/.test(f))).toHaveLength(1);
    }, 900_000);

    it('starts qosd with `npm start` and reaches it with the commands given', async () => {
      const [start, test] = sectionCommands(HERE);
      // The clone above has just run `npm ci`; `npm test` is the suite this test is part of.
      expect(start).toBe('npm ci && npm start');
      expect(test).toBe('npm test');
      daemon = spawn('bash', ['-c', 'npm start'], { cwd: clone, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: process.env });
      let out = '';
      daemon.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      daemon.stderr!.on('data', (c: Buffer) => (out += c.toString()));
      const exited = new Promise<void>((_, reject) => daemon!.once('exit', (code) => reject(new Error(`npm start exited (${code}):\n${out}`))));
      await Promise.race([waitForSocket(path.join(clone, 'var', 'qosd.sock'), 600_000), exited]);
      // The socket listens a moment before the start-up line is written (the periodic jobs start between).
      const serving = new Promise<void>((resolve) => {
        const look = () => (out.includes('qosd serving') ? resolve() : setTimeout(look, 100));
        look();
      });
      await Promise.race([serving, exited]);
      expect(out).toContain('qosd serving');

      const [status = '', create = '', ...rest] = sectionCommands(HERE).slice(2);
      expect(rest).toEqual([]);
      const s = shell(status, clone, 120_000);
      expect(s.code, s.err).toBe(0);
      expect(s.out).toMatch(/^version: +\d+\.\d+\.\d+/m);
      const c = shell(asRoot(create), clone, 120_000);
      expect(c.code, c.err).toBe(0);
      expect(c.out).toContain('demo');
      const d = shell('npx qosctl --socket var/qosd.sock volume delete demo', clone, 120_000);
      expect(d.code, d.err).toBe(0);
    }, 900_000);
  });
});
