// One prom-client registry per daemon instance (two in one test process must not collide), with
// every qosd family defined here so names and labels stay in one place. Families are prefixed
// qosd_ and use base units.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();

  readonly flexCalls = new Counter({
    name: 'qosd_flex_calls_total',
    help: 'FlexVolume driver calls handled by the daemon, by command and reply status.',
    labelNames: ['command', 'status'] as const,
    registers: [this.registry],
  });

  readonly flexDuration = new Histogram({
    name: 'qosd_flex_call_duration_seconds',
    help: 'Time the daemon spent on a FlexVolume call.',
    labelNames: ['command'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly ruleWrites = new Counter({
    name: 'qosd_cgroup_rule_writes_total',
    help: 'Writes to cgroup throttle files (blkio.throttle.* on v1, io.max on v2).',
    labelNames: ['version', 'reason'] as const,
    registers: [this.registry],
  });

  readonly leafDelay = new Histogram({
    name: 'qosd_cgroup_leaf_rules_delay_seconds',
    help: 'Time from a new container cgroup being reported by inotify to its rules being written.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: [this.registry],
  });

  readonly reconcileRepairs = new Counter({
    name: 'qosd_reconcile_repairs_total',
    help: 'Differences between SQLite and the kernel that the periodic pass repaired.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly volumes = new Gauge({ name: 'qosd_volumes', help: 'Volumes, by pool.', labelNames: ['pool'] as const, registers: [this.registry] });

  readonly attachments = new Gauge({ name: 'qosd_attachments', help: 'Volumes mounted for pods.', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'qosd_' });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
