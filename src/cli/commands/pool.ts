// qosctl pools, calibrate.
import { Option, type Command } from 'commander';
import { ApiError, call, streamLines } from '../client';
import { action, corners, emit, figures, globals, positive, type Figures } from '../output';
import { printTable } from '../table';
import { humanBytes, humanCount, humanRate } from '../../util/human';
import { percent } from '../../util/percent';

interface PoolOut {
  name: string; backend: string; capacity: Figures; capacitySource: Record<string, string>; guaranteed: Figures; available: Figures;
  admissible: Figures; share: { promised: number; promisable: number; available: number }; headroom: number; volumes: number; provisionedBytes: number; allocatedBytes: number; freeBytes: number | null; overcommit: number | null;
  calibration: { method: string; finishedAt: string | null } | null;
}

interface MixOut { name: string; rates: Figures; predictedIops: number; measuredIops: number; errorPct: number }

/** A mixed workload's rates, and the cost model's prediction of its throughput against the measured one. */
function mixLine(m: MixOut): string {
  return `${figures(m.rates)}; predicted ${m.predictedIops} IOPS, measured ${m.measuredIops} (${m.errorPct >= 0 ? '+' : ''}${m.errorPct}%)`;
}

export function registerPoolCommands(program: Command): void {
  registerPoolsCommand(program);
  registerPoolCommand(program);
  registerCalibrateCommand(program);
}

function registerPoolsCommand(program: Command): void {
  program
    .command('pools')
    .description('show each pool: capacity, guaranteed, the share of the device promised, free to guarantee, volumes, space')
    .action(
      action(async function (this: Command) {
        const g = globals(this);
        const { pools } = await call<{ pools: PoolOut[] }>(g.socket, 'GET', '/v1/pools');
        const source = (p: PoolOut) => (p.calibration ? `${p.calibration.method} ${p.calibration.finishedAt}` : Object.keys(p.capacitySource).length ? 'config' : '-');
        emit(g, { pools }, (wide) =>
          wide
            ? printTable(
                ['POOL', 'BACKEND', 'CAPACITY', 'SOURCE', 'GUARANTEED', 'PROMISED', 'FREE TO GUARANTEE (EACH ALONE)', 'VOLUMES', 'PROVISIONED', 'USED', 'FREE', 'OVERCOMMIT'],
                pools.map((p) => [
                  p.name, p.backend, figures(p.capacity), source(p), figures(p.guaranteed), `${percent(p.share.promised)} of ${percent(p.share.promisable)}`, figures(p.available),
                  String(p.volumes), humanBytes(p.provisionedBytes), humanBytes(p.allocatedBytes), p.freeBytes === null ? '-' : humanBytes(p.freeBytes),
                  p.overcommit === null ? '-' : `${p.overcommit}×`,
                ]),
              )
            : printTable(
                ['POOL', 'BACKEND', 'CAPACITY (READ/WRITE)', 'PROMISED', 'VOLUMES', 'PROVISIONED', 'USED', 'FREE'],
                pools.map((p) => [
                  p.name, p.backend, corners(p.capacity), `${percent(p.share.promised)} of ${percent(p.share.promisable)}`,
                  String(p.volumes), humanBytes(p.provisionedBytes), humanBytes(p.allocatedBytes), p.freeBytes === null ? '-' : humanBytes(p.freeBytes),
                ]),
              ),
        );
      }),
    );
}

function registerPoolCommand(program: Command): void {
  program
    .command('pool')
    .description('set up a pool')
    .command('init <pool>')
    .description("build an lvm pool's volume group on its NVMe devices (refuses devices that hold data unless --force)")
    .option('--devices <list>', 'comma-separated devices, e.g. /dev/nvme0n1,/dev/nvme1n1 (default: the config\'s pools[].devices)')
    .option('--force', 'destroy whatever signature the devices hold')
    .action(
      action(async function (this: Command, pool: string, o: { devices?: string; force?: boolean }) {
        const g = globals(this);
        const body = { ...(o.devices && { devices: o.devices.split(',').map((d) => d.trim()).filter(Boolean) }), ...(o.force && { force: true }) };
        const p = await call<PoolOut>(g.socket, 'POST', `/v1/pools/${encodeURIComponent(pool)}/init`, body);
        emit(g, p, () => process.stdout.write(`pool ${p.name} is ready (${p.backend})\n`));
      }),
    );
}

function registerCalibrateCommand(program: Command): void {
  program
    .command('calibrate <pool>')
    .description("measure a pool's IOPS and bandwidth on a scratch volume and store them as its capacity")
    .option('--seconds <s>', 'seconds per phase (4 phases, then 2 mixed workloads)', (v) => {
      const n = Number(v);
      if (!(n >= 0.2 && n <= 120)) throw new Error('--seconds: must be a number from 0.2 to 120');
      return n;
    })
    .addOption(new Option('--method <m>', 'fio (if installed) or the built-in dd probe').choices(['auto', 'fio', 'probe']).default('auto'))
    .option('--scratch-size <q>', 'scratch volume size (default 1Gi)', positive('--scratch-size'))
    .action(
      action(async function (this: Command, pool: string, o: { seconds?: number; method: string; scratchSize?: number }) {
        const g = globals(this);
        const body = { method: o.method, ...(o.seconds !== undefined && { seconds: o.seconds }), ...(o.scratchSize !== undefined && { scratchSize: o.scratchSize }) };
        const lines: Record<string, unknown>[] = [];
        let failure: { code: string; message: string } | undefined;
        await streamLines(g.socket, `/v1/pools/${encodeURIComponent(pool)}/calibrate`, body, (l) => {
          lines.push(l);
          if (l.event === 'error') failure = l.error as typeof failure;
          if (g.output === 'json') return;
          // Progress goes to stderr so stdout stays the result.
          if (l.event === 'started') process.stderr.write(`calibrating pool ${pool} with ${String(l.method)}: 4 phases and 2 mixed workloads of ${String(l.secondsPerPhase)} s each\n`);
          if (l.event === 'mix') process.stderr.write(`  [mix ${String(l.index)}/${String(l.of)}] ${String(l.name)}: ${mixLine(l as unknown as MixOut)}\n`);
          if (l.event === 'phase') {
            const dim = String(l.dimension);
            const v = Number(l.value);
            process.stderr.write(`  [${String(l.index)}/${String(l.of)}] ${dim}: ${dim.endsWith('Bps') ? humanRate(v) : `${humanCount(v)} IOPS`}\n`);
          }
        });
        const done = lines.find((l) => l.event === 'done');
        if (failure) throw new ApiError(0, failure.code, failure.message);
        emit(g, done ?? { events: lines }, () => {
          process.stdout.write(`pool ${pool} capacity: ${figures((done?.capacity ?? {}) as Figures)}\n`);
          for (const m of (done?.mixes ?? []) as MixOut[]) process.stdout.write(`cost model on "${m.name}": ${mixLine(m)}\n`);
        });
      }),
    );
}
