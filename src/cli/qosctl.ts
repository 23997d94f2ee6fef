#!/usr/bin/env node
// qosctl: the operator CLI. Talks to qosd over its unix socket; -o json prints the API's JSON,
// -o table (the default) prints what a person reads. Exit status: 0 ok, 1 the daemon refused or
// failed, 2 bad arguments.
import { Command, InvalidArgumentError, Option } from 'commander';
import { ApiError, call } from './client';
import { DEFAULT_PLUGIN_DIR, installFlex } from './install-flex';
import { DEFAULTS } from '../config/config';
import { parseQuantity, formatBytes } from '../util/quantity';
import { printTable, printKeyValues } from './table';

interface Globals {
  socket: string;
  output: 'table' | 'json';
}

type Figures = Partial<Record<'readIops' | 'writeIops' | 'readBps' | 'writeBps', number>>;
interface VolumeOut {
  name: string; pool: string; sizeBytes: number; fsType: string; class: string; ephemeral: boolean; state: string;
  device: string | null; deviceNumber: string | null; qos: { min: Figures; max: Figures };
  attachments: { target: string; podUid: string | null; podCgroup: string | null; cgroupPaths: string[] }[];
  createdAt: string;
}

const program = new Command('qosctl')
  .description('Operate qosd, the node storage QoS daemon')
  .addOption(new Option('--socket <path>', 'qosd API socket').env('QOSD_SOCKET').default(DEFAULTS.socket))
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

const globals = (): Globals => program.opts<Globals>();

function emit(json: unknown, table: () => void): void {
  if (globals().output === 'json') process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else table();
}

function figures(f: Figures): string {
  const parts: string[] = [];
  if (f.readIops !== undefined) parts.push(`rIOPS=${f.readIops}`);
  if (f.writeIops !== undefined) parts.push(`wIOPS=${f.writeIops}`);
  if (f.readBps !== undefined) parts.push(`rBps=${formatBytes(f.readBps)}`);
  if (f.writeBps !== undefined) parts.push(`wBps=${formatBytes(f.writeBps)}`);
  return parts.join(' ') || '-';
}

function positive(what: string): (v: string) => number {
  return (v: string) => {
    const n = parseQuantity(v);
    if (typeof n !== 'number') throw new InvalidArgumentError(`${what}: ${n.error}`);
    return n;
  };
}

function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      if (err instanceof ApiError) {
        process.stderr.write(`qosctl: ${err.code !== 'Unavailable' ? `${err.code}: ` : ''}${err.message}\n`);
        process.exit(1);
      }
      process.stderr.write(`qosctl: ${(err as Error).message}\n`);
      process.exit(1);
    }
  };
}

program
  .command('status')
  .description('show what the daemon runs on')
  .action(
    action(async () => {
      const s = await call<Record<string, unknown> & { pools: { name: string; backend: string; volumes: number; capacity: Figures }[]; cgroup: Record<string, string | null> }>(globals().socket, 'GET', '/v1/status');
      emit(s, () => {
        printKeyValues([
          ['version', String(s.version)],
          ['pid', String(s.pid)],
          ['uptime', `${Math.round(Number(s.uptimeSeconds))} s`],
          ['socket', String(s.socket)],
          ['state dir', String(s.stateDir)],
          ['config', String(s.config ?? '(embedded defaults)')],
          ['cgroup', s.cgroup.error ? `unusable: ${s.cgroup.error}` : `${s.cgroup.version} at ${s.cgroup.base}`],
          ['volumes', String(s.volumes)],
          ['attachments', String(s.attachments)],
        ]);
        process.stdout.write('\n');
        printTable(['POOL', 'BACKEND', 'VOLUMES', 'CAPACITY'], s.pools.map((p) => [p.name, p.backend, String(p.volumes), figures(p.capacity)]));
      });
    }),
  );

program
  .command('volumes')
  .description('list volumes')
  .action(
    action(async () => {
      const { volumes } = await call<{ volumes: VolumeOut[] }>(globals().socket, 'GET', '/v1/volumes');
      emit({ volumes }, () =>
        printTable(
          ['NAME', 'POOL', 'SIZE', 'FS', 'CLASS', 'STATE', 'DEVICE', 'LIMITS', 'GUARANTEES', 'ATTACHED'],
          volumes.map((v) => [
            v.name, v.pool, formatBytes(v.sizeBytes), v.fsType, v.class, v.state, v.device ?? '-',
            figures(v.qos.max), figures(v.qos.min), String(v.attachments.length),
          ]),
        ),
      );
    }),
  );

const volume = program.command('volume').description('create, show, change or delete one volume');

volume
  .command('show <name>')
  .description('show a volume and where it is attached')
  .action(
    action(async (name: string) => {
      const v = await call<VolumeOut>(globals().socket, 'GET', `/v1/volumes/${encodeURIComponent(name)}`);
      emit(v, () => {
        printKeyValues([
          ['name', v.name], ['pool', v.pool], ['size', `${formatBytes(v.sizeBytes)} (${v.sizeBytes} bytes)`], ['fsType', v.fsType],
          ['class', v.class], ['ephemeral', String(v.ephemeral)], ['state', v.state],
          ['device', v.device ? `${v.device} (${v.deviceNumber})` : '-'],
          ['limits', figures(v.qos.max)], ['guarantees', figures(v.qos.min)], ['created', v.createdAt],
        ]);
        if (v.attachments.length) {
          process.stdout.write('\n');
          printTable(['TARGET', 'POD', 'CGROUPS'], v.attachments.map((a) => [a.target, a.podUid ?? '-', String(a.cgroupPaths.length)]));
        }
      });
    }),
  );

