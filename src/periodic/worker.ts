// The periodic jobs' worker thread: the reconcile pass, the controller's measuring and deciding,
// the mount sweep and the scrape's per-volume families run here, on a heap and an event loop of
// their own, so that neither their CPU nor their garbage collection holds up an API request or a
// flex call on the daemon's thread (bench/responsiveness.js measures the API's latency under the
// jobs; its figures are in bench/results).
//
// The worker reads and finds; it does not write. It reads the state through its own read-only
// SQLite connection (WAL lets it read beside the daemon's writer), reads the cgroups and procfs,
// and sends its findings back: the daemon's thread confirms each one against the store and the
// node as they are then, and writes, under the same locks and in the same synchronous steps as
// before, so the worker can never undo an attach or a detach that came in meanwhile.
import * as os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { makeLogger } from '../util/log-output';
import { Store } from '../store/store';
import { StoreView } from '../store/view';
import { blkioFor } from '../host/blkio';
import { byMountPoint, readMountinfoInPieces } from '../host/mountinfo';
import { findRepairs } from '../reconcile/rule-pass';
import { TrustedRules } from '../enforce/rule-watch';
import { attachedPods } from '../enforce/enforcer';
import { staticLimits } from '../enforce/limit-policy';
import { Controller, ControlledLimits } from '../controller/controller';
import { sampleVolumes } from '../scrape/collect';
import { familyPieces } from '../metrics/volume-families';
import { mountSuspects } from '../reconcile/mount-suspects';
import { PoolService } from '../service/pools';
import { Metrics } from '../metrics/registry';
import { restBetweenSlices, TimeSlice } from '../util/time-slice';
import { serveMetrics } from './metrics-listener';
import type { ScrapeFindings, JobName, JobReply, JobRequest, JobResults, PassFindings, SweepFindings, ToWorker, WorkerEvent, WorkerSetup } from './protocol';

/** How far below the daemon's thread this one runs (lowerThisThreadsPriority says why). */
const WORKER_NICE = 10;
/**
 * The longest this thread works before it rests (restBetweenSlices): half a millisecond, so that
 * a request waiting for the core this thread holds waits at most that long. The jobs' CPU is the
 * same as with longer slices, their wall time longer (bench/responsiveness.js; figures in the
 * README and bench/results/responsiveness.json).
 */
const SLICE_MS = 0.5;
const setup = workerData as WorkerSetup;
lowerThisThreadsPriority();
restBetweenSlices();
const port = parentPort!;
const log = makeLogger(setup.logLevel, setup.logFormat ?? 'json');
const store = Store.openReader(setup.dbFile);
const view = new StoreView(store);
const blkio = blkioFor(setup.layout);
const pools = new PoolService(store, { pools: setup.pools, headroom: setup.headroom });
const controlled = setup.controller ? new ControlledLimits() : undefined;
const policy = controlled ?? staticLimits;
const controller = controlled
  ? new Controller({
      store, view, policy: controlled, log,
      // The worker decides only (Controller.decide); the daemon's thread applies.
      enforcer: { apply: () => { throw new Error('the worker does not write cgroups'); } },
      pools,
      // used by tick() only, which runs on the daemon's thread: never exported from here
      metrics: new Metrics({ processMetrics: false }),
      intervalMs: 0,
      root: setup.root,
    })
  : undefined;
/** The cgroups whose rules a pass read, found right, and no watch has seen written since. */
const trusted = new TrustedRules();
/** The generation of the store the last pass's attached pods came from. */
let podsGeneration: number | undefined;

/**
 * The periodic jobs are background work: this thread runs ten nice levels below the daemon's, so
 * that where the daemon's threads contend for a core, an API request or a flex call (kubelet
 * waits on those) runs before a slice of a pass or a scrape. Linux keeps nice per thread, so the
 * daemon's thread keeps its own. It orders the daemon's threads only: the daemon's CPU against the
 * pods' is its unit's cgroup weight. At worst (a node whose CPU is saturated) the jobs run late;
 * the controller then ticks less often, and every() keeps its ticks from piling up.
 */
