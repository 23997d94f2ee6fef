// The start-up check that qosd shares the host's mount namespace: by namespace link when PID 1's
// is readable, else by the mount id of "/" (unique across namespaces). Fake /proc trees here;
// the real one is tested by the daemon's start (it refuses to run under `unshare -m`).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { sharesHostMountNamespace } from '../../src/host/mount-namespace';
import { QOSD, makeTestNode, removeTestNode } from '../helpers/daemon';
import { isRoot } from '../helpers/host';
import { hostRoot } from '../../src/host/host-root';

/** The check over a fake procfs. */
const sharesAt = (proc: string) => sharesHostMountNamespace(hostRoot({ proc }));

const line = (id: number, mp: string) => `${id} 1 0:${id} / ${mp} rw,relatime shared:1 - ext4 /dev/vda rw`;

function fakeProc(host: string[], self: string[], links?: { host: string; self: string }): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-proc-'));
  for (const [pid, lines] of [['1', host], ['self', self]] as const) {
    fs.mkdirSync(path.join(root, pid, 'ns'), { recursive: true });
    fs.writeFileSync(path.join(root, pid, 'mountinfo'), `${lines.join('\n')}\n`);
  }
  if (links) {
    fs.symlinkSync(links.host, path.join(root, '1', 'ns', 'mnt'));
    fs.symlinkSync(links.self, path.join(root, 'self', 'ns', 'mnt'));
  }
  return root;
}

describe('mount namespace check', () => {
  it('compares the namespace links when both can be read', () => {
    expect(sharesAt(fakeProc([], [], { host: 'mnt:[1]', self: 'mnt:[1]' }))).toBe(true);
    expect(sharesAt(fakeProc([], [], { host: 'mnt:[1]', self: 'mnt:[2]' }))).toBe(false);
  });

  it('falls back to the mount id of "/" when PID 1\'s links cannot be read', () => {
    expect(sharesAt(fakeProc([line(27, '/'), line(22, '/proc')], [line(27, '/'), line(22, '/proc')]))).toBe(true);
    // A copy of the host's namespace: the same mounts under new ids.
    expect(sharesAt(fakeProc([line(27, '/'), line(22, '/proc')], [line(812, '/'), line(813, '/proc')]))).toBe(false);
  });

  it('says it cannot tell when PID 1 is hidden', () => {
    const root = fakeProc([], [line(27, '/')]);
    fs.rmSync(path.join(root, '1'), { recursive: true });
    expect(sharesAt(root)).toBeUndefined();
  });

  it.skipIf(!isRoot)(`refuses to start the daemon in a private mount namespace${isRoot ? '' : ' (skipped: needs root for unshare -m)'}`, () => {
    const node = makeTestNode();
    try {
      const r = spawnSync('unshare', ['-m', process.execPath, QOSD, '--config', node.configFile], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/private mount namespace/);
      expect(fs.existsSync(node.socket)).toBe(false);
    } finally {
      removeTestNode(node);
    }
  });
});
