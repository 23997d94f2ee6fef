// The work-conserving controller on this machine's real cgroup v1 (flat: rules on every leaf): a
// guaranteed volume that cannot get its minimum while the pool is saturated makes the controller
// write a limit on the best-effort neighbour's container leaves; when it stops, the limit is
// lifted. The pool's read capacity is set low (1000 IOPS) so an unthrottled neighbour saturates it.
import * as fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeTestBlocker } from '../helpers/host';
import { installDriver, makeTestNode, removeTestNode, startDaemon, type RunningDaemon, type TestNode } from '../helpers/daemon';
import { callDriver, mountOptions, podVolumeDir } from '../helpers/kubelet';
import { makeLeaf, makePodCgroup, newPodUid, ruleLines } from '../helpers/cgroup';
import { request } from '../../src/cli/client';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

const RIOPS = 'blkio.throttle.read_iops_device';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await sleep(50);
  }
  return check();
}

/**
 * A test node with a running daemon (pool read capacity 1000 IOPS) for the enclosing describe,
 * and what the tests do on it: mount a volume into a new pod, run a reader in its container leaf.
 */
function controllerNode(controllerConfig: string, capacity = '{ readIops: 1000, writeIops: 1000, readBps: 1G, writeBps: 1G }') {
  const ctx = { node: undefined as unknown as TestNode, daemon: undefined as unknown as RunningDaemon, driver: '' };
  const readers: ChildProcess[] = [];

  beforeAll(async () => {
    ctx.node = makeTestNode(controllerConfig, capacity);
    ctx.daemon = await startDaemon(ctx.node);
    ctx.driver = installDriver(ctx.node);
  });

  afterAll(async () => {
    for (const r of readers) stopReader(r);
    await ctx.daemon?.stop();
    if (ctx.node) removeTestNode(ctx.node);
  });

  async function mount(name: string, user: Record<string, string>) {
    const uid = newPodUid();
    const leaf = makeLeaf(makePodCgroup(ctx.node.cgroupRoot, uid));
    const target = podVolumeDir(ctx.node.kubeletRoot, uid, name);
    fs.mkdirSync(target, { recursive: true });
    const r = await callDriver(ctx.driver, ['mount', target, mountOptions({ podUid: uid, volumeName: name, user })]);
    expect(r.reply.status, r.reply.message).toBe('Success');
    const vol = (await request<{ device: string; deviceNumber: string }>(ctx.node.socket, 'GET', `/v1/volumes/${name}`)).body;
    return { leaf, target, ...vol };
  }

  /** A reader in a container leaf: unpaced (as fast as it can) or paced to about `perSecond`. */
  function reader(leaf: string, device: string, perSecond?: number): ChildProcess {
    const script = perSecond
      ? `echo $$ > "$0/cgroup.procs"; while :; do dd if="$1" of=/dev/null bs=4k count=${Math.round(perSecond / 10)} iflag=direct status=none; sleep 0.1; done`
      : 'echo $$ > "$0/cgroup.procs"; while :; do dd if="$1" of=/dev/null bs=4k count=20000 iflag=direct status=none; done';
    const p = spawn('/bin/sh', ['-c', script, leaf, device], { stdio: 'ignore', detached: true });
    readers.push(p);
    return p;
  }

  /** A writer in a container leaf, unpaced, to a file on the mounted volume (direct IO). */
  function writer(leaf: string, target: string): ChildProcess {
    const script = 'echo $$ > "$0/cgroup.procs"; while :; do dd if=/dev/zero of="$1/w" bs=4k count=4096 oflag=direct conv=notrunc status=none; done';
    const p = spawn('/bin/sh', ['-c', script, leaf, target], { stdio: 'ignore', detached: true });
    readers.push(p);
    return p;
  }

  /** fio reading its device at queue depth 32 from a container leaf (a database's noisy neighbour). */
  function flood(leaf: string, device: string): ChildProcess {
    const script = 'echo $$ > "$0/cgroup.procs"; exec fio --name=flood --filename="$1" --rw=randread --bs=4k --iodepth=32 --ioengine=libaio --direct=1 --time_based --runtime=600 --output=/dev/null';
    const p = spawn('/bin/sh', ['-c', script, leaf, device], { stdio: 'ignore', detached: true });
    readers.push(p);
    return p;
  }

  return { ctx, mount, reader, writer, flood };
}

