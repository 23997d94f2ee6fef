#!/usr/bin/env node
// Responsiveness under the periodic jobs (issue 12), with 1,000 and 10,000 attached volumes that
// carry guarantees. The daemon's own parts are assembled in this process as daemon.ts assembles
// them (store, blkio face, enforcer, controller, attachment sweeps, scrape collector, the fastify
// API on a unix socket), over a cgroup v1 tree, a /proc/diskstats and a mountinfo laid out under
// tmpfs as a node with that many volumes has them, and started as the daemon starts (recovery's
// pass writes the rules and watches every pod's cgroups before the API serves). Then, in the same run:
//   - quiet: GET /v1/volumes/:name at a fixed rate (an open-loop generator in a child process, so
//     the load does not share the daemon's event loop) with every periodic job off;
//   - loaded: the same requests while the controller ticks every 250 ms, the reconcile pass and
//     the vanished-pod and mount sweeps run back to back (the daemon runs them every 10 s: this
//     is the worst case), and Prometheus's scrape (a child process on the metrics listener) every 2 s.
// The periodic jobs run as the daemon runs them (periodic/jobs.ts): found in the worker thread,
// confirmed and written on this one; the holds reported are this thread's.
// One stream of requests runs throughout, and 2 s quiet and loaded windows alternate under it,
// BENCH_WINDOWS (default 8) of each; each request counts for the window it started in. This
// machine is shared and its noise comes in bursts of seconds (one 8 s quiet round's p99 moved
// 1.2-13.8 ms in one run): short alternating windows let a burst weigh on both sides alike.
// Reported: p50/p99 latency of both and their ratio; the longest time each job held the event
// loop without yielding, in wall time and without the time the thread waited for a core within
// that slice (on 2 shared cores a slice's wall time also counts other threads' and processes'
// turns); the event loop delay seen by a timer; a no-op reconcile pass's CPU, steady (what the
// leaf watches vouch for is not read) and reading every cgroup, beside the latter's floor measured
// in the same run (listing the same cgroups and reading the same rule files, nothing else); the
// controller's CPU per tick and its share of a core at 250 ms (controller alone).
// BENCH_LOADED (default controller,reconcile,scrape) leaves jobs out of the loaded windows.
// Writes bench/results/responsiveness.json. Run as root after `npm run build` (tmpfs mount).
'use strict';
const fs = require('node:fs');
const { execFileSync, spawn, spawnSync } = require('node:child_process');
// The daemon runs with its Node.js flags (src/cli/node-flags.ts), and so does this stand-in for
// it: run again with them when they are missing.
{
  const { DAEMON_NODE_FLAGS } = require('../dist/cli/node-flags.js');
  if (process.argv.length === 2 && !DAEMON_NODE_FLAGS.every((f) => process.execArgv.includes(f))) {
    process.exit(spawnSync(process.execPath, [...process.execArgv, ...DAEMON_NODE_FLAGS, __filename], { stdio: 'inherit' }).status ?? 1);
  }
}
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { monitorEventLoopDelay } = require('node:perf_hooks');

const REPO = path.resolve(__dirname, '..');
const dist = (p) => require(path.join(REPO, 'dist', p));
const V1_RULES = ['read_iops_device', 'write_iops_device', 'read_bps_device', 'write_bps_device'].map((f) => `blkio.throttle.${f}`);
const RATE = 400; // requests per second
const WINDOW_MS = 2000;
const WINDOWS = Number(process.env.BENCH_WINDOWS || 8);
// The jobs a loaded window runs (default all): leaving one out tells what its share of the load is.
const LOADED = new Set((process.env.BENCH_LOADED || 'controller,reconcile,scrape').split(','));

function cgroup(dir) {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of V1_RULES) fs.writeFileSync(path.join(dir, f), '');
}

