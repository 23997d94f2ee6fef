// The periodic jobs across the thread boundary, without root: the real worker thread (the built
// dist/periodic/worker.js, as the daemon runs it) over a fixture cgroup v1 tree, a state file and
// fixture /proc files, and this thread confirming and writing what it finds.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { blkioFor } from '../../src/host/blkio';
import { Enforcer } from '../../src/enforce/enforcer';
import { ControlledLimits } from '../../src/controller/controller';
import { Metrics } from '../../src/metrics/registry';
import { MetricsCollector } from '../../src/scrape/collect';
import { AttachmentService } from '../../src/service/attachments';
import { KeyedLock } from '../../src/service/locks';
import { RuleRepair } from '../../src/reconcile/rule-repair';
import { MountRepair } from '../../src/reconcile/mount-repair';
import { StoreView } from '../../src/store/view';
import type { VolumeService } from '../../src/service/volumes';
import { PeriodicJobs } from '../../src/periodic/jobs';
import { hostRoot } from '../../src/host/host-root';
import { Store, now } from '../../src/store/store';
import { FIXTURE_PODS, addAttachment, addVolume, copyTree, quietLog } from '../helpers/fixtures';

const WORKER = path.resolve(__dirname, '../../dist/periodic/worker.js');
const V1_RIOPS = 'blkio.throttle.read_iops_device';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function node(opts: { mounted: boolean; metricsPort?: number }) {
  const tree = copyTree('v1-cgroupfs');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-periodic-'));
  cleanups.push(() => {
    fs.rmSync(tree, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const base = path.join(tree, 'blkio');
  const layout = { version: 'v1' as const, base };
  const blkio = blkioFor(layout);
  const dbFile = path.join(dir, 'qosd.db');
  const store = Store.open(dbFile);
  const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', min: { readIops: 10 }, max: { readIops: 200 } });
  const pod = `${base}/kubepods/burstable/pod${FIXTURE_PODS.burstable}`;
  const att = addAttachment(store, vol, FIXTURE_PODS.burstable, pod, 'v1');
  // The disk counters and the mount table as <proc>/diskstats and <proc>/self/mountinfo.
  const root = hostRoot({ proc: path.join(dir, 'proc') });
  fs.mkdirSync(path.join(root.proc, 'self'), { recursive: true });
  const diskstats = path.join(root.proc, 'diskstats');
  fs.writeFileSync(diskstats, '   7       5 loop5 100 0 800 10 0 0 0 0 0 20 10 0 0 0 0 0 0\n');
  const mountinfo = path.join(root.proc, 'self', 'mountinfo');
  fs.writeFileSync(mountinfo, opts.mounted ? `100 1 7:5 / ${att.target} rw,relatime shared:1 - ext4 /dev/loop5 rw\n` : '');
  const log = quietLog();
  const metrics = new Metrics();
  const policy = new ControlledLimits();
  const kubelet = { cgroupRoot: '/', cgroupDriver: 'cgroupfs' as const };
  const enforcer = new Enforcer({ blkio, kubelet, root, store, log, metrics, policy });
  const locks = new KeyedLock();
  const volumes = undefined as unknown as VolumeService;
  const attachments = new AttachmentService({ store, pools: new Map(), volumes, enforcer, locks, log, root });
  const ruleRepair = new RuleRepair({ enforcer, metrics, log });
  const mountRepair = new MountRepair({
    store, view: new StoreView(store), volumes, attachments, enforcer, locks, log, metrics,
    root,
  });
  const pools = [{ name: 'default', backend: 'file' as const, path: dir, create: true, overcommit: 1, capacity: { readIops: 1000, writeIops: 1000, readBps: 1e9, writeBps: 1e9 } }];
  let collector: MetricsCollector | undefined;
  const jobs = new PeriodicJobs({
    setup: {
      dbFile, layout, kubelet, pools, headroom: 0.1, controller: true, logLevel: 'silent', metricsContentType: metrics.contentType,
      root,
      ...(opts.metricsPort ? { metricsListen: { host: '127.0.0.1', port: opts.metricsPort } } : {}),
    },
    store, enforcer, ruleRepair, mountRepair, controlled: policy, metrics, log, reconcileIntervalMs: 60_000, controllerIntervalMs: 60_000,
    head: (reading) => collector!.head(reading),
    workerFile: WORKER,
  });
  collector = new MetricsCollector(metrics, (slice) => jobs.scrapeReading(slice));
  cleanups.push(async () => {
    await jobs.close();
    enforcer.close();
    store.close();
  });
  const rules = () => [pod, ...fs.readdirSync(pod, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(pod, e.name))].map((d) => fs.readFileSync(path.join(d, V1_RIOPS), 'utf8'));
  return { store, jobs, collector, rules, vol, att, metrics, diskstats, pod };
}

describe('periodic jobs: found in the worker thread, written on the daemon\'s', () => {
  it('a pass the worker found is written here; a change this thread commits is seen by the worker\'s next pass', async () => {
    const { store, jobs, rules, vol } = await node({ mounted: true });
    expect(await jobs.pass()).toBeGreaterThan(0);
    expect(rules().every((r) => r === '7:5 200')).toBe(true);
    expect(await jobs.pass()).toBe(0);
    // Written on this thread's connection: the worker reads it through its own (WAL, data_version).
    store.volumes.update(vol.name, { qos: { min: { readIops: 10 }, max: { readIops: 300 } } }, now());
    expect(await jobs.pass()).toBeGreaterThan(0);
    expect(rules().every((r) => r === '7:5 300')).toBe(true);
  });

  it('the scrape\'s reading and per-volume families come from the worker', async () => {
    const { collector } = await node({ mounted: true });
    const text = Buffer.concat(await collector.scrape()).toString();
    expect(text).toContain('qosd_volume_limit_iops{volume="db",pool="default",direction="read"} 200');
    expect(text).toMatch(/^qosd_attachments 1$/m);
    expect(text).toMatch(/^qosd_volumes\{pool="default"\} 1$/m);
  });

  it('the scrape shows an attached volume\'s own device counters from diskstats: its operations and their summed time', async () => {
    const { collector, diskstats } = await node({ mounted: true });
    const text = () => collector.scrape().then((p) => Buffer.concat(p).toString());
    // the fixture's line for 7:5: 100 reads that took 10 ms together, no writes
    expect(await text()).toContain('qosd_volume_device_io_operations_total{volume="db",pool="default",device="7:5",direction="read"} 100\n');
    expect(await text()).toContain('qosd_volume_device_io_time_seconds_total{volume="db",pool="default",device="7:5",direction="read"} 0.01\n');
    fs.writeFileSync(diskstats, '   7       5 loop5 500 0 4000 250 30 0 240 90 0 100 340 0 0 0 0 0 0\n');
    const later = await text();
    expect(later).toContain('qosd_volume_device_io_operations_total{volume="db",pool="default",device="7:5",direction="read"} 500\n');
    expect(later).toContain('qosd_volume_device_io_time_seconds_total{volume="db",pool="default",device="7:5",direction="read"} 0.25\n');
    expect(later).toContain('qosd_volume_device_io_operations_total{volume="db",pool="default",device="7:5",direction="write"} 30\n');
    expect(later).toContain('qosd_volume_device_io_time_seconds_total{volume="db",pool="default",device="7:5",direction="write"} 0.09\n');
  });

  it('the metrics listener is served by the worker, with this thread\'s registry in it', async () => {
    const port = await freePort();
    const { jobs } = await node({ mounted: true, metricsPort: port });
    await jobs.open();
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('qosd_volume_guaranteed_iops{volume="db",pool="default",direction="read"} 10');
    expect(text).toMatch(/^qosd_attachments 1$/m);
    expect(text).toContain('# TYPE qosd_reconcile_repairs_total counter');
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
  });

  it('a metrics port already taken fails the start, naming it', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => taken.close(() => r())));
    const { jobs } = await node({ mounted: true, metricsPort: (taken.address() as net.AddressInfo).port });
    await expect(jobs.open()).rejects.toThrow(/metrics listener: .*EADDRINUSE/);
  });

  it('the sweeps look at an attachment whose target does not hold its device, and leave the mounted alone', async () => {
    const mounted = await node({ mounted: true });
    await mounted.jobs.sweeps();
    expect(mounted.store.events.list().filter((e) => e.kind.startsWith('mount-'))).toEqual([]);
    const lost = await node({ mounted: false });
    await lost.jobs.sweeps();
    // Its pod lives (the fixture cgroup is there), so it is not closed; it cannot be mounted again here.
    expect(lost.store.attachments.byId(lost.att.id)?.state).toBe('attached');
    expect(lost.store.events.list().map((e) => e.kind)).toContain('mount-missing');
  });

  it('a controller tick is measured and decided in the worker, and what it saw is counted here', async () => {
    const { jobs, metrics, diskstats } = await node({ mounted: true });
    await jobs.tick();
    // 400 more reads of 4 KiB on the volume's device since the first tick
    fs.writeFileSync(diskstats, '   7       5 loop5 500 0 4000 50 0 0 0 0 0 100 50 0 0 0 0 0 0\n');
    await new Promise((r) => setTimeout(r, 100));
    await jobs.tick();
    const text = await metrics.registry.getSingleMetricAsString('qosd_pool_utilisation');
    const u = Number(/qosd_pool_utilisation\{pool="default"\} (\S+)/.exec(text)?.[1]);
    expect(u).toBeGreaterThan(0);
  });

  it('the worker\'s thread runs ten nice levels below the daemon\'s, which keeps its own', async () => {
    const mine = os.getPriority(0);
    const niced = () =>
      fs.readdirSync('/proc/self/task').filter((tid) => {
        const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) === Math.min(19, mine + 10);
      }).length;
    const before = niced();
    const { jobs } = await node({ mounted: true });
    await jobs.pass(); // the worker starts with its first job
    expect(niced()).toBe(before + 1);
    expect(os.getPriority(0)).toBe(mine);
  });

  it('a steady pass reads only what a watch saw written; a write it saw is repaired at the next pass', async () => {
    const { jobs, rules, pod } = await node({ mounted: true });
    const dirs = [pod, ...fs.readdirSync(pod, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(pod, e.name))];
    expect(await jobs.pass()).toBeGreaterThan(0); // rules written, the pod's cgroups watched after
    const settle = async (): Promise<void> => {
      // the watches' events for this thread's own writes, delivered before the next pass asks
      for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 20));
    };
    await settle();
    expect(await jobs.pass()).toBe(0); // watched now: read once more, found right
    expect(await jobs.pass()).toBe(0);
    expect(jobs.lastPass?.vouched).toBe(dirs.length); // nothing written since: none read
    fs.writeFileSync(path.join(dirs[1]!, V1_RIOPS), '7:5 999'); // a hand edit
    await settle();
    expect(await jobs.pass()).toBe(1);
    expect(jobs.lastPass?.vouched).toBe(dirs.length - 1);
    expect(rules().every((r) => r === '7:5 200')).toBe(true);
    // A new worker is told every watched cgroup, and vouches again once it has read them.
    await (jobs as unknown as { worker: Worker }).worker.terminate();
    await settle();
    expect(await jobs.pass()).toBe(0);
    expect(jobs.lastPass?.vouched).toBe(0);
    expect(await jobs.pass()).toBe(0);
    expect(jobs.lastPass?.vouched).toBe(dirs.length);
  });

  it('a worker that dies fails its jobs and is replaced at the next one', async () => {
    const { jobs, rules } = await node({ mounted: true });
    expect(await jobs.pass()).toBeGreaterThan(0);
    await (jobs as unknown as { worker: Worker }).worker.terminate();
    expect(await jobs.pass()).toBe(0);
    expect(rules().every((r) => r === '7:5 200')).toBe(true);
  });
});
