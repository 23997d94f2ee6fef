// qosctl status, attachments, install-flex, doctor.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { ApiError, call, request } from '../client';
import { UsageError, action, emit, figures, globals, type Figures } from '../output';
import { printKeyValues, printTable } from '../table';
import { DEFAULT_PLUGIN_DIR, installFlex } from '../install-flex';
import { DEFAULT_CONFIG, DEFAULT_UNIT_DIR, installUnits } from '../install-units';
import { formatBytes } from '../../util/quantity';

interface CsiStatus {
  socket: string;
  nodeName: string;
  registration: string | null;
  kubelet: { registered: boolean; error: string; at: string } | null;
  volumeRequests: { source: string; watching: boolean; error: string | null; carriedOut: number } | null;
}

/** The CSI line of qosctl status: the socket, the node, and whether kubelet registered the driver. */
function csiLine(c: CsiStatus | null): string {
  if (!c) return 'off';
  const reg = c.registration === null
    ? 'registration by node-driver-registrar'
    : c.kubelet === null ? 'not registered by kubelet yet' : c.kubelet.registered ? `registered by kubelet at ${c.kubelet.at}` : `kubelet refused: ${c.kubelet.error}`;
  return `${c.socket}, node ${c.nodeName}, ${reg}`;
}

/** Whether the central controller's calls reach this node (csi.kubeconfig). */
function volumeRequestsLine(c: CsiStatus | null): string {
  const w = c?.volumeRequests;
  if (!w) return 'off (csi.kubeconfig not set: expansions and QoS changes through Kubernetes need it)';
  return w.watching ? `watching the API server (${w.source}), ${w.carriedOut} carried out` : `not watching: ${w.error ?? 'starting'}`;
}

interface Check { name: string; status: 'ok' | 'warn' | 'fail'; detail: string; fix: string | null }

export function registerNodeCommands(program: Command): void {
  registerStatusCommand(program);
  registerAttachmentsCommand(program);
  registerInstallFlexCommand(program);
  registerBackupCommand(program);
  registerInstallUnitsCommand(program);
  registerDevicesCommand(program);
  registerDoctorCommand(program);
}

function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('show what the daemon runs on')
    .action(
      action(async function (this: Command) {
        const g = globals(this);
        const s = await call<Record<string, unknown> & { pools: { name: string; backend: string; volumes: number; capacity: Figures }[]; cgroup: Record<string, string | null>; csi: CsiStatus | null }>(g.socket, 'GET', '/v1/status');
        emit(g, s, () => {
          printKeyValues([
            ['version', String(s.version)], ['pid', String(s.pid)], ['uptime', `${Math.round(Number(s.uptimeSeconds))} s`],
            ['socket', String(s.socket)], ['state dir', String(s.stateDir)], ['config', String(s.config ?? '(embedded defaults)')],
            ['cgroup', s.cgroup.error ? `unusable: ${s.cgroup.error}` : `${s.cgroup.version} at ${s.cgroup.base}`],
            ['csi', csiLine(s.csi)],
            ['csi central', volumeRequestsLine(s.csi)],
            ['volumes', String(s.volumes)], ['attachments', String(s.attachments)],
          ]);
          process.stdout.write('\n');
          printTable(['POOL', 'BACKEND', 'VOLUMES', 'CAPACITY'], s.pools.map((p) => [p.name, p.backend, String(p.volumes), figures(p.capacity)]));
        });
      }),
    );
}

function registerAttachmentsCommand(program: Command): void {
  program
    .command('attachments')
    .description('list where volumes are mounted and which cgroups carry their rules')
    .action(
      action(async function (this: Command) {
        const g = globals(this);
        const { attachments } = await call<{ attachments: { volume: string; target: string; podUid: string | null; state: string; cgroupVersion: string | null; cgroupPaths: string[] }[] }>(g.socket, 'GET', '/v1/attachments');
        emit(g, { attachments }, () =>
          printTable(['VOLUME', 'POD', 'STATE', 'CGROUP', 'RULED CGROUPS', 'TARGET'], attachments.map((a) => [a.volume, a.podUid ?? '-', a.state, a.cgroupVersion ?? '-', String(a.cgroupPaths.length), a.target])),
        );
      }),
    );
}

function registerInstallFlexCommand(program: Command): void {
  program
    .command('install-flex')
    .description('install the qosd/nvme FlexVolume driver for kubelet')
    .option('--plugin-dir <dir>', "kubelet's --volume-plugin-dir", DEFAULT_PLUGIN_DIR)
    .action(
      action(async function (this: Command, o: { pluginDir: string }) {
        const g = globals(this);
        // The socket is baked in only when it is not the default, which the driver knows already.
        const socketGiven = program.getOptionValueSource('socket') !== 'default';
        const installed = installFlex(o.pluginDir, socketGiven ? g.socket : undefined);
        emit(g, { installed, driver: 'qosd/nvme', socket: g.socket }, () => process.stdout.write(`installed qosd/nvme at ${installed}\n`));
      }),
    );
}

