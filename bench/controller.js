#!/usr/bin/env node
// Controller tick benchmark (issue 12): the CPU one control step costs with 1,000 and 10,000
// attached volumes that carry guarantees, measured in the same run two ways:
//   - baseline: how the tick sampled before, one pod-cgroup stats read (v1 io_serviced and
//     io_service_bytes, recursive) plus one device stat read per volume, on files laid out under
//     tmpfs as cgroup v1 and sysfs lay them out;
//   - now: the controller's own tick(), which samples every device from one /proc/diskstats
//     (here a file of N lines in the kernel's format) and runs the law.
// Prints per-tick CPU (user+system, median of 40 ticks), the share of a core at intervalMs 250,
// and the longest time a tick held the event loop without yielding (it yields between steps). Writes
// bench/results/controller.json. Run after `npm run build`; needs no root.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');

const REPO = path.resolve(__dirname, '..');
const dist = (p) => require(path.join(REPO, 'dist', p));
const TICKS = 40;

function quiet() {
  return { info() {}, warn() {}, error() {}, debug() {}, trace() {}, isLevelEnabled() { return false; }, child() { return this; } };
}

function cpuMs(fn) {
  const c = process.cpuUsage();
  const t = process.hrtime.bigint();
  fn();
  const d = process.cpuUsage(c);
  return { cpu: (d.user + d.system) / 1000, wall: Number(process.hrtime.bigint() - t) / 1e6 };
}

