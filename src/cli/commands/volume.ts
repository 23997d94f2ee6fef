// qosctl volumes, volume create|show|set|delete|history.
import { formatDuration } from '../../util/duration';
import { Option, type Command } from 'commander';
import { call } from '../client';
import { UsageError, action, emit, figures, globals, positive, type Figures } from '../output';
import { printKeyValues, printTable } from '../table';
import { formatBytes } from '../../util/quantity';

interface VolumeOut {
  name: string; pool: string; sizeBytes: number; fsType: string; class: string; ephemeral: boolean; state: string;
  device: string | null; deviceNumber: string | null; qos: { min: Figures; max: Figures; latency?: { read?: number; write?: number } }; overrides: { min: Figures; max: Figures };
  attachments: { target: string; podUid: string | null; podCgroup: string | null; cgroupPaths: string[] }[];
  createdAt: string;
}

interface EventOut { id: number; time: string; kind: string; source: string; detail: Record<string, unknown> }

const DIMS = ['readIops', 'writeIops', 'readBps', 'writeBps'] as const;
type QosOpts = Partial<Record<`${'max' | 'min'}${'ReadIops' | 'WriteIops' | 'ReadBps' | 'WriteBps'}`, number | null>> & { readLatencyTarget?: string; writeLatencyTarget?: string };
type QosBody = { min?: Record<string, number | null>; max?: Record<string, number | null>; latency?: Record<string, string | null> };

function qosFlags(c: Command): Command {
  for (const side of ['max', 'min'] as const) {
    for (const [flag, what] of [['read-iops', 'read IOPS'], ['write-iops', 'write IOPS'], ['read-bps', 'read bytes/s (500M, 1Gi)'], ['write-bps', 'write bytes/s']]) {
      c.option(`--${side}-${flag} <n>`, `${side === 'max' ? 'limit' : 'guarantee'}: ${what}`, positive(`--${side}-${flag}`));
    }
  }
  c.option('--read-latency-target <d>', 'latency target: mean read completion latency (500us, 2ms); needs a read guarantee');
  c.option('--write-latency-target <d>', 'latency target: mean write completion latency; needs a write guarantee');
  return c;
}

function qosBody(o: QosOpts): QosBody | undefined {
  const out: QosBody = {};
  for (const side of ['min', 'max'] as const) {
    for (const d of DIMS) {
      const v = o[`${side}${d[0]!.toUpperCase()}${d.slice(1)}` as keyof QosOpts];
      if (typeof v === 'number') (out[side] ??= {})[d] = v;
    }
  }
  if (o.readLatencyTarget !== undefined) (out.latency ??= {}).read = o.readLatencyTarget;
  if (o.writeLatencyTarget !== undefined) (out.latency ??= {}).write = o.writeLatencyTarget;
  return out.min || out.max || out.latency ? out : undefined;
}

function describeEvent(e: EventOut): string {
  const d = e.detail;
  if (e.kind === 'qos-changed') {
    type Qos = { min: Figures; max: Figures; latency?: { read?: number; write?: number } };
    const o = d.old as { class: string; qos: Qos };
    const n = d.new as { class: string; qos: Qos };
    const cls = o.class === n.class ? '' : `class ${o.class} → ${n.class}; `;
    const lat = targets(o.qos.latency) === targets(n.qos.latency) ? '' : `; latency targets ${targets(o.qos.latency)} → ${targets(n.qos.latency)}`;
    return `${cls}limits ${figures(o.qos.max)} → ${figures(n.qos.max)}; guarantees ${figures(o.qos.min)} → ${figures(n.qos.min)}${lat}`;
  }
  if (e.kind === 'volume-resized') return `${formatBytes(d.from as number)} → ${formatBytes(d.to as number)}`;
  if ('target' in d) return String(d.target);
  if ('reason' in d) return String(d.reason);
  return '';
}

/** The volume list (`qosctl volumes`, and `qosctl volume list`). */
const listVolumes = action(async function (this: Command) {
  const g = globals(this);
  const { volumes } = await call<{ volumes: VolumeOut[] }>(g.socket, 'GET', '/v1/volumes');
  emit(g, { volumes }, () =>
    printTable(
      ['NAME', 'POOL', 'SIZE', 'FS', 'CLASS', 'STATE', 'DEVICE', 'LIMITS', 'GUARANTEES', 'ATTACHED'],
      volumes.map((v) => [v.name, v.pool, formatBytes(v.sizeBytes), v.fsType, v.class, v.state, v.device ?? '-', figures(v.qos.max), figures(v.qos.min), String(v.attachments.length)]),
    ),
  );
});

