#!/usr/bin/env node
// qosd benchmarks (run as root after `npm run build`): figures are printed and written to
// bench/results/latest.json. Every figure is paired with a baseline measured in the same run, as
// this machine is shared and noisy:
//   1. flex round trip: median wall time of the installed driver's `mount` + `unmount` of an
//      existing volume, called as kubelet calls it, against a bare `node -e 0`;
//   2. API throughput: GET /v1/volumes/:name over the unix socket (autocannon);
//   3. leaf delay: mkdir of a new container cgroup under an attached pod → its blkio rule is
//      visible, p50/p99 (cgroup v1);
//   4. reconcile: one full pass over 1,000 and 10,000 attachments on a tmpfs cgroup tree, with
//      everything and with nothing to repair; no-op passes on the real cgroup v1 hierarchy, reading
//      every cgroup and steady (leaf watches vouching); start-up to serving with 1,000 volumes
//      (bench/reconcile.js);
//   5. scrape: one /metrics scrape with 1,000 attached volumes, and the longest the event loop
//      is held meanwhile (bench/scrape.js). BENCH_ONLY=flex|reconcile|scrape runs one part.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const autocannon = require('autocannon');
const { benchReconcile, benchStartup } = require('./reconcile.js');
const { benchScrape } = require('./scrape.js');

const REPO = path.resolve(__dirname, '..');
const QOSD = path.join(REPO, 'dist/cli/qosd.js');
const QOSCTL = path.join(REPO, 'dist/cli/qosctl.js');
const BLKIO = '/sys/fs/cgroup/blkio';
const ITER = Number(process.env.BENCH_ITER || 30);

if (process.getuid() !== 0) {
  console.error('bench: needs root (loop devices, mounts, cgroups)');
  process.exit(2);
}

const median = (xs) => quantile(xs, 0.5);
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i];
}
const ms = (ns) => Number(ns) / 1e6;

function timed(cmd, args, opts = {}) {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  const took = ms(process.hrtime.bigint() - t);
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stdout}${r.stderr}`);
  return { took, out: String(r.stdout) };
}

async function waitSocket(socket) {
  for (let i = 0; i < 300; i++) {
    if (fs.existsSync(socket)) {
      const r = spawnSync(process.execPath, [QOSCTL, '--socket', socket, 'status'], { stdio: 'ignore' });
      if (r.status === 0) return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('qosd did not start');
}

async function main() {
  const only = process.env.BENCH_ONLY;
  const results = { date: new Date().toISOString(), host: { cpus: os.cpus().length, node: process.version, kernel: os.release() }, iterations: ITER };
  if (!only || only === 'flex') await benchFlexApiLeaf(results);
  if (!only || only === 'reconcile') {
    results.reconcile = await benchReconcile([1000, 10000]);
    for (const p of results.reconcile.passes) {
      console.log(`reconcile pass over ${p.attachments} attachments (${p.cgroups} cgroups): everything to repair ${p.everythingToRepairMs.toFixed(0)} ms (${p.repairsWritten} repairs), nothing to repair ${p.nothingToRepairMs.toFixed(0)} ms wall, ${p.nothingToRepairCpuMs.toFixed(0)} ms CPU; longest hold of the event loop ${p.longestHoldMs.toFixed(1)} ms`);
    }
    for (const p of results.reconcile.onCgroupfs) {
      console.log(`no-op pass over ${p.attachments} attached pods on the real cgroup v1 hierarchy: reading every cgroup ${p.fullPass.cpuMs.toFixed(0)} ms CPU (without watches ${p.passWithoutWatchesCpuMs.toFixed(0)} ms), steady ${p.steadyPass.cpuMs.toFixed(0)} ms CPU (${p.steadyPass.vouched} of ${p.steadyPass.cgroups} cgroups vouched for by their watches); ${p.watchCpuMs.toFixed(0)} ms CPU to watch them all`);
    }
    results.startup = await benchStartup(1000);
    console.log(`start-up to serving with ${results.startup.volumes} volumes: ${results.startup.startToServingMs.toFixed(0)} ms (node -e 0: ${results.startup.nodeBareMs.toFixed(0)} ms)`);
  }
  if (!only || only === 'scrape') {
    results.scrape = await benchScrape(1000, 10);
    const sc = results.scrape;
    console.log(`scrape with ${sc.attachedVolumes} attached volumes (${sc.series} series): median ${sc.scrapeMsMedian.toFixed(0)} ms (max ${sc.scrapeMsMax.toFixed(0)}); event loop held at most ${sc.loopHeldMsMax.toFixed(1)} ms (median ${sc.loopHeldMsMedian.toFixed(1)})`);
  }
  const out = path.join(REPO, 'bench/results');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), path.join(out, 'latest.json'))}`);
}

