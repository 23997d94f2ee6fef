// Wires the daemon together: state, pools, the cgroup enforcer, the services, the API on the unix
// socket, the metrics listener and the periodic reconcile pass. Used by cli/qosd.ts and by tests,
// which start real daemons on temporary configs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { makeLogger } from './util/log-output';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config/config';
import { Store } from './store/store';
import { StoreView } from './store/view';
import { pruneEvents } from './store/event-retention';
import { FilePool } from './pools/file';
import { LvmPool } from './pools/lvm';
import type { VolumePool } from './pools/pool';
import { detectCgroupLayout } from './host/cgroup-layout';
import { hostRoot, type HostRoot } from './host/host-root';
import { blkioFor, type Blkio } from './host/blkio';
import { sharesHostMountNamespace } from './host/mount-namespace';
import { LockHeld, takeExclusiveLock, type HeldLock } from './host/exclusive-lock';
import { nativeBinding } from './store/db';
import { Enforcer } from './enforce/enforcer';
import { KeyedLock } from './service/locks';
import { VolumeService } from './service/volumes';
import { AttachmentService } from './service/attachments';
import { FlexHandler } from './service/flex';
import { PoolService } from './service/pools';
import { Calibrator } from './service/calibrate';
import { runChecks } from './service/doctor';
import { listDevices } from './service/devices';
import { recoverAtStart } from './reconcile/recovery';
import { RuleRepair } from './reconcile/rule-repair';
import { MountRepair } from './reconcile/mount-repair';
import { MetricsCollector } from './scrape/collect';
import { ControlledLimits } from './controller/controller';
import { PeriodicJobs } from './periodic/jobs';
import type { WorkerSetup } from './periodic/protocol';
import { staticLimits, type LimitPolicy } from './enforce/limit-policy';
import { Metrics } from './metrics/registry';
import { buildApi, inheritedSocketFd, listenOnSocket } from './api/server';
import { refuseLiveSocket } from './util/unix-socket';
import type { Services } from './api/services';
import { CsiIdentity } from './csi/identity';
import { CsiNode } from './csi/node';
import { CsiController } from './csi/controller';
import { CsiRegistration } from './csi/registration';
import { serveCsi, type CsiServers } from './csi/server';
import { DRIVER_NAME, TOPOLOGY_KEY } from './csi/names';
import { VolumeRequestWorker } from './csi/volume-request-worker';
import { CapacityPublisher } from './csi/capacity-publisher';
import { KubeClient } from './kube/client';
import { connectionFor, weaknesses } from './kube/connection';

