// Measures what a pool can deliver: a short direct-IO workload against a scratch volume carved
// from the pool, one phase per dimension, with fio when it is installed (queue depth 32, libaio)
// and otherwise a built-in probe of parallel `dd iflag/oflag=direct` workers (any node has dd);
// then two mixed workloads, to record how well the device cost model built from the four corners
// predicts them.
// Writes run first so that reads hit written blocks, not the holes of a sparse file. The result is
// stored with its method and time; the scratch volume is always removed.
import type { Logger } from 'pino';
import type { VolumePool } from '../pools/pool';
import type { Store } from '../store/store';
import type { Source } from '../store/attachments';
import { now } from '../store/store';
import { run, which } from '../host/exec';
import type { Dimension, Figures } from '../model/qos';
import { deviceCost, mixCheck, type MixCheck } from '../model/device-cost';
import { QosdError } from '../model/errors';
import { lockKey, type KeyedLock } from './locks';

export type CalibrationMethod = 'fio' | 'probe';

export interface CalibrateOptions {
  /** Seconds per phase (four corner phases, then two mixed workloads). */
  seconds: number;
  method: 'auto' | CalibrationMethod;
  scratchBytes: number;
}

export type CalibrationProgress =
  | { event: 'started'; pool: string; method: CalibrationMethod; phases: Dimension[]; mixes: string[]; secondsPerPhase: number }
  | { event: 'phase'; dimension: Dimension; index: number; of: number; value: number }
  | ({ event: 'mix'; index: number; of: number } & MixCheck)
  | { event: 'done'; pool: string; method: CalibrationMethod; capacity: Figures; mixes: MixCheck[]; finishedAt: string };

/** Write phases first: reads must find written blocks. */
const PHASES: { dim: Dimension; write: boolean; blockBytes: number }[] = [
  { dim: 'writeBps', write: true, blockBytes: 1 << 20 },
  { dim: 'writeIops', write: true, blockBytes: 4096 },
  { dim: 'readIops', write: false, blockBytes: 4096 },
  { dim: 'readBps', write: false, blockBytes: 1 << 20 },
];

export async function fioInstalled(): Promise<boolean> {
  return which('fio') !== undefined;
}

/** One stream of IO: direction, pattern and size (a phase is one stream, a mix several at once). */
interface Stream {
  write: boolean;
  random: boolean;
  blockBytes: number;
  /** fio only: a random stream that mixes reads and writes, this percentage of them reads. */
  readPercent?: number;
}

/**
 * The mixed workloads a calibration runs after the four corners, each flat out on the device, to
 * see how well the cost model (model/device-cost.ts) built from the corners predicts a mix: reads
 * against writes, and small IOs against large. The built-in probe cannot mix within one stream,
 * so it runs separate reader and writer streams side by side.
 */
const MIXES: { name: string; fio: Stream[]; probe: Stream[] }[] = [
  {
    name: 'random 4k, 70% reads 30% writes',
    fio: [{ write: false, random: true, blockBytes: 4096, readPercent: 70 }],
    probe: [{ write: false, random: true, blockBytes: 4096 }, { write: false, random: true, blockBytes: 4096 }, { write: true, random: true, blockBytes: 4096 }],
  },
  {
    name: 'random 4k reads beside sequential 128k writes',
    fio: [{ write: false, random: true, blockBytes: 4096 }, { write: true, random: false, blockBytes: 131072 }],
    probe: [{ write: false, random: true, blockBytes: 4096 }, { write: false, random: true, blockBytes: 4096 }, { write: true, random: false, blockBytes: 131072 }],
  },
];

const asStream = (p: (typeof PHASES)[number]): Stream => ({ write: p.write, random: p.blockBytes === 4096, blockBytes: p.blockBytes });

/** Measured rates of some streams run together with fio (queue depth 32 in all, libaio). */
async function fioRun(device: string, streams: Stream[], seconds: number, sizeBytes: number): Promise<Figures> {
  const depth = Math.max(1, Math.floor(32 / streams.length));
  const args = [`--filename=${device}`, '--direct=1', '--ioengine=libaio', `--size=${sizeBytes}`, '--time_based', `--runtime=${Math.max(1, Math.round(seconds))}`, '--output-format=json'];
  streams.forEach((s, i) => {
    const rw = s.readPercent !== undefined ? 'randrw' : s.random ? (s.write ? 'randwrite' : 'randread') : s.write ? 'write' : 'read';
    args.push(`--name=qosd-calibrate-${i}`, `--rw=${rw}`, `--bs=${s.blockBytes}`, `--iodepth=${depth}`);
    if (s.readPercent !== undefined) args.push(`--rwmixread=${s.readPercent}`);
  });
  const { stdout } = await run('fio', args, { timeoutMs: seconds * 1000 + 60_000 });
  const jobs = (JSON.parse(stdout) as { jobs: { read: { iops: number; bw_bytes: number }; write: { iops: number; bw_bytes: number } }[] }).jobs;
  const sum = (f: (j: (typeof jobs)[number]) => number) => jobs.reduce((t, j) => t + f(j), 0);
  return { readIops: sum((j) => j.read.iops), writeIops: sum((j) => j.write.iops), readBps: sum((j) => j.read.bw_bytes), writeBps: sum((j) => j.write.bw_bytes) };
}

