// The per-volume families, rendered straight to the exposition format: a dozen series per attached
// volume, where prom-client's label hashing and rendering cost an order of magnitude more per
// scrape (bench/scrape.js compares them; bench/results has the figures). Label values need no escaping: volume
// and pool names are [a-z0-9._-], pod uids hex and dashes, devices MAJ:MIN, directions fixed words.
import type { Figures, LatencyTargets } from '../model/qos';
import type { AttainmentEntry } from '../model/attainment';
import type { TimeSlice } from '../util/time-slice';

export interface IoSample {
  podUid: string;
  readOps: number;
  writeOps: number;
  readBytes: number;
  writeBytes: number;
}

/**
 * The volume's own device's counters (diskstats): every pod's IO on it, and the time it took. They
 * count from the device's creation, not the volume's (a loop device keeps its counters across
 * files), so each series carries the device: a volume given another device starts a new series
 * instead of a jump in the old one.
 */
export interface DeviceIoSample {
  /** MAJ:MIN. */
  device: string;
  readOps: number;
  writeOps: number;
  /** Completed IOs' time from issue to completion, summed, in seconds. */
  readSeconds: number;
  writeSeconds: number;
}

export interface VolumeSample {
  name: string;
  pool: string;
  min: Figures;
  max: Figures;
  /** The limits written now (max tightened by the controller). */
  effective: Figures;
  sizeBytes: number;
  allocatedBytes: number | undefined;
  fsUsedBytes: number | undefined;
  /** The share of its pool's device time the volume's IO took at the controller's last look. */
  deviceShare: number | undefined;
  io: IoSample[];
  /** Its device's counters, while it is attached; undefined: not attached, or its device not found. */
  device: DeviceIoSample | undefined;
  /** Its latency targets (seconds), if any. */
  latencyTarget: LatencyTargets | undefined;
  /** How each of its guarantees fared, as far as the controller has seen them in force. */
  attainment: readonly AttainmentEntry[];
}

type Family = { name: string; help: string; type: 'gauge' | 'counter'; lines: (v: VolumeSample, out: string[]) => void };

const dims = (f: Figures, iops: boolean) =>
  iops
    ? ([['read', f.readIops], ['write', f.writeIops]] as const)
    : ([['read', f.readBps], ['write', f.writeBps]] as const);

function figureFamily(name: string, help: string, side: 'min' | 'max' | 'effective', iops: boolean): Family {
  return {
    name, help, type: 'gauge',
    lines: (v, out) => {
      for (const [dir, val] of dims(v[side], iops)) if (val !== undefined) out.push(`${name}{volume="${v.name}",pool="${v.pool}",direction="${dir}"} ${val}`);
    },
  };
}

function ioFamily(name: string, help: string, ops: boolean): Family {
  return {
    name, help, type: 'counter',
    lines: (v, out) => {
      for (const s of v.io) {
        const labels = `volume="${v.name}",pool="${v.pool}",pod_uid="${s.podUid}"`;
        out.push(`${name}{${labels},direction="read"} ${ops ? s.readOps : s.readBytes}`);
        out.push(`${name}{${labels},direction="write"} ${ops ? s.writeOps : s.writeBytes}`);
      }
    },
  };
}

function deviceFamily(name: string, help: string, read: (d: DeviceIoSample) => number, write: (d: DeviceIoSample) => number): Family {
  return {
    name, help, type: 'counter',
    lines: (v, out) => {
      if (!v.device) return;
      const labels = `volume="${v.name}",pool="${v.pool}",device="${v.device.device}"`;
      out.push(`${name}{${labels},direction="read"} ${read(v.device)}`);
      out.push(`${name}{${labels},direction="write"} ${write(v.device)}`);
    },
  };
}

function attainmentFamily(name: string, help: string, type: Family['type'], pick: (e: AttainmentEntry) => number): Family {
  return {
    name, help, type,
    lines: (v, out) => {
      for (const e of v.attainment) {
        const value = pick(e); // a latency measured at 0 ms delivers a target without bound
        out.push(`${name}{volume="${v.name}",pool="${v.pool}",direction="${e.direction}",guarantee="${e.guarantee}"} ${Number.isFinite(value) ? value : '+Inf'}`);
      }
    },
  };
}

function sizeFamily(name: string, help: string, pick: (v: VolumeSample) => number | undefined): Family {
  return {
    name, help, type: 'gauge',
    lines: (v, out) => {
      const val = pick(v);
      if (val !== undefined) out.push(`${name}{volume="${v.name}",pool="${v.pool}"} ${val}`);
    },
  };
}