const qosFlags = (c: Command): Command =>
  c
    .option('--max-read-iops <n>', 'read IOPS limit', positive('--max-read-iops'))
    .option('--max-write-iops <n>', 'write IOPS limit', positive('--max-write-iops'))
    .option('--max-read-bps <q>', 'read bandwidth limit, bytes/s (500M, 1Gi)', positive('--max-read-bps'))
    .option('--max-write-bps <q>', 'write bandwidth limit, bytes/s', positive('--max-write-bps'))
    .option('--min-read-iops <n>', 'guaranteed read IOPS', positive('--min-read-iops'))
    .option('--min-write-iops <n>', 'guaranteed write IOPS', positive('--min-write-iops'))
    .option('--min-read-bps <q>', 'guaranteed read bandwidth, bytes/s', positive('--min-read-bps'))
    .option('--min-write-bps <q>', 'guaranteed write bandwidth, bytes/s', positive('--min-write-bps'));

type QosOpts = Partial<Record<'maxReadIops' | 'maxWriteIops' | 'maxReadBps' | 'maxWriteBps' | 'minReadIops' | 'minWriteIops' | 'minReadBps' | 'minWriteBps', number>>;

function qosBody(o: QosOpts): { min?: Figures; max?: Figures } | undefined {
  const min: Figures = {};
  const max: Figures = {};
  for (const d of ['readIops', 'writeIops', 'readBps', 'writeBps'] as const) {
    const cap = d[0]!.toUpperCase() + d.slice(1);
    const hi = o[`max${cap}` as keyof QosOpts];
    const lo = o[`min${cap}` as keyof QosOpts];
    if (hi !== undefined) max[d] = hi;
    if (lo !== undefined) min[d] = lo;
  }
  if (!Object.keys(min).length && !Object.keys(max).length) return undefined;
  return { ...(Object.keys(min).length && { min }), ...(Object.keys(max).length && { max }) };
}

qosFlags(
  volume
    .command('create <name>')
    .description('create a volume (formatted, not mounted)')
    .option('--pool <pool>', 'pool to carve it from')
    .option('--size <q>', 'size (10Gi, 500M)', positive('--size'))
    .addOption(new Option('--fs-type <fs>', 'filesystem').choices(['ext4', 'xfs']))
    .option('--class <class>', 'QoS class'),
).action(
  action(async (name: string, o: QosOpts & { pool?: string; size?: number; fsType?: string; class?: string }) => {
    const qos = qosBody(o);
    const body = {
      name,
      ...(o.pool !== undefined && { pool: o.pool }),
      ...(o.size !== undefined && { size: o.size }),
      ...(o.fsType !== undefined && { fsType: o.fsType }),
      ...(o.class !== undefined && { class: o.class }),
      ...(qos && { qos }),
    };
    const v = await call<VolumeOut>(globals().socket, 'POST', '/v1/volumes', body);
    emit(v, () => process.stdout.write(`volume ${v.name} created: ${formatBytes(v.sizeBytes)} ${v.fsType} on ${v.device}\n`));
  }),
);

qosFlags(volume.command('set <name>').description('change a volume: QoS (applied to its pods at once) or size (grow only)').option('--size <q>', 'new size, larger than the current one', positive('--size'))).action(
  action(async (name: string, o: QosOpts & { size?: number }) => {
    const qos = qosBody(o);
    if (!qos && o.size === undefined) throw new InvalidArgumentError('nothing to change: give --size or a --max-*/--min-* flag');
    const v = await call<VolumeOut>(globals().socket, 'PATCH', `/v1/volumes/${encodeURIComponent(name)}`, {
      ...(o.size !== undefined && { size: o.size }),
      ...(qos && { qos }),
    });
    emit(v, () => process.stdout.write(`volume ${v.name}: size ${formatBytes(v.sizeBytes)}, limits ${figures(v.qos.max)}, guarantees ${figures(v.qos.min)}\n`));
  }),
);

volume
  .command('delete <name>')
  .description('delete a volume and its data (refused while it is attached)')
  .action(
    action(async (name: string) => {
      await call(globals().socket, 'DELETE', `/v1/volumes/${encodeURIComponent(name)}`);
      emit({ deleted: name }, () => process.stdout.write(`volume ${name} deleted\n`));
    }),
  );

program
  .command('attachments')
  .description('list where volumes are mounted and which cgroups carry their rules')
  .action(
    action(async () => {
      const { attachments } = await call<{ attachments: { volume: string; target: string; podUid: string | null; state: string; cgroupVersion: string | null; cgroupPaths: string[] }[] }>(globals().socket, 'GET', '/v1/attachments');
      emit({ attachments }, () =>
        printTable(['VOLUME', 'POD', 'STATE', 'CGROUP', 'RULED CGROUPS', 'TARGET'], attachments.map((a) => [a.volume, a.podUid ?? '-', a.state, a.cgroupVersion ?? '-', String(a.cgroupPaths.length), a.target])),
      );
    }),
  );

program
  .command('install-flex')
  .description('install the qosd/nvme FlexVolume driver for kubelet')
  .option('--plugin-dir <dir>', "kubelet's --volume-plugin-dir", DEFAULT_PLUGIN_DIR)
  .action(
    action(async (o: { pluginDir: string }) => {
      // The driver is told the socket only when it is not the default, which it knows already.
      const socketGiven = program.getOptionValueSource('socket') !== 'default';
      const installed = installFlex(o.pluginDir, socketGiven ? globals().socket : undefined);
      emit({ installed, driver: 'qosd/nvme', socket: globals().socket }, () => process.stdout.write(`installed qosd/nvme at ${installed}\n`));
    }),
  );

program.parseAsync().catch((err: Error) => {
  process.stderr.write(`qosctl: ${err.message}\n`);
  process.exit(2);
});