/** One awaited tick: its CPU, and the longest stretch it held the event loop without yielding. */
async function tickCost(controller, TimeSlice) {
  const slice = new TimeSlice();
  const c = process.cpuUsage();
  await controller.tick(slice);
  const d = process.cpuUsage(c);
  return { cpu: (d.user + d.system) / 1000, hold: slice.longestMs };
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function node(n, dir) {
  const { Store } = dist('store/store.js');
  const store = Store.open(':memory:');
  const t = new Date().toISOString();
  const devices = [];
  store.tx(() => {
    for (let i = 0; i < n; i++) {
      const uid = crypto.randomUUID();
      const pod = path.join(dir, 'blkio', 'kubepods', 'burstable', `pod${uid}`);
      const dev = `7:${i}`;
      const name = `v${i}`;
      store.volumes.insert({
        name, pool: 'default', sizeBytes: 1 << 30, fsType: 'ext4', class: 'best-effort', ephemeral: false, state: 'ready', formatted: true,
        backing: `/x/${name}.img`, device: `/dev/loop${i}`, deviceNumber: dev, qos: { min: { readIops: 10 }, max: {} }, overrides: { min: { readIops: 10 }, max: {} },
      }, t);
      const a = store.attachments.insert({ volume: name, podUid: uid, target: `/k/${i}`, readOnly: false, state: 'attached', source: 'flex' }, t);
      store.attachments.update(a.id, { cgroupVersion: 'v1', podCgroup: pod, device: dev }, t);
      devices.push({ dev, pod, i });
    }
  });
  return { store, devices };
}

function layFiles(dir, devices, round) {
  const lines = [];
  for (const { dev, pod, i } of devices) {
    const ops = 1000 * round + i;
    fs.mkdirSync(pod, { recursive: true });
    fs.writeFileSync(path.join(pod, 'blkio.throttle.io_serviced_recursive'), `${dev} Read ${ops}\n${dev} Write ${ops}\nTotal ${2 * ops}\n`);
    fs.writeFileSync(path.join(pod, 'blkio.throttle.io_service_bytes_recursive'), `${dev} Read ${ops * 4096}\n${dev} Write ${ops * 4096}\nTotal ${8192 * ops}\n`);
    const statDir = path.join(dir, 'sys', 'dev', 'block', dev);
    fs.mkdirSync(statDir, { recursive: true });
    fs.writeFileSync(path.join(statDir, 'stat'), `${ops} 0 ${ops * 8} 10 ${ops} 0 ${ops * 8} 10 0 20 ${ops} 0 0 0 0 0 0\n`);
    const [maj, min] = dev.split(':');
    lines.push(`   ${maj}    ${min} loop${min} ${ops} 0 ${ops * 8} 10 ${ops} 0 ${ops * 8} 10 0 20 ${ops} 0 0 0 0 0 0`);
  }
  fs.mkdirSync(path.join(dir, 'proc'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'proc', 'diskstats'), `${lines.join('\n')}\n`);
}

async function benchSize(n) {
  const dir = fs.mkdtempSync(path.join(process.env.BENCH_TMP || '/dev/shm', `qosd-bench-ctl-${n}-`));
  try {
    const { store, devices } = node(n, dir);
    layFiles(dir, devices, 1);
    const { V1Blkio } = dist('host/cgroup-v1.js');
    const v1 = new V1Blkio(path.join(dir, 'blkio'));
    const { timeInQueueMs } = dist('host/disk-queue.js');
    const { readDiskstats } = dist('host/diskstats.js');
    const { TimeSlice } = dist('util/time-slice.js');
    const { Controller, ControlledLimits } = dist('controller/controller.js');
    const { Metrics } = dist('metrics/registry.js');
    const { hostRoot } = dist('host/host-root.js');
    const root = hostRoot({ proc: path.join(dir, 'proc'), sys: path.join(dir, 'sys') });

    // Baseline: the per-volume reads the tick made before (the law and the store work excluded).
    const baseline = [];
    for (let k = 0; k < TICKS; k++) {
      baseline.push(cpuMs(() => {
        for (const { dev, pod } of devices) {
          v1.podIo(pod, dev);
          timeInQueueMs(root, dev);
        }
      }));
    }

    const policy = new ControlledLimits();
    const pools = { capacities: () => new Map([['default', { readIops: 10 * n * 100, writeIops: 10 * n * 100, readBps: 1e12, writeBps: 1e12 }]]) };
    const enforcer = { apply: () => ({ attachment: undefined, writes: 0 }) };
    const controller = new Controller({ store, enforcer, pools, policy, metrics: new Metrics(), log: quiet(), intervalMs: 250, root });
    await controller.tick(); // first sample: nothing to compare yet
    layFiles(dir, devices, 2);
    const now = [];
    for (let k = 0; k < TICKS; k++) now.push(await tickCost(controller, TimeSlice));
    // The sampling alone, for the comparison with the baseline's sampling.
    const sampling = [];
    for (let k = 0; k < TICKS; k++) sampling.push(cpuMs(() => readDiskstats(root)));
    store.close();
    const r = {
      volumes: n,
      baselineSamplingCpuMs: median(baseline.map((x) => x.cpu)),
      nowSamplingCpuMs: median(sampling.map((x) => x.cpu)),
      nowTickCpuMs: median(now.map((x) => x.cpu)),
      nowTickLongestHoldMs: Math.max(...now.map((x) => x.hold)),
    };
    r.samplingRatio = r.nowSamplingCpuMs / r.baselineSamplingCpuMs;
    r.coreShareAt250ms = r.nowTickCpuMs / 250;
    return r;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const results = [];
  for (const n of [1000, 10000]) results.push(await benchSize(n));
  for (const r of results) {
    console.log(`controller tick, ${r.volumes} attached guaranteed volumes: sampling ${r.baselineSamplingCpuMs.toFixed(2)} ms CPU per tick before (per-volume cgroup + stat files) → ${r.nowSamplingCpuMs.toFixed(2)} ms now (one diskstats read), ${(r.samplingRatio * 100).toFixed(1)}%; whole tick now ${r.nowTickCpuMs.toFixed(2)} ms CPU (${(r.coreShareAt250ms * 100).toFixed(2)}% of a core at 250 ms), longest hold of the event loop ${r.nowTickLongestHoldMs.toFixed(1)} ms`);
  }
  const out = path.join(REPO, 'bench', 'results', 'controller.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ when: new Date().toISOString(), host: os.hostname(), ticks: TICKS, results }, null, 2));
  console.log(`wrote ${path.relative(REPO, out)}`);
}

main();
