// Start-up recovery, before the daemon serves: rebuild the picture from SQLite, the loop devices,
// mountinfo and the cgroup trees, then finish or roll back whatever a stopped daemon left half
// done. Creates with storage are rolled forward (never formatted twice), creates without are
// rolled back; deletes and detaches are finished; attaches that never answered kubelet are taken
// apart (kubelet retries them); loop devices lost to a reboot are attached again; attachments of
// pods that vanished meanwhile are closed, those whose pod lives are mounted again where their
// mount was lost; and one full reconcile pass puts every rule back.
import type { Logger } from 'pino';
import type { Store } from '../store/store';
import type { VolumePool } from '../pools/pool';
import type { VolumeService } from '../service/volumes';
import type { AttachmentService } from '../service/attachments';
import type { Calibrator } from '../service/calibrate';
import type { Metrics } from '../metrics/registry';
import { TimeSlice } from '../util/time-slice';
import { repairInThread } from './repair-job';
import type { RuleRepair } from './rule-repair';
import type { MountRepair } from './mount-repair';
import { canonicalPath } from '../service/targets';
import { now } from '../store/store';

export interface RecoveryContext {
  store: Store;
  pools: Map<string, VolumePool>;
  volumes: VolumeService;
  attachments: AttachmentService;
  ruleRepair: RuleRepair;
  mountRepair: MountRepair;
  calibrator: Calibrator;
  metrics: Metrics;
  log: Logger;
}

export interface RecoveryReport {
  volumes: number;
  createsRecovered: number;
  deletesFinished: number;
  attachmentsRecovered: number;
  loopsReattached: number;
  vanishedClosed: number;
  mountsRepaired: number;
  ruleRepairs: number;
  ms: number;
}

export async function recoverAtStart(c: RecoveryContext): Promise<RecoveryReport> {
  const started = Date.now();
  const report: RecoveryReport = { volumes: 0, createsRecovered: 0, deletesFinished: 0, attachmentsRecovered: 0, loopsReattached: 0, vanishedClosed: 0, mountsRepaired: 0, ruleRepairs: 0, ms: 0 };
  await c.calibrator.cleanUpInterrupted();
  // Targets are stored and compared canonically (symlinks resolved): rows from before are made so.
  for (const att of c.store.attachments.list()) {
    const real = canonicalPath(att.target);
    if (real !== att.target && !c.store.attachments.byTarget(real)) c.store.attachments.update(att.id, { target: real }, now());
  }

  const all = c.store.volumes.list();
  report.volumes = all.length;
  for (const v of all) {
    try {
      if (v.state === 'creating') {
        await c.volumes.recoverCreate(v);
        report.createsRecovered++;
      } else if (v.state === 'deleting') {
        await c.volumes.recoverDelete(v);
        report.deletesFinished++;
      }
    } catch (err) {
      c.log.error({ volume: v.name, state: v.state, err: (err as Error).message }, 'recovery: could not finish an interrupted operation; it stays as it is');
    }
  }

  // Devices: one look per pool; a volume whose loop device is gone (a reboot) gets a new one.
  for (const [name, pool] of c.pools) {
    const ready = c.store.volumes.list().filter((v) => v.pool === name && v.state === 'ready');
    const devices = await pool.openAll(ready);
    for (const v of ready) {
      const dev = devices.get(v.name);
      if (!dev) {
        c.log.error({ volume: v.name, backing: v.backing }, 'recovery: the backing storage of a volume is missing');
        continue;
      }
      if (await c.volumes.refreshDevice(v.name, dev)) report.loopsReattached++;
    }
  }

  for (const att of c.store.attachments.list()) {
    if (att.state === 'attached') continue;
    try {
      await c.attachments.recover(att);
      report.attachmentsRecovered++;
    } catch (err) {
      c.log.error({ target: att.target, state: att.state, err: (err as Error).message }, 'recovery: could not finish an interrupted attach or detach');
    }
  }
  // The periodic repair jobs, found and confirmed here in-thread.
  const mounts = await repairInThread(c.mountRepair, new TimeSlice());
  report.vanishedClosed = mounts.closed;
  report.mountsRepaired = mounts.mounts.remounted;
  const timer = c.metrics.reconcileDuration.startTimer();
  try {
    report.ruleRepairs = await repairInThread(c.ruleRepair, new TimeSlice());
  } finally {
    timer();
  }
  report.ms = Date.now() - started;
  return report;
}