/** A node with n attached guaranteed volumes, each in its own pod with one container. */
function layNode(n, root) {
  const { Store } = dist('store/store.js');
  const base = path.join(root, 'blkio');
  cgroup(base);
  cgroup(path.join(base, 'kubepods'));
  cgroup(path.join(base, 'kubepods', 'burstable'));
  // A file (on the tmpfs): the periodic jobs' worker reads it through a connection of its own.
  const dbFile = path.join(root, 'qosd.db');
  const store = Store.open(dbFile);
  const t = new Date().toISOString();
  const disk = [];
  const mounts = [];
  store.tx(() => {
    for (let i = 0; i < n; i++) {
      const uid = crypto.randomUUID();
      const pod = path.join(base, 'kubepods', 'burstable', `pod${uid}`);
      const dev = `7:${i}`;
      cgroup(pod);
      cgroup(path.join(pod, crypto.randomBytes(32).toString('hex')));
      fs.writeFileSync(path.join(pod, 'blkio.throttle.io_serviced_recursive'), `${dev} Read ${i}\n${dev} Write ${i}\nTotal ${2 * i}\n`);
      fs.writeFileSync(path.join(pod, 'blkio.throttle.io_service_bytes_recursive'), `${dev} Read ${i * 4096}\n${dev} Write ${i * 4096}\nTotal ${i * 8192}\n`);
      const name = `v${i}`;
      const backing = path.join(root, 'pool', `${name}.img`);
      fs.mkdirSync(path.dirname(backing), { recursive: true });
      fs.writeFileSync(backing, '');
      store.volumes.insert({
        name, pool: 'default', sizeBytes: 1 << 30, fsType: 'ext4', class: 'best-effort', ephemeral: false, state: 'ready', formatted: true,
        backing, device: `/dev/loop${i}`, deviceNumber: dev, qos: { min: { readIops: 10 }, max: { readIops: 1000 + i } }, overrides: { min: { readIops: 10 }, max: { readIops: 1000 + i } },
      }, t);
      const target = path.join(root, 'kubelet', 'pods', uid, 'volumes', 'qosd~nvme', name);
      fs.mkdirSync(target, { recursive: true });
      const a = store.attachments.insert({ volume: name, podUid: uid, target, readOnly: false, state: 'attached', source: 'flex' }, t);
      store.attachments.update(a.id, { cgroupVersion: 'v1', podCgroup: pod, device: dev, cgroupPaths: [] }, t);
      disk.push(`   7 ${String(i).padStart(7)} loop${i} ${i} 0 ${i * 8} 10 ${i} 0 ${i * 8} 10 0 20 ${i} 0 0 0 0 0 0`);
      mounts.push(`${100 + i} 1 ${dev} / ${target} rw,relatime shared:${i} - ext4 /dev/loop${i} rw`);
    }
  });
  fs.mkdirSync(path.join(root, 'proc', 'self'), { recursive: true });
  fs.writeFileSync(path.join(root, 'proc', 'diskstats'), `${disk.join('\n')}\n`);
  fs.writeFileSync(path.join(root, 'proc', 'self', 'mountinfo'), `${mounts.join('\n')}\n`);
  return { store, base, dbFile };
}

/** `visit` for each rule file of every cgroup under `top`, each cgroup listed once. */
function eachRuleFile(top, visit) {
  const stack = [top];
  while (stack.length > 0) {
    const dir = stack.pop();
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) stack.push(`${dir}/${e.name}`);
    for (const f of V1_RULES) visit(`${dir}/${f}`);
  }
}

/** Every rule file under `top` emptied, as a writer outside qosd could. */
function clearRules(top) {
  eachRuleFile(top, (file) => fs.writeFileSync(file, ''));
}

/**
 * The floor of a no-op pass over this node: every cgroup under kubepods listed and its four rule
 * files read, with the reads the pass uses and no logic. Returns its CPU in ms.
 */
