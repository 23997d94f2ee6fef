// Rule repair: the cgroup rules made equal to what SQLite wants (rule-pass.ts finds and confirms),
// each repair counted and logged with what was wrong, then the leaf watches every attached pod
// needs on cgroup v1 (enforce/leaf-watcher.ts).
import type { Logger } from 'pino';
import type { Enforcer } from '../enforce/enforcer';
import { attachedPods, type AttachedPod } from '../enforce/enforcer';
import type { Metrics } from '../metrics/registry';
import type { TimeSlice } from '../util/time-slice';
import type { RepairJob } from './repair-job';
import { confirmRepairs, findRepairs, type Repair } from './rule-pass';

export interface RuleFindings {
  found: readonly Pick<Repair, 'dir' | 'device'>[];
  /** The attached pods to keep watched (undefined: the same as last time, nothing to do). */
  pods: readonly AttachedPod[] | undefined;
  /** The cgroups the pass checked, and of those the ones a watch vouched for. */
  cgroups: number;
  vouched: number;
}

export class RuleRepair implements RepairJob<RuleFindings, number> {
  constructor(private readonly o: { enforcer: Enforcer; metrics: Metrics; log: Logger }) {}

  async find(slice: TimeSlice): Promise<RuleFindings> {
    const parts = this.o.enforcer.repairParts();
    let found: Awaited<ReturnType<typeof findRepairs>>;
    try {
      found = await findRepairs(parts, slice);
    } catch (err) {
      this.o.metrics.enforcementErrors.inc({ reason: 'reconcile' });
      throw err;
    }
    const { repairs, cgroups, vouched } = found;
    const pods = parts.blkio.leavesNeedRules ? attachedPods((await parts.view.read(slice)).attachments) : undefined;
    return { found: repairs, pods, cgroups, vouched };
  }

  /** Returns the number of repairs written. */
  async confirm(findings: RuleFindings, slice: TimeSlice): Promise<number> {
    const parts = this.o.enforcer.repairParts();
    let repairs: Repair[];
    try {
      repairs = await confirmRepairs(parts, findings.found, slice);
    } catch (err) {
      this.o.metrics.enforcementErrors.inc({ reason: 'reconcile' });
      throw err;
    }
    for (const r of repairs) {
      if (slice.due()) await slice.yield();
      this.o.metrics.reconcileRepairs.inc({ kind: r.kind === 'stray' ? 'stray-rule' : 'cgroup-rule' });
      this.o.log.warn(
        { dir: r.dir, device: r.device, found: r.found, want: r.want },
        r.kind === 'stray' ? 'reconcile: cleared a rule that no attachment wants' : 'reconcile: cgroup rules differed from SQLite and were rewritten',
      );
    }
    if (repairs.length) this.o.metrics.ruleWrites.inc({ version: parts.blkio.version, reason: 'reconcile' }, repairs.length);
    if (parts.blkio.leavesNeedRules && findings.pods) await this.o.enforcer.watchPods(findings.pods, slice);
    else slice.end();
    return repairs.length;
  }
}
