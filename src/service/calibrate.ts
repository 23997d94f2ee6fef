// Measures what a pool can deliver: a short direct-IO workload against a scratch volume carved
// from the pool, one phase per dimension, with fio when it is installed (queue depth 32, libaio)
// and otherwise a built-in probe of parallel `dd iflag/oflag=direct` workers (any node has dd).
// Writes run first so that reads hit written blocks, not the holes of a sparse file. The result is
// stored with its method and time; the scratch volume is always removed.
import type { Logger } from 'pino';
import type { VolumePool } from '../pools/pool';
import type { Store } from '../store/store';
import type { Source } from '../store/attachments';
import { now } from '../store/store';
import { run, which } from '../host/exec';
import type { Dimension, Figures } from '../model/qos';
import { QosdError } from '../model/errors';
import { lockKey, type KeyedLock } from './locks';

export type CalibrationMethod = 'fio' | 'probe';

export interface CalibrateOptions {
  /** Seconds per phase (four phases). */
  seconds: number;
  method: 'auto' | CalibrationMethod;
  scratchBytes: number;
}

export type CalibrationProgress =
  | { event: 'started'; pool: string; method: CalibrationMethod; phases: Dimension[]; secondsPerPhase: number }
  | { event: 'phase'; dimension: Dimension; index: number; of: number; value: number }
  | { event: 'done'; pool: string; method: CalibrationMethod; capacity: Figures; finishedAt: string };

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

async function fioPhase(device: string, p: (typeof PHASES)[number], seconds: number, sizeBytes: number): Promise<number> {
  const rw = p.blockBytes === 4096 ? (p.write ? 'randwrite' : 'randread') : p.write ? 'write' : 'read';
  const { stdout } = await run(
    'fio',
    [
      '--name=qosd-calibrate', `--filename=${device}`, '--direct=1', '--ioengine=libaio', '--iodepth=32',
      `--rw=${rw}`, `--bs=${p.blockBytes}`, `--size=${sizeBytes}`, '--time_based', `--runtime=${Math.max(1, Math.round(seconds))}`,
      '--output-format=json',
    ],
    { timeoutMs: seconds * 1000 + 60_000 },
  );
  const job = (JSON.parse(stdout) as { jobs: { read: { iops: number; bw_bytes: number }; write: { iops: number; bw_bytes: number } }[] }).jobs[0]!;
  const side = p.write ? job.write : job.read;
  return p.dim.endsWith('Iops') ? side.iops : side.bw_bytes;
}

/** Parallel dd workers at spread offsets, each looping short direct-IO runs until time is up. */
async function probePhase(device: string, p: (typeof PHASES)[number], seconds: number, sizeBytes: number): Promise<number> {
  const workers = 4;
  const blocks = Math.floor(sizeBytes / p.blockBytes);
  const perRun = p.blockBytes === 4096 ? 1024 : 32; // 4 MiB or 32 MiB per dd run
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
  let ops = 0;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      let offset = Math.floor((blocks / workers) * w);
      while (elapsed() < seconds) {
        if (offset + perRun > blocks) offset = 0;
        const args = p.write
          ? ['if=/dev/zero', `of=${device}`, 'oflag=direct', `seek=${offset}`]
          : [`if=${device}`, 'of=/dev/null', 'iflag=direct', `skip=${offset}`];
        await run('dd', [...args, `bs=${p.blockBytes}`, `count=${perRun}`, 'status=none'], { timeoutMs: 60_000 });
        ops += perRun;
        offset += perRun;
      }
    }),
  );
  const rate = ops / elapsed();
  return p.dim.endsWith('Iops') ? rate : rate * p.blockBytes;
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
      report({ event: 'started', pool: poolName, method, phases: PHASES.map((p) => p.dim), secondsPerPhase: o.seconds });
      try {
        const dev = await pool.create(scratch, o.scratchBytes, { spread: true });
        const figures: Figures = {};
        for (const [i, p] of PHASES.entries()) {
          const value = Math.floor(
            method === 'fio' ? await fioPhase(dev.device, p, o.seconds, o.scratchBytes) : await probePhase(dev.device, p, o.seconds, o.scratchBytes),
          );
          if (value < 1) throw new Error(`${p.dim} measured as ${value}; is the device working?`);
          figures[p.dim] = value;
          report({ event: 'phase', dimension: p.dim, index: i + 1, of: PHASES.length, value });
        }
        const done = this.store.tx(() => {
          const d = this.store.calibrations.finish(cal.id, method, figures, now());
          this.store.events.add({ time: now(), volume: null, kind: 'pool-calibrated', source, detail: { pool: poolName, method, capacity: figures } });
          return d;
        });
        report({ event: 'done', pool: poolName, method, capacity: figures, finishedAt: done.finishedAt! });
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