export const VOLUME_FAMILIES: Family[] = [
  figureFamily('qosd_volume_guaranteed_iops', 'Guaranteed (admitted) IO operations per second of a volume.', 'min', true),
  figureFamily('qosd_volume_guaranteed_bytes_per_second', 'Guaranteed (admitted) bytes per second of a volume.', 'min', false),
  figureFamily('qosd_volume_limit_iops', 'IO operations per second a volume is limited to.', 'max', true),
  figureFamily('qosd_volume_limit_bytes_per_second', 'Bytes per second a volume is limited to.', 'max', false),
  figureFamily('qosd_volume_effective_limit_iops', 'IO operations per second written for a volume now: its limit, tightened by the controller to protect a guarantee.', 'effective', true),
  figureFamily('qosd_volume_effective_limit_bytes_per_second', 'Bytes per second written for a volume now: its limit, tightened by the controller to protect a guarantee.', 'effective', false),
  ioFamily('qosd_volume_io_operations_total', 'IO operations done on a volume by a pod (kernel cgroup stats).', true),
  ioFamily('qosd_volume_io_bytes_total', 'Bytes read or written on a volume by a pod (kernel cgroup stats).', false),
  deviceFamily('qosd_volume_device_io_operations_total', "IO operations completed on a volume's own device, every pod's together (diskstats).", (d) => d.readOps, (d) => d.writeOps),
  deviceFamily('qosd_volume_device_io_time_seconds_total', "Time the IO operations completed on a volume's device took from issue to completion, summed (diskstats); over a window, divided by the operations' increase, the mean completion latency.", (d) => d.readSeconds, (d) => d.writeSeconds),
  {
    name: 'qosd_volume_latency_target_seconds', help: "A volume's latency target: the mean completion latency its IO in a direction may take.", type: 'gauge',
    lines: (v, out) => {
      for (const dir of ['read', 'write'] as const) {
        const t = v.latencyTarget?.[dir];
        if (t !== undefined) out.push(`qosd_volume_latency_target_seconds{volume="${v.name}",pool="${v.pool}",direction="${dir}"} ${t}`);
      }
    },
  },
  attainmentFamily('qosd_volume_guarantee_seconds_total', "Seconds a volume's guarantee (rate or latency, per direction) was in force: the volume doing IO in that direction (controller ticks).", 'counter', (e) => e.seconds),
  attainmentFamily('qosd_volume_guarantee_short_seconds_total', "Of the seconds a guarantee was in force, those it was short: a rate under 90% of its minimum while the volume wanted more, or a latency over its target by more than 1/0.9.", 'counter', (e) => e.shortSeconds),
  attainmentFamily('qosd_volume_guarantee_delivered_ratio', 'The part of a guarantee delivered at the last controller tick it was in force: rate over minimum, or latency target over measured latency.', 'gauge', (e) => e.delivered),
  sizeFamily('qosd_volume_size_bytes', 'Provisioned size of a volume.', (v) => v.sizeBytes),
  sizeFamily('qosd_volume_allocated_bytes', 'Bytes a volume takes in its pool (blocks of its sparse backing file).', (v) => v.allocatedBytes),
  sizeFamily('qosd_volume_filesystem_used_bytes', 'Bytes used in the filesystem of a mounted volume (statfs).', (v) => v.fsUsedBytes),
  sizeFamily('qosd_volume_device_share', "Share of its pool's device time a volume's IO took at the controller's last look (cost model; measured in pools with guarantees).", (v) => v.deviceShare),
];

/** A family's HELP and TYPE lines, to which its sample lines are added. */
export function familyHeader(f: Family): string[] {
  return [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`];
}

/** Lines per piece of the exposition (~100 bytes each): a piece is joined and encoded without a pause. */
const PIECE_LINES = 1000;

/**
 * Every family's lines for `samples`, in encoded pieces of at most PIECE_LINES lines, each family
 * ending in a blank line, built giving the loop back: on a large node one family joined into one
 * string, or the whole text encoded at once for the socket, would hold the loop for milliseconds.
 */
export async function* familyPieces(samples: readonly VolumeSample[], slice: TimeSlice): AsyncIterable<Buffer> {
  for (const f of VOLUME_FAMILIES) {
    let lines = familyHeader(f);
    for (const v of samples) {
      f.lines(v, lines);
      if (lines.length >= PIECE_LINES) {
        yield Buffer.from(`${lines.join('\n')}\n`);
        lines = [];
      }
      if (slice.due()) await slice.yield();
    }
    if (slice.due()) await slice.yield();
    yield Buffer.from(`${lines.join('\n')}\n\n`);
  }
  slice.end();
}
