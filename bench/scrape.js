// Scrape cost with 1,000 attached volumes (issue 5): the time of one scrape (collect kernel stats
// + render) and the longest the event loop is held during it, which bounds how long an API
// request can wait because of a scrape. Kernel stat files are laid out under tmpfs as the v1
// blkio controller has them, with a diskstats line per volume's device; the store holds 1,000
// volumes attached to 1,000 pods.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const { monitorEventLoopDelay } = require('node:perf_hooks');

const REPO = path.resolve(__dirname, '..');
const dist = (p) => require(path.join(REPO, 'dist', p));

async function benchScrape(n = 1000, runs = 10) {
  const { Store } = dist('store/store.js');
  const { Metrics } = dist('metrics/registry.js');
  const { MetricsCollector, readHere } = dist('scrape/collect.js');
  const { PoolService } = dist('service/pools.js');
  const mp = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-bench-scrape-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1G', 'tmpfs', mp]);
  try {
    const store = Store.open(':memory:');
    const t = new Date().toISOString();
    const disk = [];
    store.tx(() => {
      for (let i = 0; i < n; i++) {
        const dev = `7:${i}`;
        disk.push(`   7 ${String(i).padStart(7)} loop${i} ${i * 10} 0 ${i * 80} ${i * 3} ${i} 0 ${i * 8} ${i * 2} 0 ${i * 4} ${i * 5} 0 0 0 0 0 0`);
        const pod = path.join(mp, 'blkio/kubepods/burstable', `pod${crypto.randomUUID()}`);
        fs.mkdirSync(pod, { recursive: true });
        fs.writeFileSync(path.join(pod, 'blkio.throttle.io_serviced_recursive'), `${dev} Read ${i * 10}\n${dev} Write ${i}\n${dev} Sync 0\n${dev} Async 0\n${dev} Discard 0\n${dev} Total ${i * 11}\nTotal ${i * 11}\n`);
        fs.writeFileSync(path.join(pod, 'blkio.throttle.io_service_bytes_recursive'), `${dev} Read ${i * 40960}\n${dev} Write ${i * 4096}\n${dev} Total ${i * 45056}\nTotal ${i * 45056}\n`);
        const backing = path.join(mp, `v${i}.img`);
        fs.writeFileSync(backing, '');
        store.volumes.insert({
          name: `v${i}`, pool: 'default', sizeBytes: 1 << 30, fsType: 'ext4', class: 'best-effort', ephemeral: false, state: 'ready', formatted: true,
          backing, device: `/dev/loop${i}`, deviceNumber: dev,
          qos: { min: { readIops: 100, writeBps: 1e6 }, max: { readIops: 1000, writeIops: 500, readBps: 1e8, writeBps: 5e7 } }, overrides: { min: {}, max: {} },
        }, t);
        // The mount target: a directory here (statfs works on it as on a mounted volume).
        const target = path.join(mp, 'targets', String(i));
        fs.mkdirSync(target, { recursive: true });
        const a = store.attachments.insert({ volume: `v${i}`, podUid: crypto.randomUUID(), target, readOnly: false, state: 'attached', source: 'flex' }, t);
        store.attachments.update(a.id, { cgroupVersion: 'v1', podCgroup: pod, device: dev }, t);
      }
    });
    fs.mkdirSync(path.join(mp, 'proc'));
    fs.writeFileSync(path.join(mp, 'proc', 'diskstats'), `${disk.join('\n')}\n`);
    const root = dist('host/host-root.js').hostRoot({ proc: path.join(mp, 'proc') });
    const metrics = new Metrics();
    const pools = new PoolService(store, { pools: [{ name: 'default', backend: 'file', path: mp, capacity: { readIops: 1e6, writeIops: 1e6, readBps: 1e10, writeBps: 1e10 } }], headroom: 0.1 });
    const { blkioFor } = dist('host/blkio.js');
    const collector = new MetricsCollector(metrics, readHere({ store, pools, root, blkio: blkioFor({ version: 'v1', base: path.join(mp, 'blkio') }) }));
    const scrapes = [];
    const held = [];
    let bytes = 0;
    let series = 0;
    for (let r = 0; r < runs; r++) {
      const h = monitorEventLoopDelay({ resolution: 1 });
      h.enable();
      // A 1 ms ticker stands in for API requests arriving while the scrape runs.
      let maxGap = 0;
      let last = process.hrtime.bigint();
      const ticker = setInterval(() => {
        const now = process.hrtime.bigint();
        maxGap = Math.max(maxGap, Number(now - last) / 1e6);
        last = now;
      }, 1);
      await new Promise((res) => setTimeout(res, 5));
      last = process.hrtime.bigint();
      const s = process.hrtime.bigint();
      const text = Buffer.concat(await collector.scrape()).toString();
      scrapes.push(Number(process.hrtime.bigint() - s) / 1e6);
      clearInterval(ticker);
      h.disable();
      held.push(Math.max(maxGap, h.max / 1e6));
      bytes = text.length;
      series = text.split('\n').filter((l) => l && !l.startsWith('#')).length;
    }
    store.close();
    scrapes.sort((a, b) => a - b);
    held.sort((a, b) => a - b);
    return {
      attachedVolumes: n,
      series,
      bytes,
      scrapeMsMedian: scrapes[Math.floor(runs / 2)],
      scrapeMsMax: scrapes[runs - 1],
      loopHeldMsMedian: held[Math.floor(runs / 2)],
      loopHeldMsMax: held[runs - 1],
      target: 'scrape under 100 ms; no API request held over 20 ms',
    };
  } finally {
    execFileSync('umount', [mp]);
    fs.rmdirSync(mp);
  }
}

module.exports = { benchScrape };
