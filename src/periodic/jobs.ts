// The periodic jobs as the daemon's thread runs them: each job's finding is asked of the worker
// thread (worker.ts), and what it found is confirmed and written here, where the API's writes,
// the locks and the store's one writer are. The timers live here too: the reconcile pass and the
// sweeps every reconcile interval, the controller every controller interval, each waiting for its
// own previous run to end.
import type { AttainmentSummary } from '../model/attainment';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Store } from '../store/store';
import type { Enforcer } from '../enforce/enforcer';
import type { RuleRepair } from '../reconcile/rule-repair';
import type { MountRepair } from '../reconcile/mount-repair';
import { applyTick, type ControlledLimits } from '../controller/controller';
import type { Metrics } from '../metrics/registry';
import type { ScrapeReading } from '../scrape/collect';
import { TimeSlice } from '../util/time-slice';
import { newsParts } from '../enforce/rule-watch';
import type { FromWorker, HeadAnswer, JobName, JobResults, ScrapeFindings, ToWorker, WorkerEvent, WorkerSetup } from './protocol';

/** How often the event log's retention runs. */
const RETENTION_EVERY_MS = 3_600_000;

/** Cgroups per message of the leaf watches' news (1,000 paths: ~0.2 ms to copy). */
const NEWS_PART = 1000;

export interface PeriodicJobsOptions {
  setup: WorkerSetup;
  store: Store;
  enforcer: Enforcer;
  /** The repair jobs whose findings the worker makes and this thread confirms. */
  ruleRepair: Pick<RuleRepair, 'confirm'>;
  mountRepair: Pick<MountRepair, 'confirm'>;
  /** The controller's limits as the daemon's thread writes them (undefined: the controller is off). */
  controlled: ControlledLimits | undefined;
  metrics: Metrics;
  log: Logger;
  reconcileIntervalMs: number;
  controllerIntervalMs: number;
  /** The registry's part of a scrape the worker's metrics listener serves (MetricsCollector.head). */
  head?: (reading: Omit<ScrapeFindings, 'text'>) => Promise<Buffer[]>;
  /** The event log's retention, run on this thread at start and every hour (store/event-retention.ts). */
  pruneEvents?: () => Promise<number>;
  /** The worker's script (default: worker.js beside this file, as built). */
  workerFile?: string;
}

export class PeriodicJobs {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  private listening: { resolve: () => void; reject: (err: Error) => void } | undefined;
  /** What the last pass checked: the cgroups, and those a watch vouched for (tests, benchmarks). */
  lastPass: { cgroups: number; vouched: number } | undefined;
  /** The next pass tells the worker every watched cgroup, not only the news (a new worker). */
  private resyncRules = true;

  constructor(private readonly o: PeriodicJobsOptions) {}

  /** The worker and its metrics listener, then the timers. */
  async start(): Promise<void> {
    await this.open();
    this.startTimers();
  }

  /**
   * Starts the worker now when it serves the metrics listener, and resolves once it listens (a
   * port taken fails the daemon's start, as it did when the daemon's thread listened); otherwise
   * the worker starts with the first job.
   */
  async open(): Promise<void> {
    if (!this.o.setup.metricsListen || this.worker) return;
    const listening = new Promise<void>((resolve, reject) => (this.listening = { resolve, reject }));
    this.spawn();
    await listening;
  }

  private startTimers(): void {
    this.every(this.o.reconcileIntervalMs, () =>
      this.pass()
        .catch((err: Error) => this.failed(err, 'reconcile pass failed'))
        .then(() => this.sweeps())
        .catch((err: Error) => this.failed(err, 'closing vanished attachments or checking mounts failed')),
    );
    if (this.o.controlled) this.every(this.o.controllerIntervalMs, () => this.tick().catch((err: Error) => this.failed(err, 'controller tick failed')));
    const prune = this.o.pruneEvents;
    if (prune) {
      const run = () => prune()
        .then((removed) => { if (removed > 0) this.o.log.info({ removed }, 'event log: removed events past their retention'); })
        .catch((err: Error) => this.failed(err, 'pruning the event log failed'));
      void run();
      this.every(RETENTION_EVERY_MS, run);
    }
  }