function lowerThisThreadsPriority(): void {
  try {
    os.setPriority(0, Math.min(19, os.getPriority(0) + WORKER_NICE));
  } catch {
    /* not allowed here (a seccomp filter): the jobs run at the daemon's priority */
  }
}

async function pass(slice: TimeSlice): Promise<PassFindings> {
  const { repairs, cgroups, vouched } = await findRepairs({ blkio, kubelet: setup.kubelet, store, view, policy, trusted }, slice);
  const snapshot = await view.read(slice);
  const pods = blkio.leavesNeedRules && snapshot.generation !== podsGeneration ? attachedPods(snapshot.attachments) : undefined;
  podsGeneration = snapshot.generation;
  slice.end();
  return { found: repairs.map((r) => ({ dir: r.dir, device: r.device })), pods, cgroups, vouched };
}

async function sweep(slice: TimeSlice): Promise<SweepFindings> {
  const snapshot = await view.read(slice);
  const mounts = byMountPoint(await readMountinfoInPieces(setup.root, () => slice.check()));
  return mountSuspects(snapshot.attachments, snapshot.volumes, mounts, slice);
}

async function scrape(slice: TimeSlice): Promise<ScrapeFindings> {
  const started = process.hrtime.bigint();
  const { attached, samples } = await sampleVolumes(
    { store, pools, blkio, root: setup.root, view, limitsFor: (v) => policy.limitsFor(v), deviceShare: (v) => controlled?.shares.get(v.name), attainment: controller ? (name) => controller.attainment.of(name) : undefined },
    slice,
  );
  if (slice.due()) await slice.yield();
  const poolViews = pools.list();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const pieces: Buffer[] = [];
  for await (const p of familyPieces(samples, slice)) pieces.push(p);
  // One buffer of its own (never the shared pool's), so that it can be transferred.
  const text = Buffer.allocUnsafeSlow(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pieces) at += p.copy(text, at);
  return { pools: poolViews, attached, seconds, text };
}

const jobs: { [J in JobName]: (slice: TimeSlice) => Promise<JobResults[J]> } = {
  pass,
  tick: (slice) => (controller ? controller.decide(slice) : Promise.resolve({ utilisations: new Map(), adjustments: [] })),
  sweep,
  scrape,
  attainment: () => Promise.resolve(controller ? controller.attainment.summaries(Date.now()) : []),
};

/** The registry's part of a scrape the listener serves, asked of the daemon's thread. */
let nextAsk = 1;
const asked = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
function head(reading: Omit<ScrapeFindings, 'text'>): Promise<string> {
  const ask = nextAsk++;
  return new Promise((resolve, reject) => {
    asked.set(ask, { resolve, reject });
    port.postMessage({ event: 'head', ask, reading } satisfies WorkerEvent);
  });
}

function run(req: JobRequest): void {
  jobs[req.job](new TimeSlice(SLICE_MS))
    .then((result) => {
      const reply: JobReply = { id: req.id, result };
      const transfer = req.job === 'scrape' ? [(result as ScrapeFindings).text.buffer as ArrayBuffer] : [];
      port.postMessage(reply, transfer);
    })
    .catch((err: Error) => port.postMessage({ id: req.id, error: err.message } satisfies JobReply));
}

port.on('message', (msg: ToWorker) => {
  if ('job' in msg) return run(msg);
  if ('rules' in msg) return trusted.learn(msg.rules);
  const waiting = asked.get(msg.answer);
  asked.delete(msg.answer);
  if ('error' in msg) waiting?.reject(new Error(msg.error));
  else waiting?.resolve(msg.text);
});

if (setup.metricsListen) {
  const { host, port: listenPort } = setup.metricsListen;
  serveMetrics({ host, port: listenPort, contentType: setup.metricsContentType, scrape: () => scrape(new TimeSlice(SLICE_MS)), head, perVolume: setup.metricsPerVolume ?? true }).then(
    () => port.postMessage({ event: 'listening' } satisfies WorkerEvent),
    (err: Error) => port.postMessage({ event: 'listen-failed', error: err.message } satisfies WorkerEvent),
  );
}
