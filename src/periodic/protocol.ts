// What the daemon's thread and the periodic jobs' worker thread say to each other. The daemon's
// thread asks for one job at a time by name and gets its findings back; the worker never writes
// the store or a cgroup (periodic/worker.ts says why).
import type { MountSuspects } from '../reconcile/mount-suspects';
import type { CgroupLayout } from '../host/cgroup-layout';
import type { HostRoot } from '../host/host-root';
import type { CgroupDriverSetting } from '../model/cgroup';
import type { PoolConfig, LogFormat, LogLevel } from '../config/config';
import type { Repair } from '../reconcile/rule-pass';
import type { RuleWatchNews } from '../enforce/rule-watch';
import type { AttachedPod } from '../enforce/enforcer';
import type { TickOutcome } from '../controller/controller';
import type { AttainmentSummary } from '../model/attainment';
import type { PoolView } from '../service/pools';

/** Everything the worker is built from (its workerData). */
export interface WorkerSetup {
  /** The state database the daemon has opened; the worker reads it through a connection of its own. */
  dbFile: string;
  /** The daemon's host root (a plain value, cloned into the worker): diskstats and mountinfo are read under it. */
  root: HostRoot;
  layout: CgroupLayout | { error: string };
  kubelet: { cgroupRoot: string; cgroupDriver: CgroupDriverSetting };
  pools: PoolConfig[];
  headroom: number;
  /** Whether the controller runs (its limits then tighten what the pass wants). */
  controller: boolean;
  logLevel: LogLevel;
  /** The daemon's log format (json when not given). */
  logFormat?: LogFormat;
  /** The Prometheus listener, served by the worker (metrics-listener.ts); undefined: none. */
  metricsListen?: { host: string; port: number };
  /** Whether the listener serves the per-volume families (metrics.perVolume). */
  metricsPerVolume?: boolean;
  /** The exposition's content type (the registry's). */
  metricsContentType: string;
}

export type JobName = 'pass' | 'tick' | 'sweep' | 'scrape' | 'attainment';

export interface JobRequest {
  id: number;
  job: JobName;
}

/** Before a pass, in parts: what the daemon's leaf watches saw since the last pass (rule-watch.ts). */
export interface RulesNews {
  rules: RuleWatchNews;
}

/** A pass's findings: repairs to confirm, and (when the store changed since the last pass) the attached pods. */
export interface PassFindings {
  found: Pick<Repair, 'dir' | 'device'>[];
  /** The cgroups the pass checked, and how many of them a watch vouched for (not read). */
  cgroups: number;
  vouched: number;
  pods: AttachedPod[] | undefined;
}

export type SweepFindings = MountSuspects;

export interface ScrapeFindings {
  pools: PoolView[];
  attached: number;
  seconds: number;
  /** The per-volume families, rendered and encoded, in one buffer (transferred, not copied). */
  text: Uint8Array;
}

export interface JobResults {
  pass: PassFindings;
  tick: TickOutcome;
  sweep: SweepFindings;
  scrape: ScrapeFindings;
  /** The last hour of every guarantee the controller has seen in force. */
  attainment: AttainmentSummary[];
}

export type JobReply = { id: number; result: JobResults[JobName] } | { id: number; error: string };

/**
 * What the worker itself says: that its metrics listener is up (or could not listen), and, for
 * each scrape it serves, a request for the registry's part (the daemon's counters and the pools'
 * gauges, rendered on the daemon's thread from the worker's reading).
 */
export type WorkerEvent =
  | { event: 'listening' }
  | { event: 'listen-failed'; error: string }
  | { event: 'head'; ask: number; reading: Omit<ScrapeFindings, 'text'> };

/** The daemon's thread's answer to a `head` request. */
export type HeadAnswer = { answer: number; text: string } | { answer: number; error: string };

export type FromWorker = JobReply | WorkerEvent;
export type ToWorker = JobRequest | RulesNews | HeadAnswer;