function passFloorCpuMs(base) {
  const { readSmall } = dist('host/read-small.js');
  const c0 = process.cpuUsage();
  eachRuleFile(path.join(base, 'kubepods'), readSmall);
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

function assemble(n, root, metricsPort, onHead, Slice) {
  const pino = require('pino');
  const log = pino({ level: 'silent' });
  const { store, base, dbFile } = layNode(n, root);
  const { blkioFor } = dist('host/blkio.js');
  const { Enforcer } = dist('enforce/enforcer.js');
  const { ControlledLimits } = dist('controller/controller.js');
  const { Metrics } = dist('metrics/registry.js');
  const { MetricsCollector } = dist('scrape/collect.js');
  const { PoolService } = dist('service/pools.js');
  const { AttachmentService } = dist('service/attachments.js');
  const { KeyedLock } = dist('service/locks.js');
  const { PeriodicJobs } = dist('periodic/jobs.js');
  const { RuleRepair } = dist('reconcile/rule-repair.js');
  const { MountRepair } = dist('reconcile/mount-repair.js');
  const { repairInThread } = dist('reconcile/repair-job.js');
  const { StoreView } = dist('store/view.js');
  const { hostRoot } = dist('host/host-root.js');
  const { buildApi, listenOnSocket } = dist('api/server.js');
  const { notFound } = dist('model/errors.js');

  const metrics = new Metrics();
  const layout = { version: 'v1', base };
  const blkio = blkioFor(layout);
  const policy = new ControlledLimits();
  const kubelet = { cgroupRoot: '/', cgroupDriver: 'cgroupfs' };
  const enforcer = new Enforcer({ blkio, kubelet, store, log, metrics, policy });
  const poolConfig = { pools: [{ name: 'default', backend: 'file', path: path.join(root, 'pool'), capacity: { readIops: 1e7, writeIops: 1e7, readBps: 1e12, writeBps: 1e12 } }], headroom: 0.1 };
  const pools = new PoolService(store, poolConfig);
  // The node's disk counters and mount table, from the fixture tree.
  const fixtureRoot = hostRoot({ proc: path.join(root, 'proc') });
  const locks = new KeyedLock();
  const attachments = new AttachmentService({ store, pools: new Map(), volumes: undefined, enforcer, locks, log, root: fixtureRoot });
  const ruleRepair = new RuleRepair({ enforcer, metrics, log });
  const mountRepair = new MountRepair({
    store, view: new StoreView(store), volumes: undefined, attachments, enforcer, locks, log, metrics,
    root: fixtureRoot,
  });
  // As daemon.ts runs them: found in the worker thread, confirmed and written on this one.
  const periodic = new PeriodicJobs({
    setup: {
      dbFile, layout, kubelet, pools: poolConfig.pools, headroom: poolConfig.headroom, controller: true, logLevel: 'silent',
      root: fixtureRoot,
      metricsListen: { host: '127.0.0.1', port: metricsPort }, metricsContentType: metrics.contentType,
    },
    store, enforcer, ruleRepair, mountRepair, controlled: policy, metrics, log, reconcileIntervalMs: 10_000, controllerIntervalMs: 250,
    // the registry's part of each scrape the listener serves: the one part on this thread
    head: (reading) => {
      const s = new Slice();
      return collector.head(reading, s).then((pieces) => (onHead(s), pieces));
    },
  });
  const collector = new MetricsCollector(metrics, (slice) => periodic.scrapeReading(slice));
  const services = {
    store, metrics, config: { pools: [] }, pools,
    volumes: { get: (name) => { const v = store.volumes.get(name); if (!v) throw notFound(`volume ${name} not found`); return v; }, list: () => store.volumes.list() },
    attachments, limitsFor: (v) => policy.limitsFor(v),
    doctor: () => [], status: () => ({}), scrapeMetrics: () => collector.scrape(),
  };
  const app = buildApi(services, log);
  return { store, base, enforcer, periodic, collector, app, repairRulesInThread: () => repairInThread(ruleRepair, new Slice()), listen: async (socket) => (await periodic.open(), listenOnSocket(app, socket)) };
}

/** A TCP port nothing listens on now, for the metrics listener. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = require('node:net').createServer().once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * GET /v1/volumes/<name> at RATE per second from a child process (this file, run with --load)
 * until its stdin ends: an open-loop generator that starts each request on schedule, whether or
 * not the last one has answered, so a held event loop shows as latency instead of as fewer
 * requests. It reports each request's start on process.hrtime (CLOCK_MONOTONIC, the same clock in
 * every process here) and its latency; the windows the starts fall in sort them afterwards.
 */
function startLoad(socket, name) {
  const child = spawn(process.execPath, [__filename, '--load', socket, `/v1/volumes/${name}`], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  const done = new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load generator exited ${code}`))));
  });
  return { pid: child.pid, stop: () => (child.stdin.end(), done) };
}


async function loadChild(socket, url) {
  const http = require('node:http');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const at = [];
  const ms = [];
  const failedAt = [];
  let stopped = false;
  process.stdin.resume();
  process.stdin.on('end', () => (stopped = true));
  const one = () =>
    new Promise((resolve) => {
      const s = process.hrtime.bigint();
      const req = http.get({ socketPath: socket, path: url, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) (at.push(Number(s) / 1e6), ms.push(Number(process.hrtime.bigint() - s) / 1e6));
          else failedAt.push(Number(s) / 1e6);
          resolve();
        });
      });
      req.on('error', () => {
        failedAt.push(Number(s) / 1e6);
        resolve();
      });
    });
  const start = process.hrtime.bigint();
  const pending = [];
  for (let i = 0; !stopped; i++) {
    const due = start + BigInt(Math.round((i * 1e9) / RATE));
    const wait = Number(due - process.hrtime.bigint()) / 1e6;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pending.push(one());
  }
  await Promise.all(pending);
  agent.destroy();
  process.stdout.write(JSON.stringify({ at, ms, failedAt }));
}

/** The requests that started inside the windows: their p50/p99, and each window's p99. */
function within(report, windows) {
  const inside = (t) => windows.findIndex(([from, to]) => t >= from && t < to);
  const per = windows.map(() => []);
  report.at.forEach((t, i) => {
    const w = inside(t);
    if (w >= 0) per[w].push(report.ms[i]);
  });
  const q = (xs, p) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))];
  const all = per.flat().sort((x, y) => x - y);
  for (const xs of per) xs.sort((x, y) => x - y);
  return {
    requests: all.length,
    errors: report.failedAt.filter((t) => inside(t) >= 0).length,
    p50Ms: q(all, 0.5),
    p99Ms: q(all, 0.99),
    maxMs: all[all.length - 1],
    windowP99Ms: per.map((xs) => q(xs, 0.99)),
  };
}

async function measure(n) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `qosd-bench-resp-${n}-`));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3G', 'tmpfs', root]);
  try {
    const { TimeSlice: Slice } = dist('util/time-slice.js');
    const { threadWaitMs: waitedIn } = dist('host/thread-clock.js');
    const { hostRoot } = dist('host/host-root.js');
    const threadWaitMs = (task) => waitedIn(hostRoot(), task);
    // Every slice measured here also tells its own time from the time its thread waited for a core.
    const TimeSlice = class extends Slice {
      constructor() {
        super(1, () => threadWaitMs());
      }
    };
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
    const metricsPort = await freePort();
    let onHead = () => {};
    const d = assemble(n, root, metricsPort, (s) => onHead(s), TimeSlice);
    const socket = path.join(root, 'qosd.sock');
    // As the daemon starts: recovery's pass writes the rules and watches every attached pod's
    // cgroups before the API serves (reconcile/recovery.ts).
    await d.repairRulesInThread();
    await d.listen(socket);
    const name = `v${Math.floor(n / 2)}`;
    // Then the rules are lost (emptied by another writer, which the watches see), and the first
    // periodic pass finds every rule missing and writes them all: its hold of this thread is
    // counted too. Then the passes measured below find nothing to do.
    clearRules(path.join(d.base, 'kubepods'));
    await sleep(1000);
    const repairing = new TimeSlice();
    const repaired = await d.periodic.pass(repairing);

    // No-op passes' CPU, alone, and their floor. The pass after the repairing one reads every
    // cgroup (the repairs' events were many, and the pods' watches have just begun): a full pass,
    // as the first after a start and every 30th are. The one after that is the steady pass: what
    // the watches vouch for is not read (enforce/rule-watch.ts). A pause before each lets this
    // thread take the watches' events in, as it does between passes 10 s apart.
    const cpuOf = async () => {
      await sleep(1000);
      const slice = new TimeSlice();
      const c0 = process.cpuUsage();
      const repairs = await d.periodic.pass(slice);
      const c = process.cpuUsage(c0);
      return { repairs, cpuMs: (c.user + c.system) / 1000, longestHoldMs: slice.longestMs, ...d.periodic.lastPass };
    };
    const fullPass = await cpuOf();
    const steadyPass = await cpuOf();
    const noopPassCpuMs = steadyPass.cpuMs;
    const repairs = steadyPass.repairs + fullPass.repairs;
    const passFloor = passFloorCpuMs(d.base);

    // The controller alone: its CPU per tick and share of a core at 250 ms. The process's CPU
    // (every thread) over 20 ticks at the controller's interval, less its CPU over as long with no
    // tick just before: a tick's garbage is collected by V8's helper threads after the tick has
    // returned (measured at 1,000: as much again as the tick's own span), and that is its cost too.
    // Warmed up first: the ticks measured are the controller's steady state, not the JIT compiling
    // its code on V8's helper threads during the first ticks (the worker has run none before).
    for (let i = 0; i < 40; i++) await d.periodic.tick();
    await sleep(1500);
    const cpuNow = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    const TICKS = 20;
    const idle0 = cpuNow();
    for (let i = 0; i < TICKS; i++) await sleep(250);
    const idleCpuMs = cpuNow() - idle0;
    const ticks = [];
    const ticking0 = cpuNow();
    for (let i = 0; i < TICKS; i++) {
      const s = new TimeSlice();
      const t0 = nowMs();
      const c = cpuNow();
      await d.periodic.tick(s);
      ticks.push({ cpu: cpuNow() - c, hold: s.longestMs, wall: nowMs() - t0 });
      await sleep(Math.max(0, 250 - (nowMs() - t0)));
    }
    const tickingCpuMs = cpuNow() - ticking0;
    const controllerCpuMsPerTick = Math.max(0, tickingCpuMs - idleCpuMs) / TICKS;
    const tickCpu = ticks.map((t) => t.cpu).sort((a, b) => a - b);
    const controllerCpuMsWithinTick = tickCpu[Math.floor(tickCpu.length / 2)];
    // The worker rests between its slices, so a tick takes longer than its CPU: it must end well
    // within its interval.
    const tickWall = ticks.map((t) => t.wall).sort((a, b) => a - b);
    const controllerWallMsPerTick = tickWall[Math.floor(tickWall.length / 2)];

    // Quiet and loaded windows alternate under one steady stream of requests; each request counts
    // for the window it started in. The jobs a loaded window starts are let finish before the
    // next quiet window opens (not counted), so none runs into it.
    const holds = { controller: 0, reconcile: 0, sweeps: 0, scrape: 0 };
    const holdRuns = { ...holds };
    const runs = { reconcile: 0, scrape: 0 };
    const track = (job, slice) => {
      holds[job] = Math.max(holds[job], slice.longestMs);
      holdRuns[job] = Math.max(holdRuns[job], slice.longestRunMs);
    };
    onHead = (s) => track('scrape', s);
    // Prometheus: a process of its own, started before the requests (forking this process, with
    // its store, holds its loop for tens of ms), scraping the metrics listener when told to. The
    // worker serves it; the registry's part is rendered on this thread, and that hold is counted.
    const scraper = startScraper(`http://127.0.0.1:${metricsPort}/metrics`);
    const gen = startLoad(socket, name);
    let counting = false;
    const delay = { p99: 0, max: 0 }; // the worst loaded window's
    let cpuMs = 0;
    let wallMs = 0;
    let scrapeBytes;
    // One loaded window: the jobs started, WINDOW_MS measured, the jobs let finish. Returns the window.
    const loadedWindow = async () => {
      let stop = false;
      const tracked = (job, s) => counting && track(job, s);
      let ticking = Promise.resolve();
      const controllerTimer = setInterval(() => {
        if (!LOADED.has('controller')) return;
        const s = new TimeSlice();
        ticking = d.periodic.tick(s).then(() => tracked('controller', s));
      }, 250);
      const passes = (async () => {
        while (!stop && LOADED.has('reconcile')) {
          const s1 = new TimeSlice();
          await d.periodic.pass(s1);
          tracked('reconcile', s1);
          const s2 = new TimeSlice();
          await d.periodic.sweeps(s2);
          tracked('sweeps', s2);
          if (counting) runs.reconcile++;
          await new Promise((r) => setImmediate(r));
        }
      })();
      const scraped = LOADED.has('scrape') ? scraper.scrape() : Promise.resolve(scrapeBytes); // one per window: every 2 s
      const l0 = nowMs();
      const cpu0 = process.cpuUsage();
      const monitor = monitorEventLoopDelay({ resolution: 1 });
      monitor.enable();
      await sleep(WINDOW_MS);
      monitor.disable();
      const cpu = process.cpuUsage(cpu0);
      const window = [l0, nowMs()];
      window.waited = { daemon: threadWaitMs(), generator: threadWaitMs(String(gen.pid)) };
      if (counting) {
        delay.p99 = Math.max(delay.p99, monitor.percentile(99) / 1e6);
        delay.max = Math.max(delay.max, monitor.max / 1e6);
        cpuMs += (cpu.user + cpu.system) / 1000;
        wallMs += window[1] - l0;
      }
      stop = true;
      clearInterval(controllerTimer);
      await passes;
      await ticking;
      scrapeBytes = await scraped;
      if (counting && LOADED.has('scrape')) runs.scrape++;
      return window;
    };
    // Warm-up, not counted: JIT and caches, quiet and loaded (the first scrapes and ticks).
    await sleep(2000);
    await loadedWindow();
    await sleep(1000);
    counting = true;
    const windows = { quiet: [], loaded: [] };
    // The share of each side's time the daemon's thread and the request generator waited for a core.
    const waits = { quiet: { daemon: 0, generator: 0 }, loaded: { daemon: 0, generator: 0 } };
    const waited = () => ({ daemon: threadWaitMs(), generator: threadWaitMs(String(gen.pid)) });
    const add = (side, from, to, ms) => {
      waits[side].daemon += (to.daemon - from.daemon) / ms / WINDOWS;
      waits[side].generator += (to.generator - from.generator) / ms / WINDOWS;
    };
    for (let w = 0; w < WINDOWS; w++) {
      const q0 = nowMs();
      const qw = waited();
      await sleep(WINDOW_MS);
      windows.quiet.push([q0, nowMs()]);
      add('quiet', qw, waited(), nowMs() - q0);
      const lw = waited();
      const l = await loadedWindow();
      windows.loaded.push(l);
      add('loaded', lw, l.waited, l[1] - l[0]);
    }
    const report = await gen.stop();
    await scraper.stop();
    const quiet = within(report, windows.quiet);
    const loaded = within(report, windows.loaded);
    await d.app.close();
    await d.periodic.close();
    d.store.close();
    return {
      attachedVolumes: n,
      ratePerSecond: RATE,
      windows: WINDOWS,
      windowSeconds: WINDOW_MS / 1000,
      quiet,
      loaded,
      p99Ratio: loaded.p99Ms / quiet.p99Ms,
      longestHoldMs: holds,
      longestHoldWithoutWaitingMs: holdRuns,
      eventLoopDelayMs: delay,
      loadedJobs: [...LOADED],
      loadedRuns: runs,
      waitingForACoreShare: waits,
      scrapeBytes,
      daemonCoreShareLoaded: cpuMs / wallMs,
      repairingPass: { repairs: repaired, longestHoldMs: repairing.longestMs, longestHoldWithoutWaitingMs: repairing.longestRunMs },
      noopPassCpuMs,
      noopPassVouched: steadyPass.vouched,
      noopPassCgroups: steadyPass.cgroups,
      fullNoopPassCpuMs: fullPass.cpuMs,
      fullNoopPassVouched: fullPass.vouched,
      fullNoopPassLongestHoldMs: fullPass.longestHoldMs,
      noopPassFloorCpuMs: passFloor,
      noopPassRepairs: repairs,
      noopPassLongestHoldMs: steadyPass.longestHoldMs,
      controllerCpuMsPerTick,
      controllerCpuMsWithinTick, // the median of the CPU spent while a tick ran, its GC after it not counted
      controllerWallMsPerTick, // the median of a tick's wall time, from asking the worker to the limits applied
      controllerCoreShareAt250ms: controllerCpuMsPerTick / 250,
      controllerLongestHoldMs: Math.max(...ticks.map((t) => t.hold)),
    };
  } finally {
    execFileSync('umount', ['-l', root]);
    fs.rmdirSync(root);
  }
}

async function main() {
  const results = [];
  for (const n of (process.env.BENCH_SIZES || "1000,10000").split(",").map(Number)) {
    const r = await measure(n);
    results.push(r);
    const h = r.longestHoldMs;
    console.log(
      `${n} attached guaranteed volumes: GET /v1/volumes/:name at ${RATE}/s p99 ${r.quiet.p99Ms.toFixed(2)} ms quiet → ${r.loaded.p99Ms.toFixed(2)} ms with controller + reconcile + sweeps + scrape running (${r.p99Ratio.toFixed(2)}×; p50 ${r.quiet.p50Ms.toFixed(2)} → ${r.loaded.p50Ms.toFixed(2)} ms)\n` +
        `  longest hold of the event loop (wall / without waiting for a core): ${Object.keys(h).map((j) => `${j} ${h[j].toFixed(1)} / ${r.longestHoldWithoutWaitingMs[j].toFixed(1)} ms`).join(', ')}; timer delay p99 ${r.eventLoopDelayMs.p99.toFixed(1)} ms, max ${r.eventLoopDelayMs.max.toFixed(1)} ms\n` +
        `  p99 by window: quiet ${r.quiet.windowP99Ms.map((x) => x.toFixed(1)).join(', ')} ms; loaded ${r.loaded.windowP99Ms.map((x) => x.toFixed(1)).join(', ')} ms (${r.quiet.requests} and ${r.loaded.requests} requests, ${r.quiet.errors + r.loaded.errors} errors)\n` +
        `  waiting for a core: the daemon's thread ${(r.waitingForACoreShare.quiet.daemon * 100).toFixed(1)}% of the quiet windows, ${(r.waitingForACoreShare.loaded.daemon * 100).toFixed(1)}% of the loaded; the request generator ${(r.waitingForACoreShare.quiet.generator * 100).toFixed(1)}% and ${(r.waitingForACoreShare.loaded.generator * 100).toFixed(1)}%\n` +
        `  a pass writing every rule (${r.repairingPass.repairs} repairs) held this thread at most ${r.repairingPass.longestHoldMs.toFixed(1)} / ${r.repairingPass.longestHoldWithoutWaitingMs.toFixed(1)} ms\n` +
        `  no-op reconcile pass ${r.noopPassCpuMs.toFixed(0)} ms CPU (${r.noopPassVouched} of ${r.noopPassCgroups} cgroups vouched for by their watches, not read); reading every cgroup ${r.fullNoopPassCpuMs.toFixed(0)} ms (holding this thread at most ${r.noopPassLongestHoldMs.toFixed(1)} and ${r.fullNoopPassLongestHoldMs.toFixed(1)} ms; ${r.noopPassRepairs} repairs in both; the floor of that, listing and reading the same files: ${r.noopPassFloorCpuMs.toFixed(0)} ms)\n  controller ${r.controllerCpuMsPerTick.toFixed(2)} ms CPU per tick with its garbage collection (${r.controllerCpuMsWithinTick.toFixed(2)} ms while the tick ran, ${r.controllerWallMsPerTick.toFixed(0)} ms wall) = ${(r.controllerCoreShareAt250ms * 100).toFixed(2)}% of a core at 250 ms`,
    );
  }
  const out = path.join(REPO, 'bench', 'results', 'responsiveness.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ when: new Date().toISOString(), host: os.hostname(), cpus: os.cpus().length, results }, null, 2));
  console.log(`wrote ${path.relative(REPO, out)}`);
}

const fail = (err) => {
  console.error(err);
  process.exit(1);
};
/** The Prometheus stand-in: a process that GETs the metrics listener once per line on its stdin and answers each with the bytes it got. */
function startScraper(url) {
  const child = spawn(process.execPath, [__filename, '--scrape', url], { stdio: ['pipe', 'pipe', 'inherit'] });
  const answers = [];
  let buffered = '';
  child.stdout.on('data', (c) => {
    buffered += c;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      answers.shift()?.(Number(buffered.slice(0, nl)));
      buffered = buffered.slice(nl + 1);
    }
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return {
    scrape: () => new Promise((resolve) => (answers.push(resolve), child.stdin.write('scrape\n'))),
    stop: () => (child.stdin.end(), exited),
  };
}

function scrapeChild(url) {
  const http = require('node:http');
  const readline = require('node:readline');
  readline.createInterface({ input: process.stdin }).on('line', () =>
    http.get(url, (res) => {
      let n = 0;
      res.on('data', (c) => (n += c.length));
      res.on('end', () => process.stdout.write(`${res.statusCode === 200 ? n : -1}\n`));
    }).on('error', fail),
  );
}

if (process.argv[2] === '--load') loadChild(process.argv[3], process.argv[4]).catch(fail);
else if (process.argv[2] === '--scrape') scrapeChild(process.argv[3]);
else main().catch(fail);