export function registerVolumeCommands(program: Command): void {
  program.command('volumes').description('list volumes').action(listVolumes);

  const volume = program.command('volume').description('create, show, change, delete one volume, or show its history');
  volume.command('list').description('list volumes (as qosctl volumes)').action(listVolumes);
  registerShowVolume(volume);
  registerCreateVolume(volume);
  registerSetVolume(volume);
  registerDeleteVolume(volume);
  registerHistoryVolume(volume);
}

interface Attainment {
  direction: 'read' | 'write';
  guarantee: 'rate' | 'latency';
  seconds: number;
  keptSeconds: number;
  worst: number | null;
  worstAt: string;
}

/** "read 2ms, write 5ms", or "-". */
function targets(latency: { read?: number; write?: number } | undefined): string {
  const parts = (['read', 'write'] as const).filter((d) => latency?.[d] !== undefined).map((d) => `${d} ${formatDuration(latency![d]!)}`);
  return parts.length ? parts.join(', ') : '-';
}

/** One guarantee's hour: "read rate", "59m 58s", "99.9%", "42%", the time of the worst tick. */
function attainmentRow(a: Attainment): string[] {
  const kept = a.seconds > 0 ? `${Math.floor((a.keptSeconds / a.seconds) * 1000) / 10}% (${Math.round(a.keptSeconds)}s)` : '-';
  return [`${a.direction} ${a.guarantee}`, `${Math.round(a.seconds)}s`, kept, a.worst === null ? '-' : `${Math.round(a.worst * 100)}%`, a.worstAt];
}

function registerShowVolume(volume: Command): void {
  volume
    .command('show <name>')
    .description('show a volume and where it is attached')
    .action(
      action(async function (this: Command, name: string) {
        const g = globals(this);
        const v = await call<VolumeOut>(g.socket, 'GET', `/v1/volumes/${encodeURIComponent(name)}`);
        const { attainment } = await call<{ attainment: Attainment[] }>(g.socket, 'GET', `/v1/volumes/${encodeURIComponent(name)}/attainment`);
        emit(g, { ...v, attainment }, () => {
          printKeyValues([
            ['name', v.name], ['pool', v.pool], ['size', `${formatBytes(v.sizeBytes)} (${v.sizeBytes} bytes)`], ['fsType', v.fsType],
            ['class', v.class], ['ephemeral', String(v.ephemeral)], ['state', v.state],
            ['device', v.device ? `${v.device} (${v.deviceNumber})` : '-'],
            ['limits', figures(v.qos.max)], ['guarantees', figures(v.qos.min)], ['latency targets', targets(v.qos.latency)],
            ['set explicitly', `limits ${figures(v.overrides.max)}, guarantees ${figures(v.overrides.min)}`], ['created', v.createdAt],
          ]);
          if (v.attachments.length) {
            process.stdout.write('\n');
            printTable(['TARGET', 'POD', 'CGROUPS'], v.attachments.map((a) => [a.target, a.podUid ?? '-', String(a.cgroupPaths.length)]));
          }
          if (attainment.length) {
            process.stdout.write('\nguarantees over the last hour (while in force):\n');
            printTable(['GUARANTEE', 'IN FORCE', 'KEPT', 'WORST', 'AT'], attainment.map(attainmentRow));
          }
        });
      }),
    );
}