/** Kills a reader's shell and the dd it runs (its own process group). */
function stopReader(p: ChildProcess): void {
  try {
    process.kill(-p.pid!, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

describe.skipIf(blocker)(`work-conserving controller on cgroup v1${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  const { ctx, mount, reader, writer } = controllerNode('controller: { intervalMs: 250 }');

  it("one device budget: a writer starving a read guarantee is cut in its writes, on its pod's leaves, and lifted after", async () => {
    // The pool is one budget of 1000 read or 1000 write IOPS: the unthrottled writer alone fills
    // it. Per dimension it would never have been an aggressor of a read guarantee.
    const victim = await mount('rvictim', { size: '32Mi', minReadIops: '300' });
    const noisy = await mount('wnoisy', { size: '32Mi' });
    const WIOPS = 'blkio.throttle.write_iops_device';
    const w = writer(noisy.leaf, noisy.target);
    await sleep(600);
    expect(ruleLines(noisy.leaf, WIOPS)).toBe(''); // the victim idle: nothing to protect
    const v = reader(victim.leaf, victim.device, 200);
    expect(await until(() => ruleLines(noisy.leaf, WIOPS).startsWith(`${noisy.deviceNumber} `), 20_000)).toBe(true);
    const limit = Number(ruleLines(noisy.leaf, WIOPS).split(' ')[1]);
    expect(limit).toBeLessThan(1000);
    expect(limit).toBeGreaterThanOrEqual(10);
    expect(ruleLines(noisy.leaf, RIOPS)).toBe(''); // it does no reads: none cut
    expect(ruleLines(victim.leaf, RIOPS)).toBe('');
    expect(ruleLines(victim.leaf, WIOPS)).toBe('');
    const metrics = (await request<string>(ctx.node.socket, 'GET', '/metrics')).body;
    expect(Number(/^qosd_pool_utilisation\{pool="default"\} ([\d.e+-]+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0.9);
    expect(metrics).toMatch(/^qosd_volume_device_share\{volume="wnoisy",pool="default"\} [\d.e+-]+$/m);
    stopReader(v);
    expect(await until(() => ruleLines(noisy.leaf, WIOPS) === '', 20_000)).toBe(true);
    stopReader(w);
  }, 60_000);

  it('limits the neighbour while the guarantee is unmet on a saturated pool, and lifts it when the victim stops', async () => {
    // The victim is promised 300 read IOPS but (paced) asks for about 200: on a saturated pool
    // the controller cannot tell that from starvation, so it protects it.
    const victim = await mount('victim', { size: '32Mi', minReadIops: '300' });
    const noisy = await mount('noisy', { size: '32Mi' });
    expect(ruleLines(noisy.leaf, RIOPS)).toBe('');
    reader(noisy.leaf, noisy.device);
    await sleep(600);
    expect(ruleLines(noisy.leaf, RIOPS)).toBe(''); // the victim idle: nothing to protect
    const v = reader(victim.leaf, victim.device, 200);

    const capped = await until(() => ruleLines(noisy.leaf, RIOPS).startsWith(`${noisy.deviceNumber} `), 20_000);
    expect(capped).toBe(true);
    const limit = Number(ruleLines(noisy.leaf, RIOPS).split(' ')[1]);
    expect(limit).toBeLessThan(1000);
    expect(limit).toBeGreaterThanOrEqual(10);
    const seen = (await request<{ effective: { max: { readIops?: number } }; qos: { max: object } }>(ctx.node.socket, 'GET', '/v1/volumes/noisy')).body;
    expect(seen.qos.max).toEqual({}); // configured: unlimited
    expect(seen.effective.max.readIops).toBeGreaterThan(0); // in force: the controller's
    expect(ruleLines(victim.leaf, RIOPS)).toBe(''); // the victim itself is never limited
    const metrics = (await request<string>(ctx.node.socket, 'GET', '/metrics')).body;
    expect(metrics).toMatch(/^qosd_volume_effective_limit_iops\{volume="noisy",pool="default",direction="read"\} \d+$/m);
    expect(Number(/^qosd_controller_adjustments_total\{direction="down"\} (\d+)$/m.exec(metrics)![1])).toBeGreaterThan(0);

    stopReader(v);
    const lifted = await until(() => ruleLines(noisy.leaf, RIOPS) === '', 20_000);
    expect(lifted).toBe(true);
    expect((await request<{ effective: { max: object } }>(ctx.node.socket, 'GET', '/v1/volumes/noisy')).body.effective.max).toEqual({});
  }, 60_000);

  it('starts from the configured limits after a restart and converges again', async () => {
    const victim = await mount('victim2', { size: '32Mi', minReadIops: '300' });
    const noisy = await mount('noisy2', { size: '32Mi' });
    const n = reader(noisy.leaf, noisy.device);
    const v = reader(victim.leaf, victim.device, 200);
    expect(await until(() => ruleLines(noisy.leaf, RIOPS).startsWith(`${noisy.deviceNumber} `), 20_000)).toBe(true);

    await ctx.daemon.stop();
    ctx.daemon = await startDaemon(ctx.node);
    // The new process knows nothing of the old one's cuts: its start-up pass writes the configured
    // limits (none for the neighbour), and its own controller cuts again.
    const adjustmentsDown = async () => {
      const metrics = (await request<string>(ctx.node.socket, 'GET', '/metrics')).body;
      return Number(/^qosd_controller_adjustments_total\{direction="down"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
    };
    let down = 0;
    for (let i = 0; i < 100 && down === 0; i++) {
      down = await adjustmentsDown();
      if (down === 0) await sleep(50);
    }
    expect(down).toBeGreaterThan(0);
    expect(ruleLines(noisy.leaf, RIOPS)).toMatch(new RegExp(`^${noisy.deviceNumber} \\d+$`));
    const seen = (await request<{ effective: { max: { readIops?: number } } }>(ctx.node.socket, 'GET', '/v1/volumes/noisy2')).body;
    expect(seen.effective.max.readIops).toBeGreaterThanOrEqual(10);
    for (const p of [v, n]) stopReader(p);
    expect(await until(() => ruleLines(noisy.leaf, RIOPS) === '', 20_000)).toBe(true);
  }, 60_000);
});

describe.skipIf(blocker)(`controller switched off${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  const { ctx, mount, reader } = controllerNode('controller: { enabled: false }');

  it('leaves exactly the static limits under the same contention', async () => {
    const victim = await mount('victim', { size: '32Mi', minReadIops: '300' });
    const noisy = await mount('noisy', { size: '32Mi', maxReadIops: '5000' });
    reader(noisy.leaf, noisy.device);
    reader(victim.leaf, victim.device, 200);
    await sleep(2000); // eight controller intervals, had it been on
    expect(ruleLines(noisy.leaf, RIOPS)).toBe(`${noisy.deviceNumber} 5000`); // the configured max, untouched
    const seen = (await request<{ effective: { max: object }; qos: { max: object } }>(ctx.node.socket, 'GET', '/v1/volumes/noisy')).body;
    expect(seen.effective.max).toEqual(seen.qos.max);
    const metrics = (await request<string>(ctx.node.socket, 'GET', '/metrics')).body;
    expect(metrics).not.toMatch(/^qosd_controller_adjustments_total\{direction="down"\} [1-9]/m);
  }, 60_000);
});

describe.skipIf(blocker)(`latency targets on cgroup v1${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  // The pool's budget is large (a million reads a second), so the neighbour never saturates it and
  // the victim's rate guarantee is always kept: only its latency target can make the controller
  // act. The pool's unloaded latency is set at 1 µs so that any target is admitted. Whether the cut
  // brings the victim's latency back under its target is the VM benchmark's question (a drive
  // held to a known rate); here, on the real throttle, the decision and the rules it writes.
  const { ctx, mount, reader, flood } = controllerNode('controller: { intervalMs: 250 }', '{ readIops: 1000000, writeIops: 1000000, readBps: 100G, writeBps: 100G }, unloadedLatency: { read: 1us, write: 1us }');

  it("a paced reader over its latency target beside a queue-depth-32 neighbour: the neighbour's leaf gets a read limit, the victim none; under a target it meets, nothing; lifted when the victim stops", async () => {
    const victim = await mount('lvictim', { size: '32Mi', minReadIops: '150' });
    const noisy = await mount('lnoisy', { size: '32Mi' });
    const v = reader(victim.leaf, victim.device, 200);
    const f = flood(noisy.leaf, noisy.device);
    const setTarget = async (read: string) => {
      const r = await request<{ qos: { latency?: { read?: number } } }>(ctx.node.socket, 'PATCH', '/v1/volumes/lvictim', { qos: { latency: { read } } });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body.qos.latency?.read;
    };
    // its rate guarantee alone, kept: nothing is cut (eight controller ticks)
    await sleep(2000);
    expect(ruleLines(noisy.leaf, RIOPS)).toBe('');
    // a target it meets (a second per read): still nothing
    expect(await setTarget('1s')).toBe(1);
    await sleep(2000);
    expect(ruleLines(noisy.leaf, RIOPS)).toBe('');
    // a target no read here meets (2 µs): the neighbour is cut on its leaf, the victim never
    expect(await setTarget('2us')).toBe(0.000002);
    expect(await until(() => ruleLines(noisy.leaf, RIOPS).startsWith(`${noisy.deviceNumber} `), 20_000)).toBe(true);
    expect(ruleLines(victim.leaf, RIOPS)).toBe('');
    const events = (await request<{ events: { kind: string }[] }>(ctx.node.socket, 'GET', '/v1/volumes/lvictim/events')).body.events.map((e) => e.kind);
    expect(events).toContain('qos-changed');
    // the victim goes idle: the cut is lifted
    stopReader(v);
    expect(await until(() => ruleLines(noisy.leaf, RIOPS) === '', 20_000)).toBe(true);
    stopReader(f);
  }, 90_000);
});
