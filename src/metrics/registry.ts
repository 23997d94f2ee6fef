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

  readonly csiCalls = new Counter({
    name: 'qosd_csi_calls_total',
    help: 'CSI calls served (Identity, Controller, Node and kubelet registration), by method and gRPC status code.',
    labelNames: ['method', 'code'] as const,
    registers: [this.registry],
  });

  readonly csiDuration = new Histogram({
    name: 'qosd_csi_call_duration_seconds',
    help: 'Time the daemon spent on a CSI call.',
    labelNames: ['method'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly csiRegistered = new Gauge({
    name: 'qosd_csi_registered',
    help: "1 when kubelet's last registration status for the CSI driver nvme.qosd.io said registered; 0 when it refused or has not called.",
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

  readonly deviceMismatches = new Counter({
    name: 'qosd_device_mismatches_total',
    help: "Times a volume's recorded device turned out not to be its own (found: other, another's device now; gone, no device): no rule was written or cleared for it, and its device was found again.",
    labelNames: ['found'] as const,
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

  // The per-volume families (qosd_volume_*) are rendered by volume-families.ts.

  // Per pool and dimension: capacity, promised away, still promisable.
  readonly poolCapacityIops = this.poolGauge('qosd_pool_capacity_iops', 'IO operations per second a pool can deliver (config or calibration).');
  readonly poolCapacityBps = this.poolGauge('qosd_pool_capacity_bytes_per_second', 'Bytes per second a pool can deliver (config or calibration).');
  readonly poolGuaranteedIops = this.poolGauge('qosd_pool_guaranteed_iops', 'Sum of the IOPS guarantees of the volumes in a pool.');
  readonly poolGuaranteedBps = this.poolGauge('qosd_pool_guaranteed_bytes_per_second', 'Sum of the bandwidth guarantees of the volumes in a pool.');
  readonly poolAvailableIops = this.poolGauge('qosd_pool_available_iops', 'IOPS a new guarantee of IOPS alone could still get in a pool (the device budget left, at this corner).');
  readonly poolPromisedShare = new Gauge({ name: 'qosd_pool_promised_share', help: "Share of a pool's device time its guarantees take together (0-1; above qosd_pool_promisable_share: over-promised).", labelNames: ['pool'] as const, registers: [this.registry] });
  readonly poolPromisableShare = new Gauge({ name: 'qosd_pool_promisable_share', help: "Share of a pool's device time that may be promised to guarantees (1 - headroom, lower while the pool holds a latency target: 1 - S/T).", labelNames: ['pool'] as const, registers: [this.registry] });
  readonly poolUtilisation = new Gauge({ name: 'qosd_pool_utilisation', help: "Share of a pool's device time its volumes' IO took at the controller's last look (the cost model; 1 = the whole device). Measured only for pools with guarantees or controller limits.", labelNames: ['pool'] as const, registers: [this.registry] });
  readonly poolAvailableBps = this.poolGauge('qosd_pool_available_bytes_per_second', 'Bandwidth a new guarantee of bandwidth alone could still get in a pool (the device budget left, at this corner).');

  readonly apiDuration = new Histogram({
    name: 'qosd_api_request_duration_seconds',
    help: 'API requests over the unix socket, by route and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [this.registry],
  });

  readonly reconcileDuration = new Histogram({
    name: 'qosd_reconcile_pass_duration_seconds',
    help: 'Duration of a full reconcile pass over every attachment.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly enforcementErrors = new Counter({
    name: 'qosd_enforcement_errors_total',
    help: 'Failures to write or clear cgroup rules (attach, new container, reconcile, QoS change, detach).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly controllerAdjustments = new Counter({
    name: 'qosd_controller_adjustments_total',
    help: 'Limit changes made by the work-conserving controller, down (protecting a guarantee) or up (giving capacity back).',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });

  readonly mountRepairs = new Counter({
    name: 'qosd_mount_repairs_total',
    help: 'Attached volumes found not mounted at their target while their pod lives, mounted again (remounted) or not (failed).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly attachmentsNotMounted = new Gauge({
    name: 'qosd_attachments_not_mounted',
    help: 'Attached volumes that the last check found not mounted at their target with their own device, after repairs.',
    registers: [this.registry],
  });

  readonly scrapeDuration = new Gauge({
    name: 'qosd_scrape_collect_seconds',
    help: 'Time the last scrape spent reading kernel stats before rendering.',
    registers: [this.registry],
  });

  private poolGauge(name: string, help: string) {
    return new Gauge({ name, help, labelNames: ['pool', 'direction'] as const, registers: [this.registry] });
  }

  /**
   * `processMetrics: false` leaves out the process's default metrics (CPU, heap, event loop lag):
   * for a registry that is never exported, in another thread. Their event loop monitor samples
   * continually, and cost CPU in every thread even when the daemon is idle.
   */
  constructor(o: { processMetrics?: boolean } = {}) {
    if (o.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'qosd_' });
    // prom-client exports these gauges with a "_total" suffix, which promtool (rightly) rejects
    // as counter-like; the same figures are exported without the suffix.
    for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
      this.registry.removeSingleMetric(`qosd_nodejs_${name}`);
    }
    // Counters a dashboard and the alerts read exist from the start, at zero, so "no errors"
    // is a 0 rather than an absent series.
    for (const reason of ['attach', 'new-cgroup', 'reconcile', 'qos-change', 'detach']) this.enforcementErrors.inc({ reason }, 0);
    for (const kind of ['cgroup-rule', 'stray-rule']) this.reconcileRepairs.inc({ kind }, 0);
    for (const direction of ['down', 'up']) this.controllerAdjustments.inc({ direction }, 0);
    for (const outcome of ['remounted', 'failed']) this.mountRepairs.inc({ outcome }, 0);
  }

  /**
   * The exposition, rendered one metric at a time with a turn of the event loop between them
   * (registry.metrics() renders them all in one turn, which with a thousand volumes, some 10^4
   * series, held API requests up for tens of milliseconds), then `extra`'s pieces; each piece is
   * encoded as it is made, so that writing the whole to a socket is never one 10 MB encode.
   */
  async pieces(extra: () => AsyncIterable<Buffer>, pause: () => Promise<void> = () => new Promise<void>((r) => setImmediate(r))): Promise<Buffer[]> {
    const parts: Buffer[] = [];
    for (const metric of this.registry.getMetricsAsArray()) {
      parts.push(Buffer.from(`${await this.registry.getSingleMetricAsString(metric.name)}\n\n`));
      await pause();
    }
    for await (const piece of extra()) parts.push(piece);
    return parts;
  }

  /** The exposition as one text (for small registries and tests). */
  async text(extra: () => AsyncIterable<Buffer>, pause?: () => Promise<void>): Promise<string> {
    return Buffer.concat(await this.pieces(extra, pause)).toString();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