function registerCreateVolume(volume: Command): void {
  qosFlags(
    volume
      .command('create <name>')
      .description('create a volume (formatted, not mounted); guarantees are admitted against the pool')
      .option('--pool <pool>', 'pool to carve it from')
      .option('--size <q>', 'size (10Gi, 500M)', positive('--size'))
      .addOption(new Option('--fs-type <fs>', 'filesystem').choices(['ext4', 'xfs']))
      .option('--class <class>', 'QoS class')
      .option('--namespace <ns>', 'the Kubernetes namespace whose pods may mount it through flex (default: the first to mount it)'),
  ).action(
    action(async function (this: Command, name: string, o: QosOpts & { pool?: string; size?: number; fsType?: string; class?: string; namespace?: string }) {
      const g = globals(this);
      const qos = qosBody(o);
      const body = {
        name,
        ...(o.pool !== undefined && { pool: o.pool }),
        ...(o.size !== undefined && { size: o.size }),
        ...(o.fsType !== undefined && { fsType: o.fsType }),
        ...(o.class !== undefined && { class: o.class }),
        ...(qos && { qos }),
        ...(o.namespace !== undefined && { namespace: o.namespace }),
      };
      const v = await call<VolumeOut>(g.socket, 'POST', '/v1/volumes', body);
      emit(g, v, () => process.stdout.write(`volume ${v.name} created: ${formatBytes(v.sizeBytes)} ${v.fsType} on ${v.device}, limits ${figures(v.qos.max)}, guarantees ${figures(v.qos.min)}\n`));
    }),
  );
}

function registerSetVolume(volume: Command): void {
  qosFlags(
    volume
      .command('set <name>')
      .description('change a volume: class or QoS figures (applied to its pods at once, re-admitted), size (grow only)')
      .option('--size <q>', 'new size, larger than the current one', positive('--size'))
      .option('--class <class>', 'new QoS class (explicit figures still override it)')
      .option('--unset <figures>', 'drop explicit figures, e.g. max-read-iops,min-write-bps,read-latency-target (the class figure applies again)')
      .option('--namespace <ns>', 'give it to a Kubernetes namespace: flex mounts reach it from there alone'),
  ).action(
    action(async function (this: Command, name: string, o: QosOpts & { size?: number; class?: string; unset?: string; namespace?: string }) {
      const g = globals(this);
      const qos: QosBody = qosBody(o) ?? {};
      for (const item of o.unset ? o.unset.split(',') : []) {
        const target = /^(read|write)-latency-target$/.exec(item.trim());
        if (target) {
          (qos.latency ??= {})[target[1]!] = null;
          continue;
        }
        const m = /^(min|max)-(read|write)-(iops|bps)$/.exec(item.trim());
        if (!m) throw new UsageError(`--unset: "${item}" is not a figure (like max-read-iops, min-write-bps or read-latency-target)`);
        const dim = `${m[2]}${m[3] === 'iops' ? 'Iops' : 'Bps'}`;
        (qos[m[1] as 'min' | 'max'] ??= {})[dim] = null;
      }
      const body = {
        ...(o.size !== undefined && { size: o.size }),
        ...(o.class !== undefined && { class: o.class }),
        ...((qos.min || qos.max || qos.latency) && { qos }),
        ...(o.namespace !== undefined && { namespace: o.namespace }),
      };
      if (Object.keys(body).length === 0) throw new UsageError('nothing to change: give --size, --class, --namespace, --unset, a --max-*/--min-* flag or a latency target');
      const v = await call<VolumeOut>(g.socket, 'PATCH', `/v1/volumes/${encodeURIComponent(name)}`, body);
      emit(g, v, () => process.stdout.write(`volume ${v.name}: ${formatBytes(v.sizeBytes)}, class ${v.class}, limits ${figures(v.qos.max)}, guarantees ${figures(v.qos.min)}\n`));
    }),
  );
}

function registerDeleteVolume(volume: Command): void {
  volume
    .command('delete <name>')
    .description('delete a volume and its data (refused while it is attached); releases its guarantees')
    .action(
      action(async function (this: Command, name: string) {
        const g = globals(this);
        await call(g.socket, 'DELETE', `/v1/volumes/${encodeURIComponent(name)}`);
        emit(g, { deleted: name }, () => process.stdout.write(`volume ${name} deleted\n`));
      }),
    );
}

function registerHistoryVolume(volume: Command): void {
  volume
    .command('history <name>')
    .description("show a volume's event log: creation, QoS changes (old → new), attaches, resizes")
    .action(
      action(async function (this: Command, name: string) {
        const g = globals(this);
        const { events } = await call<{ events: EventOut[] }>(g.socket, 'GET', `/v1/volumes/${encodeURIComponent(name)}/events`);
        emit(g, { events }, () => printTable(['TIME', 'SOURCE', 'EVENT', 'DETAIL'], events.map((e) => [e.time, e.source, e.kind, describeEvent(e)])));
      }),
    );
}