  /**
   * Runs `job` every `ms`; a run that outlasts the interval (a very large node) makes the next
   * one wait its turn instead of overlapping it.
   */
  private every(ms: number, job: () => Promise<unknown>): void {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      void job().finally(() => (running = false));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** One reconcile pass: found by the worker, confirmed and written here. Returns the repairs written. */
  async pass(slice: TimeSlice = new TimeSlice()): Promise<number> {
    const timer = this.o.metrics.reconcileDuration.startTimer();
    try {
      await this.sendRuleNews(slice);
      let findings;
      try {
        findings = await slice.wait(this.ask('pass'));
      } catch (err) {
        this.o.metrics.enforcementErrors.inc({ reason: 'reconcile' });
        throw err;
      }
      this.lastPass = { cgroups: findings.cgroups, vouched: findings.vouched };
      return await this.o.ruleRepair.confirm(findings, slice);
    } finally {
      timer();
    }
  }

  /** Mount repair, over the attachments the worker found not holding their device. */
  async sweeps(slice: TimeSlice = new TimeSlice()): Promise<void> {
    await this.o.mountRepair.confirm(await slice.wait(this.ask('sweep')), slice);
  }

  /** One controller tick: measured and decided by the worker, written here. */
  async tick(slice: TimeSlice = new TimeSlice()): Promise<void> {
    if (!this.o.controlled) return;
    const outcome = await slice.wait(this.ask('tick'));
    await applyTick({ store: this.o.store, enforcer: this.o.enforcer, policy: this.o.controlled, metrics: this.o.metrics, log: this.o.log }, outcome, slice);
  }

  /** A scrape's reading of the store and the kernel, and its per-volume families rendered, by the worker. */
  async scrapeReading(slice: TimeSlice = new TimeSlice()): Promise<ScrapeReading> {
    const { pools, attached, seconds, text } = await slice.wait(this.ask('scrape'));
    return { pools, attached, seconds, pieces: [Buffer.from(text.buffer, text.byteOffset, text.byteLength)] };
  }

  /** The last hour of every guarantee the controller has seen in force (none without a controller). */
  async attainment(): Promise<AttainmentSummary[]> {
    if (!this.o.controlled) return [];
    return this.ask('attainment');
  }

  /** A periodic job's failure, logged; one cut short by the daemon's shutdown is not a failure. */
  private failed(err: Error, what: string): void {
    if (!this.closed) this.o.log.error({ err: err.message }, what);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  /**
   * The leaf watches' news since the last pass, sent ahead of the pass in parts between slices (a
   * worker that died meanwhile loses some: the one that replaces it is told everything anew).
   */
  private async sendRuleNews(slice: TimeSlice): Promise<void> {
    if (this.closed) return;
    const worker = this.worker ?? this.spawn();
    const news = this.o.enforcer.takeRuleWatches(this.resyncRules);
    this.resyncRules = false;
    for (const rules of newsParts(news, NEWS_PART)) {
      (this.worker ?? worker).postMessage({ rules } satisfies ToWorker);
      if (slice.due()) await slice.yield();
    }
  }

  private ask<J extends JobName>(job: J): Promise<JobResults[J]> {
    if (this.closed) return Promise.reject(new Error('the periodic jobs are stopped'));
    const worker = this.worker ?? this.spawn();
    const id = this.nextId++;
    return new Promise<JobResults[J]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (r: unknown) => void, reject });
      worker.ref(); // a job in progress keeps the process alive; an idle worker does not
      worker.postMessage({ id, job } satisfies ToWorker);
    });
  }

  private spawn(): Worker {
    const worker = new Worker(this.o.workerFile ?? path.join(__dirname, 'worker.js'), { workerData: this.o.setup });
    this.resyncRules = true; // a new worker has verified nothing and knows no watch
    worker.unref();
    worker.on('message', (msg: FromWorker) => {
      if ('event' in msg) return this.onEvent(worker, msg);
      const reply = msg;
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if ('error' in reply) p.reject(new Error(reply.error));
      else p.resolve(reply.result);
    });
    // A worker that dies takes its jobs with it: they fail, and the next job starts a new worker.
    const lost = (why: string) => {
      if (this.worker === worker) this.worker = undefined;
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(new Error(`the periodic jobs' worker ${why}`));
      }
    };
    worker.on('error', (err) => {
      this.listening?.reject(err);
      this.o.log.error({ err: err.message }, "the periodic jobs' worker failed; it is started again at the next job");
      lost(`failed: ${err.message}`);
    });
    worker.on('exit', (code) => lost(`exited (${code})`));
    this.worker = worker;
    return worker;
  }

  private onEvent(worker: Worker, e: WorkerEvent): void {
    if (e.event === 'head') {
      const answer = (m: HeadAnswer) => worker.postMessage(m satisfies ToWorker);
      if (!this.o.head) return answer({ answer: e.ask, error: 'no registry here' });
      this.o.head(e.reading).then(
        (pieces) => answer({ answer: e.ask, text: Buffer.concat(pieces).toString() }),
        (err: Error) => answer({ answer: e.ask, error: err.message }),
      );
      return;
    }
    const waiting = this.listening;
    this.listening = undefined;
    if (e.event === 'listening') return waiting?.resolve();
    const err = new Error(`metrics listener: ${e.error}`);
    if (waiting) waiting.reject(err);
    else this.o.log.error({ err: err.message }, 'the restarted periodic jobs worker could not listen for metrics');
  }
}