function registerBackupCommand(program: Command): void {
  program
    .command('backup <file>')
    .description("copy the daemon's state database to FILE while it runs (SQLite's online backup); restore by starting qosd on a state dir holding it as qosd.db")
    .action(
      action(async function (this: Command, file: string) {
        const g = globals(this);
        const r = await call<{ file: string; bytes: number }>(g.socket, 'POST', '/v1/backup', { file: path.resolve(file) });
        emit(g, r, () => process.stdout.write(`state backed up to ${r.file} (${r.bytes} bytes)\n`));
      }),
    );
}

function registerInstallUnitsCommand(program: Command): void {
  program
    .command('install-units')
    .description('install the systemd units qosd.socket and qosd.service, starting qosd with this Node.js')
    .option('--unit-dir <dir>', 'where systemd reads units', DEFAULT_UNIT_DIR)
    .option('--config <file>', 'the config file the service runs with', DEFAULT_CONFIG)
    .action(
      action(async function (this: Command, o: { unitDir: string; config: string }) {
        const g = globals(this);
        // The service would only fail at its start: say so now.
        if (!fs.existsSync(o.config)) throw new UsageError(`--config: ${o.config} does not exist; write the node's config first (see the README's install steps)`);
        const installed = await installUnits(o.unitDir, o.config);
        emit(g, { installed, node: process.execPath }, () =>
          process.stdout.write(`installed ${installed.join(' and ')} (node ${process.execPath}); now: systemctl daemon-reload && systemctl enable --now qosd.socket qosd.service\n`));
      }),
    );
}

function registerDevicesCommand(program: Command): void {
  program
    .command('devices')
    .description("list the node's NVMe namespaces: model, serial, size, which pool uses each, any signature")
    .action(
      action(async function (this: Command) {
        const g = globals(this);
        const { devices } = await call<{ devices: { device: string; model: string; serial: string; firmware: string; sizeBytes: number; deviceNumber: string; pool: string | null; signature: string | null }[] }>(g.socket, 'GET', '/v1/devices');
        emit(g, { devices }, () =>
          printTable(
            ['DEVICE', 'MAJ:MIN', 'MODEL', 'SERIAL', 'FIRMWARE', 'SIZE', 'POOL', 'SIGNATURE'],
            devices.map((d) => [d.device, d.deviceNumber, d.model, d.serial, d.firmware, formatBytes(d.sizeBytes), d.pool ?? '-', d.signature ?? '-']),
          ),
        );
      }),
    );
}

function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check what makes qosd work on this node; each check ok, warn or fail, with the fix')
    .option('--plugin-dir <dir>', "kubelet's --volume-plugin-dir, where the flex driver should be", DEFAULT_PLUGIN_DIR)
    .action(
      action(async function (this: Command, o: { pluginDir: string }) {
        const g = globals(this);
        const checks: Check[] = [];
        const uid = process.getuid?.() ?? -1;
        checks.push(uid === 0 ? { name: 'qosctl runs as root', status: 'ok', detail: 'uid 0', fix: null } : { name: 'qosctl runs as root', status: 'warn', detail: `uid ${uid}`, fix: 'changes need root or membership of the socket\'s group' });
        try {
          const st = fs.statSync(g.socket);
          checks.push({ name: 'socket file', status: st.isSocket() ? 'ok' : 'fail', detail: `${g.socket} mode 0${(st.mode & 0o777).toString(8)}`, fix: st.isSocket() ? null : 'not a socket: is --socket right?' });
        } catch {
          checks.push({ name: 'socket file', status: 'fail', detail: `${g.socket} does not exist`, fix: 'start qosd (systemctl start qosd) or pass --socket' });
        }
        try {
          const r = await request<{ checks: Check[] }>(g.socket, 'GET', '/v1/doctor', undefined, 10_000);
          checks.push({ name: 'daemon reachable', status: 'ok', detail: g.socket, fix: null }, ...r.body.checks);
        } catch (err) {
          checks.push({ name: 'daemon reachable', status: 'fail', detail: (err as ApiError).message, fix: 'start qosd (systemctl start qosd); see journalctl -u qosd' });
        }
        checks.push(flexDriverCheck(o.pluginDir));
        const worst = checks.some((c) => c.status === 'fail') ? 'fail' : checks.some((c) => c.status === 'warn') ? 'warn' : 'ok';
        emit(g, { status: worst, checks }, () => {
          printTable(['STATUS', 'CHECK', 'DETAIL', 'FIX'], checks.map((c) => [c.status.toUpperCase(), c.name, c.detail, c.fix ?? '']));
          process.stdout.write(`\n${worst === 'ok' ? 'all checks passed' : `${checks.filter((c) => c.status === 'fail').length} failed, ${checks.filter((c) => c.status === 'warn').length} warnings`}\n`);
        });
        if (worst === 'fail') process.exitCode = 1;
      }),
    );
}

/** The flex driver where kubelet probes for it: there, executable, and naming this socket. */
function flexDriverCheck(pluginDir: string): Check {
  const file = path.join(pluginDir, 'qosd~nvme', 'nvme');
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return { name: 'flex driver', status: 'warn', detail: `${file} is not installed (the CSI driver does not need it)`, fix: `qosctl install-flex --plugin-dir ${pluginDir}` };
  }
  if ((st.mode & 0o111) === 0) return { name: 'flex driver', status: 'fail', detail: `${file} is not executable`, fix: `qosctl install-flex --plugin-dir ${pluginDir}` };
  return { name: 'flex driver', status: 'ok', detail: file, fix: null };
}