async function benchFlexApiLeaf(results) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-bench-'));
  const id = path.basename(dir).replace(/[^a-z0-9]/gi, '').toLowerCase();
  const cgroupRoot = `/${id}`;
  const socket = path.join(dir, 'qosd.sock');
  const kubeletRoot = path.join(dir, 'kubelet');
  fs.mkdirSync(path.join(kubeletRoot, 'pods'), { recursive: true });
  const config = path.join(dir, 'config.yaml');
  fs.writeFileSync(config, [
    `socket: ${socket}`, `stateDir: ${dir}/state`, 'logLevel: warn', 'metrics: { listen: "off" }',
    `kubelet: { rootDir: ${kubeletRoot}, cgroupRoot: ${cgroupRoot}, cgroupDriver: cgroupfs }`,
    `pools:\n  - { name: default, backend: file, path: ${dir}/volumes, create: true }`, 'defaults: { size: 64Mi }',
  ].join('\n'));
  const daemon = spawn(process.execPath, [QOSD, '--config', config], { stdio: ['ignore', 'inherit', 'inherit'] });
  const cleanup = [];
  try {
    await waitSocket(socket);
    const pluginDir = path.join(dir, 'plugins');
    execFileSync(process.execPath, [QOSCTL, '--socket', socket, 'install-flex', '--plugin-dir', pluginDir]);
    const driver = path.join(pluginDir, 'qosd~nvme/nvme');

    // --- 1. flex mount + unmount of an existing volume vs node -e 0 --------------------------
    const podUid = crypto.randomUUID();
    const podCg = path.join(BLKIO, cgroupRoot, 'kubepods/burstable', `pod${podUid}`);
    fs.mkdirSync(podCg, { recursive: true });
    fs.mkdirSync(path.join(podCg, crypto.randomBytes(32).toString('hex')));
    const target = `${kubeletRoot}/pods/${podUid}/volumes/qosd~nvme/bench`;
    const opts = JSON.stringify({ 'kubernetes.io/fsType': '', 'kubernetes.io/pod.uid': podUid, 'kubernetes.io/pvOrVolumeName': 'bench', 'kubernetes.io/readwrite': 'rw', maxReadIops: '5000' });
    const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
    fs.mkdirSync(target, { recursive: true });
    const first = timed(driver, ['mount', target, opts], { env, cwd: '/' }); // creates + formats: not counted
    if (!first.out.includes('"Success"')) throw new Error(`first mount failed: ${first.out}`);
    timed(driver, ['unmount', target], { env, cwd: '/' });
    const base = [];
    const mount = [];
    const unmount = [];
    const roundTrip = [];
    for (let i = 0; i < ITER; i++) {
      base.push(timed(process.execPath, ['-e', '0'], { env, cwd: '/' }).took);
      const m = timed(driver, ['mount', target, opts], { env, cwd: '/' });
      if (!m.out.includes('"Success"')) throw new Error(`mount failed: ${m.out}`);
      const u = timed(driver, ['unmount', target], { env, cwd: '/' });
      if (!u.out.includes('"Success"')) throw new Error(`unmount failed: ${u.out}`);
      mount.push(m.took);
      unmount.push(u.took);
      roundTrip.push(m.took + u.took);
    }
    const init = [];
    for (let i = 0; i < ITER; i++) init.push(timed(driver, ['init'], { env, cwd: '/' }).took);
    results.flex = {
      nodeBareMs: median(base),
      initMs: median(init),
      mountMs: median(mount),
      unmountMs: median(unmount),
      mountPlusUnmountMs: median(roundTrip),
      ratioToBareNode: median(roundTrip) / median(base),
      target: 'mount + unmount within 3x of node -e 0',
    };
    console.log(`flex: node -e 0 ${median(base).toFixed(1)} ms | init ${median(init).toFixed(1)} ms | mount ${median(mount).toFixed(1)} ms + unmount ${median(unmount).toFixed(1)} ms = ${median(roundTrip).toFixed(1)} ms → ${results.flex.ratioToBareNode.toFixed(2)}x bare node`);

    // --- 2. API requests per second -------------------------------------------------------
    fs.mkdirSync(target, { recursive: true });
    timed(driver, ['mount', target, opts], { env, cwd: '/' });
    // One second of warm-up first, so the figure is the JIT-compiled steady state.
    await autocannon({ url: 'http://localhost/v1/volumes/bench', socketPath: socket, connections: 10, duration: 1 });
    const ac = await autocannon({ url: 'http://localhost/v1/volumes/bench', socketPath: socket, connections: 10, duration: Number(process.env.BENCH_API_SECONDS || 5) });
    results.api = {
      route: 'GET /v1/volumes/:name',
      requestsPerSecond: ac.requests.average,
      latencyP50Ms: ac.latency.p50,
      latencyP99Ms: ac.latency.p99,
      non2xx: ac.non2xx,
      errors: ac.errors,
      target: 'above 5000 requests/s',
    };
    console.log(`api: GET /v1/volumes/:name ${Math.round(ac.requests.average)} req/s (p50 ${ac.latency.p50} ms, p99 ${ac.latency.p99} ms, non-2xx ${ac.non2xx}, errors ${ac.errors})`);

    // --- 3. new container cgroup → rules written ------------------------------------------
    const vol = JSON.parse(execFileSync(process.execPath, [QOSCTL, '--socket', socket, '-o', 'json', 'volume', 'show', 'bench'], { encoding: 'utf8' }));
    const want = `${vol.deviceNumber} 5000`;
    const delays = [];
    for (let i = 0; i < Math.max(ITER * 5, 100); i++) {
      const leaf = path.join(podCg, crypto.randomBytes(32).toString('hex'));
      const t = process.hrtime.bigint();
      fs.mkdirSync(leaf);
      const file = path.join(leaf, 'blkio.throttle.read_iops_device');
      let seen = false;
      while (ms(process.hrtime.bigint() - t) < 2000) {
        if (fs.readFileSync(file, 'utf8').trim() === want) { seen = true; break; }
        await new Promise((r) => setImmediate(r));
      }
      delays.push(seen ? ms(process.hrtime.bigint() - t) : Infinity);
      fs.rmdirSync(leaf);
    }
    results.leafDelay = {
      samples: delays.length,
      missed: delays.filter((d) => d === Infinity).length,
      p50Ms: quantile(delays, 0.5),
      p99Ms: quantile(delays, 0.99),
      maxMs: Math.max(...delays),
      target: 'p99 under 100 ms',
    };
    console.log(`leaf delay: p50 ${results.leafDelay.p50Ms.toFixed(2)} ms, p99 ${results.leafDelay.p99Ms.toFixed(2)} ms, max ${results.leafDelay.maxMs.toFixed(2)} ms over ${delays.length} new cgroups (missed ${results.leafDelay.missed})`);

    timed(driver, ['unmount', target], { env, cwd: '/' });
    cleanup.push(() => execFileSync(process.execPath, [QOSCTL, '--socket', socket, 'volume', 'delete', 'bench']));
  } finally {
    for (const c of cleanup) try { c(); } catch (e) { console.error(`cleanup: ${e.message}`); }
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    spawnSync('sh', ['-c', `find ${BLKIO}${cgroupRoot} -depth -type d -exec rmdir {} \\; 2>/dev/null`]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
