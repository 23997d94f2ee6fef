// The systemd units: they pass `systemd-analyze verify` (with ExecStart pointed at this build, as
// an install would place it), the service's offline security exposure stays at or under 4.0, and
// no option gives the service a mount namespace of its own (its mounts would never reach kubelet;
// the VM suite boots systemd and shows the mounts on the host's side).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { QOSCTL, QOSD, REPO } from '../helpers/daemon';
import { which } from '../../src/host/exec';

const missing = which('systemd-analyze') ? undefined : 'needs systemd-analyze (Debian package systemd)';
if (missing && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${missing}`);

describe.skipIf(missing)(`systemd units${missing ? ` (skipped: ${missing})` : ''}`, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-units-'));
  for (const u of ['qosd.socket', 'qosd.service']) {
    const text = fs.readFileSync(path.join(REPO, 'systemd', u), 'utf8').replace('/usr/local/bin/qosd', QOSD);
    fs.writeFileSync(path.join(dir, u), text);
  }

  it('pass systemd-analyze verify', () => {
    const r = spawnSync('systemd-analyze', ['verify', path.join(dir, 'qosd.socket'), path.join(dir, 'qosd.service')], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('keep the service exposure at or under 4.0', () => {
    const r = spawnSync('systemd-analyze', ['security', '--offline=yes', path.join(dir, 'qosd.service')], { encoding: 'utf8' });
    const m = /Overall exposure level for qosd\.service: (\d+\.\d+)/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(4.0);
  });

  it('give the service no mount namespace, no start limit, and a system-call filter that kills', () => {
    const service = fs.readFileSync(path.join(REPO, 'systemd', 'qosd.service'), 'utf8');
    const set = service.split('\n').filter((l) => /^[A-Z]\w*=/.test(l));
    // systemd.exec(5): each of these makes systemd set up a mount namespace for the unit.
    const namespacing = ['ProtectSystem', 'ReadWritePaths', 'ReadOnlyPaths', 'InaccessiblePaths', 'ProtectHome', 'PrivateTmp', 'PrivateDevices',
      'PrivateMounts', 'ProtectKernelModules', 'ProtectKernelLogs', 'ProtectKernelTunables', 'ProtectControlGroups', 'ProtectProc', 'ProcSubset',
      'MountFlags', 'BindPaths', 'BindReadOnlyPaths', 'TemporaryFileSystem', 'RootDirectory', 'RootImage', 'MountAPIVFS', 'PrivateIPC', 'NetworkNamespacePath'];
    for (const key of namespacing) expect(set.filter((l) => l.startsWith(`${key}=`)), key).toEqual([]);
    expect(service).toMatch(/^StartLimitIntervalSec=0$/m);
    expect(set.filter((l) => l.startsWith('SystemCallErrorNumber='))).toEqual([]);
  });

  it('hand the socket over with mode 0660 and start the service from it', () => {
    const socket = fs.readFileSync(path.join(REPO, 'systemd', 'qosd.socket'), 'utf8');
    expect(socket).toMatch(/^ListenStream=\/run\/qosd\/qosd\.sock$/m);
    expect(socket).toMatch(/^SocketMode=0660$/m);
    const service = fs.readFileSync(path.join(REPO, 'systemd', 'qosd.service'), 'utf8');
    expect(service).toMatch(/^Requires=qosd\.socket$/m);
    expect(service).toMatch(/^ExecStart=\/usr\/local\/bin\/qosd --config \/etc\/qosd\/config\.yaml$/m);
  });

  it('are installed by qosctl install-units with ExecStart naming this node and this build, and pass verify', () => {
    const unitDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-unitdir-'));
    const config = path.join(unitDir, 'config.yaml');
    // No config yet: refused with the flag named, nothing written.
    const refused = spawnSync(process.execPath, [QOSCTL, 'install-units', '--unit-dir', unitDir, '--config', config], { encoding: 'utf8' });
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/--config: .* does not exist/);
    expect(fs.readdirSync(unitDir)).toEqual([]);
    fs.writeFileSync(config, 'logLevel: info\n');
    const r = spawnSync(process.execPath, [QOSCTL, 'install-units', '--unit-dir', unitDir, '--config', config], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const service = fs.readFileSync(path.join(unitDir, 'qosd.service'), 'utf8');
    expect(service).toContain(`\nExecStart=${process.execPath} --single-threaded-gc ${QOSD} --config ${config}\n`);
    expect(fs.readFileSync(path.join(unitDir, 'qosd.socket'), 'utf8')).toBe(fs.readFileSync(path.join(REPO, 'systemd', 'qosd.socket'), 'utf8'));
    const v = spawnSync('systemd-analyze', ['verify', path.join(unitDir, 'qosd.socket'), path.join(unitDir, 'qosd.service')], { encoding: 'utf8' });
    expect(v.stdout + v.stderr).toBe('');
  });
});