/** Measured rates of dd workers at spread offsets, each looping short direct-IO runs until time is up. */
async function probeRun(device: string, streams: Stream[], seconds: number, sizeBytes: number): Promise<Figures> {
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
  const done = { read: { ops: 0, bytes: 0 }, write: { ops: 0, bytes: 0 } };
  await Promise.all(
    streams.map(async (s, w) => {
      const blocks = Math.floor(sizeBytes / s.blockBytes);
      const perRun = s.blockBytes === 4096 ? 1024 : Math.max(1, Math.floor((32 << 20) / s.blockBytes)); // 4 MiB or 32 MiB per dd run
      let offset = Math.floor((blocks / streams.length) * w);
      while (elapsed() < seconds) {
        if (offset + perRun > blocks) offset = 0;
        const args = s.write
          ? ['if=/dev/zero', `of=${device}`, 'oflag=direct', `seek=${offset}`]
          : [`if=${device}`, 'of=/dev/null', 'iflag=direct', `skip=${offset}`];
        await run('dd', [...args, `bs=${s.blockBytes}`, `count=${perRun}`, 'status=none'], { timeoutMs: 60_000 });
        const side = s.write ? done.write : done.read;
        side.ops += perRun;
        side.bytes += perRun * s.blockBytes;
        offset += perRun;
      }
    }),
  );
  const t = elapsed();
  return { readIops: done.read.ops / t, writeIops: done.write.ops / t, readBps: done.read.bytes / t, writeBps: done.write.bytes / t };
}

export class Calibrator {
  constructor(
    private readonly store: Store,
    private readonly pools: Map<string, VolumePool>,
    private readonly locks: KeyedLock,
    private readonly log: Logger,
  ) {}

  /** Runs a calibration, reporting progress through `report`; resolves to the stored figures. */
  async calibrate(poolName: string, o: CalibrateOptions, source: Source, report: (p: CalibrationProgress) => void): Promise<Figures> {
    const pool = this.pools.get(poolName);
    if (!pool) throw new QosdError('NotFound', `pool ${poolName} not found`);
    const method: CalibrationMethod = o.method === 'auto' ? ((await fioInstalled()) ? 'fio' : 'probe') : o.method;
    if (method === 'fio' && !(await fioInstalled())) {
      throw new QosdError('FailedPrecondition', 'fio is not installed on this node (apt-get install fio), or use method "probe"');
    }
    return this.locks.run([lockKey.calibration(poolName)], async () => {
      const scratch = `qosd-calibrate-${Date.now().toString(36)}`;
      // The running row is the intent: if the daemon stops mid-way, the next start removes the scratch volume.
      const cal = this.store.calibrations.start(poolName, method, scratch, now());
      report({ event: 'started', pool: poolName, method, phases: PHASES.map((p) => p.dim), mixes: MIXES.map((m) => m.name), secondsPerPhase: o.seconds });
      try {
        const dev = await pool.create(scratch, o.scratchBytes, { spread: true });
        const measure = (streams: Stream[]) => (method === 'fio' ? fioRun : probeRun)(dev.device, streams, o.seconds, o.scratchBytes);
        const figures: Figures = {};
        for (const [i, p] of PHASES.entries()) {
          // 4 identical dd workers for the probe, one fio job at queue depth 32
          const rates = await measure(method === 'fio' ? [asStream(p)] : Array.from({ length: 4 }, () => asStream(p)));
          const value = Math.floor(rates[p.dim] ?? 0);
          if (value < 1) throw new Error(`${p.dim} measured as ${value}; is the device working?`);
          figures[p.dim] = value;
          report({ event: 'phase', dimension: p.dim, index: i + 1, of: PHASES.length, value });
        }
        const model = deviceCost(figures);
        const mixes: MixCheck[] = [];
        for (const [i, m] of MIXES.entries()) {
          const rates = await measure(method === 'fio' ? m.fio : m.probe);
          const check = mixCheck(m.name, model, Object.fromEntries(Object.entries(rates).map(([k, v]) => [k, Math.round(v)])) as Figures);
          mixes.push(check);
          report({ event: 'mix', index: i + 1, of: MIXES.length, ...check });
        }
        const done = this.store.tx(() => {
          const d = this.store.calibrations.finish(cal.id, method, figures, now(), mixes);
          this.store.events.add({ time: now(), volume: null, kind: 'pool-calibrated', source, detail: { pool: poolName, method, capacity: figures, mixes } });
          return d;
        });
        report({ event: 'done', pool: poolName, method, capacity: figures, mixes, finishedAt: done.finishedAt! });
        return figures;
      } catch (err) {
        this.store.calibrations.fail(cal.id, (err as Error).message, now());
        throw err;
      } finally {
        await pool.remove({ name: scratch, backing: null }).catch((err: Error) =>
          this.log.error({ pool: poolName, scratch, err: err.message }, 'could not remove the calibration scratch volume'),
        );
      }
    });
  }

  /** Removes scratch volumes of calibrations a stopped daemon left running. */
  async cleanUpInterrupted(): Promise<void> {
    for (const cal of this.store.calibrations.running()) {
      await this.pools.get(cal.pool)?.remove({ name: cal.scratch, backing: null });
      this.store.calibrations.fail(cal.id, 'interrupted: the daemon stopped during the calibration', now());
    }
  }
}