export const VERSION: string = (JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;

export interface Daemon {
  config: Config;
  app: FastifyInstance;
  store: Store;
  enforcer: Enforcer;
  close(): Promise<void>;
}

function makePools(root: HostRoot, config: Config): Map<string, VolumePool> {
  const pools = new Map<string, VolumePool>();
  for (const p of config.pools) {
    pools.set(p.name, p.backend === 'lvm' ? new LvmPool(root, p.name, p.volumeGroup, p.devices, p.stripes) : new FilePool(root, p.name, p.path, { create: p.create, overcommit: p.overcommit }));
  }
  return pools;
}

/**
 * The state directory's lock (qosd.lock). A second daemon on the same state would share one
 * database, one set of loop devices and two reconcile passes: it stops here, naming the first.
 */
function lockState(root: HostRoot, stateDir: string): HeldLock {
  const file = path.join(stateDir, 'qosd.lock');
  try {
    return takeExclusiveLock(root, file, nativeBinding());
  } catch (err) {
    if (!(err instanceof LockHeld)) throw err;
    const who = err.holder !== undefined ? `qosd (pid ${err.holder})` : 'another qosd';
    throw new Error(`${who} already serves the state in ${stateDir} (${file} is locked); one daemon per state directory: stop it first, or give this one another --state-dir`);
  }
}

export async function startDaemon(config: Config, log: Logger = makeLogger(config.logLevel, config.logFormat)): Promise<Daemon> {
  const started = Date.now();
  // The one value every reader of the node's procfs, sysfs and cgroups is handed.
  const root = hostRoot({ cgroup: config.cgroup.mountPoint });
  // A mount made in a private namespace answers Success and reaches no pod: refuse to run there.
  if (sharesHostMountNamespace(root) === false) {
    throw new Error("qosd runs in a private mount namespace (its /proc/self/ns/mnt is not PID 1's): the volumes it mounts would be invisible to kubelet and the containers. Run it in the host's mount namespace: no ProtectSystem=, PrivateTmp=, ReadWritePaths= or other option that gives its systemd unit a namespace (see systemd/qosd.service)");
  }
  // Over a daemon already serving this socket: say so before anything else.
  if (inheritedSocketFd() === undefined) await refuseLiveSocket(config.socket);
  fs.mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  // One daemon per state: before anything is opened or touched, held until the process ends.
  const stateLock = lockState(root, config.stateDir);
  try {
    return await serve(config, root, log, started, stateLock);
  } catch (err) {
    stateLock.release();
    throw err;
  }
}

async function serve(config: Config, root: HostRoot, log: Logger, started: number, stateLock: HeldLock): Promise<Daemon> {
  const pools = makePools(root, config);
  for (const p of pools.values()) await p.init();
  const dbFile = path.join(config.stateDir, 'qosd.db');
  const store = openStore(dbFile, log);
  const metrics = new Metrics();
  const layout = detectCgroupLayout(root, config.cgroup.version);
  // The cgroup version is decided here, once: everything below speaks the blkio face.
  const blkio = blkioFor(layout);
  if (blkio.unavailable) log.warn({ reason: blkio.unavailable }, 'no block-IO cgroup controller: volumes with limits cannot be attached');
  // With the controller on, what is written is the configured max tightened by the controller.
  const policy = config.controller.enabled ? new ControlledLimits() : staticLimits;
  // One view of the store for start-up recovery's passes (the periodic jobs read in their worker).
  const view = new StoreView(store);
  const { enforcer, locks, volumes, attachments, ruleRepair, mountRepair } = nodeServices({ config, root, store, pools, blkio, policy, view, metrics, log });
  const flex = new FlexHandler(attachments, config.kubelet.rootDir, config.flex.allowedNamespaces ? new Set(config.flex.allowedNamespaces) : undefined);
  const poolService = new PoolService(store, config, pools);
  // The periodic jobs (reconcile pass, sweeps, controller, the scrape's per-volume families) find
  // in a worker thread and write here (periodic/jobs.ts).
  const periodic = new PeriodicJobs({
    setup: workerSetup(config, root, dbFile, layout, policy, metrics),
    store, enforcer, ruleRepair, mountRepair, metrics, log,
    controlled: policy instanceof ControlledLimits ? policy : undefined,
    reconcileIntervalMs: config.reconcileIntervalMs,
    controllerIntervalMs: config.controller.intervalMs,
    head: (reading): Promise<Buffer[]> => collector.head(reading),
    pruneEvents: () => pruneEvents(store.events, config.events),
  });
  const collector: MetricsCollector = new MetricsCollector(metrics, (slice) => periodic.scrapeReading(slice));
  const calibrator = new Calibrator(store, pools, locks, log);
  // Before serving: finish or undo what the last run left half done, and put every rule back.
  const recovery = await recoverAtStart({ store, pools, volumes, attachments, ruleRepair, mountRepair, calibrator, metrics, log });
  view.forget();

  // Made before the API, so the status can show kubelet's answer; served below.
  const csiRegistration = config.csi ? new CsiRegistration(config.csi.socket, log, (ok) => metrics.csiRegistered.set(ok ? 1 : 0)) : undefined;

  // Served after the API (a status asked meanwhile shows no relay worker yet).
  let closing = false;
  let csiDoors: Awaited<ReturnType<typeof serveCsiDoors>> | undefined;

  const app = buildApi({
    store, volumes, attachments, flex, metrics, pools: poolService, calibrator,
    doctor: () => runChecks(root, config, blkio, poolService, () => csiRegistration?.last),
    devices: () => listDevices(root, config),
    limitsFor: (v) => policy.limitsFor(v),
    status: () => statusOf({ config, started, blkio, store, poolService, registration: csiRegistration, volumeRequests: csiDoors?.volumeRequests }),
    scrapeMetrics: () => collector.scrape(),
    attainment: async (name) => (await periodic.attainment()).filter((a) => a.volume === name),
  }, log);
  const listening = await listenOnSocket(app, config.socket);

  // CSI beside the HTTP API: the same services behind a second door.
  csiDoors = config.csi && csiRegistration
    ? await serveCsiDoors(config, config.csi, { store, root, volumes, attachments, registration: csiRegistration, metrics, log, closing: () => closing })
    : undefined;

  // The periodic pass: rules back to what SQLite says, pods that vanished without an unmount
  // closed, every attached volume mounted at its target; and the controller.
  // The metrics listener is served by the periodic jobs' worker (periodic/metrics-listener.ts).
  await periodic.start();

  log.info({ socket: config.socket, csi: config.csi?.socket ?? 'off', metrics: metricsUrl(config.metricsListen), listening, stateDir: config.stateDir, cgroup: layout, recovery, ms: Date.now() - started }, 'qosd serving');

  return {
    config, app, store, enforcer,
    async close() {
      closing = true;
      await csiDoors?.volumeRequests?.stop();
      await csiDoors?.capacity?.stop();
      await csiDoors?.csi.close();
      await periodic.close();
      await app.close();
      enforcer.close();
      store.close();
      stateLock.release();
    },
  };
}

/**
 * The enforcer, the volume and attachment services, and the two repair jobs (src/reconcile/:
 * found off the daemon's thread by the periodic jobs' worker, or in-thread at start; confirmed and
 * repaired on it under the locks).
 */
function nodeServices(o: { config: Config; root: HostRoot; store: Store; pools: Map<string, VolumePool>; blkio: Blkio; policy: LimitPolicy; view: StoreView; metrics: Metrics; log: Logger }) {
  const { config, root, store, pools, blkio, policy, view, metrics, log } = o;
  const enforcer = new Enforcer({
    blkio, kubelet: config.kubelet, root, store, view, log, metrics, policy,
    // Before a rule is written or cleared: is the recorded device still the volume's?
    identify: (vol, device) => pools.get(vol.pool)?.identify(vol, device) ?? { is: 'ours' },
    refind: (name) => void volumes.refind(name).catch((err: Error) => log.error({ volume: name, err: err.message }, 'finding the device of a volume again failed')),
  });
  const locks = new KeyedLock();
  const volumes = new VolumeService({ store, pools, config, locks, enforcer, log, root });
  const attachments = new AttachmentService({ store, pools, volumes, enforcer, locks, log, root });
  const ruleRepair = new RuleRepair({ enforcer, metrics, log });
  const mountRepair = new MountRepair({ store, view, volumes, attachments, enforcer, locks, log, metrics, root });
  return { enforcer, locks, volumes, attachments, ruleRepair, mountRepair };
}

/**
 * The state database, each event added to it also a log line (inside a transaction the line can
 * precede a rollback; the event log is the record, the line is for the operator).
 */
function openStore(dbFile: string, log: Logger): Store {
  const store = Store.open(dbFile);
  store.events.onAdd = (e) => log.info({ event: e.kind, volume: e.volume, source: e.source, detail: e.detail }, `${e.kind}${e.volume ? ` ${e.volume}` : ''}`);
  return store;
}

/** What the periodic jobs' worker opens for itself: the same database, cgroups, pools and listener. */
function workerSetup(config: Config, root: HostRoot, dbFile: string, layout: ReturnType<typeof detectCgroupLayout>, policy: LimitPolicy, metrics: Metrics): WorkerSetup {
  return {
    dbFile, root, layout, kubelet: config.kubelet, pools: config.pools, headroom: config.headroom,
    controller: policy instanceof ControlledLimits, logLevel: config.logLevel, logFormat: config.logFormat,
    metricsListen: config.metricsListen, metricsPerVolume: config.metricsPerVolume, metricsContentType: metrics.contentType,
  };
}

function metricsUrl(listen: Config['metricsListen']): string {
  if (!listen) return 'off';
  return `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}/metrics`;
}

/** What `qosctl status` shows: the daemon, its cgroup face, kubelet's answer, the pools. */
function statusOf(o: {
  config: Config;
  started: number;
  blkio: Blkio;
  store: Store;
  poolService: PoolService;
  registration: CsiRegistration | undefined;
  volumeRequests: VolumeRequestWorker | undefined;
}): ReturnType<Services['status']> {
  const { config, blkio, store } = o;
  const counts = store.volumes.countByPool();
  return {
    version: VERSION,
    pid: process.pid,
    uid: process.getuid?.() ?? -1,
    uptimeSeconds: (Date.now() - o.started) / 1000,
    socket: config.socket,
    stateDir: config.stateDir,
    config: config.source ?? null,
    cgroup: { version: blkio.unavailable ? null : blkio.version, base: blkio.base ?? null, error: blkio.unavailable ?? null },
    kubelet: config.kubelet,
    csi: config.csi
      ? {
          socket: config.csi.socket,
          nodeName: config.csi.nodeName,
          registration: config.csi.registration ? path.join(config.kubelet.rootDir, 'plugins_registry', `${DRIVER_NAME}-reg.sock`) : null,
          kubelet: o.registration?.last ?? null,
          volumeRequests: o.volumeRequests?.state ?? null,
        }
      : null,
    pools: o.poolService.list().map((p) => ({ name: p.name, backend: p.backend, volumes: p.volumes, capacity: p.capacity })),
    volumes: [...counts.values()].reduce((a, b) => a + b, 0),
    attachments: store.attachments.list().length,
  };
}

/**
 * The CSI socket (Identity, Controller, Node) and, given a kubeconfig, the worker that takes this
 * node's expansions and QoS changes (VolumeAttributesClass) from the CSI relay, and the publisher
 * that rewrites this node's CSIStorageCapacity figures when a guarantee changes.
 */
async function serveCsiDoors(
  config: Config,
  c: NonNullable<Config['csi']>,
  o: { store: Store; root: HostRoot; volumes: VolumeService; attachments: AttachmentService; registration: CsiRegistration; metrics: Metrics; log: Logger; closing: () => boolean },
): Promise<{ csi: CsiServers; volumeRequests: VolumeRequestWorker | undefined; capacity?: CapacityPublisher }> {
  const { store, volumes, log } = o;
  const problem = (): string | undefined => {
    if (o.closing()) return 'it is shutting down';
    try {
      store.generation();
      return undefined;
    } catch (err) {
      return `its state database cannot be read (${(err as Error).message})`;
    }
  };
  const controller = new CsiController({ store, volumes, nodeName: c.nodeName, defaultSize: config.defaults.size });
  const csi = await serveCsi({
    socket: c.socket,
    registryDir: c.registration ? path.join(config.kubelet.rootDir, 'plugins_registry') : undefined,
    identity: new CsiIdentity({ version: VERSION, problem }),
    controller,
    node: new CsiNode({ store, volumes, attachments: o.attachments, kubeletRootDir: config.kubelet.rootDir, nodeName: c.nodeName, log, root: o.root }),
    registration: o.registration,
    log,
    metrics: o.metrics,
  });
  if (!c.kubeconfig) return { csi, volumeRequests: undefined };
  const connection = connectionFor(c.kubeconfig);
  for (const weak of weaknesses(connection)) log.warn({ kubeconfig: connection.source }, `API server access: ${weak}`);
  const volumeRequests = new VolumeRequestWorker(new KubeClient(connection), c.nodeName, controller, log.child({ component: 'volume-requests' }), store);
  volumeRequests.start();
  // The scheduler's figures for this node, rewritten when a guarantee here changes.
  const capacity = new CapacityPublisher(
    new KubeClient(connection),
    c.nodeName,
    (parameters) => controller.getCapacity({ parameters, volume_capabilities: [], accessible_topology: { segments: { [TOPOLOGY_KEY]: c.nodeName } } }),
    log.child({ component: 'capacity' }),
  );
  volumes.onPromisesChanged(() => capacity.changed());
  return { csi, volumeRequests, capacity };
}
