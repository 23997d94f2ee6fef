// Guarantees: admission against pool capacity (concurrent requests never over-admit), refusals
// that say why through the API and through flex, live QoS changes measured in a container cgroup,
// calibration stored and shown.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { nodeTestBlocker } from '../helpers/host';
import { QOSCTL, useTestDaemon } from '../helpers/daemon';
import { callDriver, mountOptions, podVolumeDir } from '../helpers/kubelet';
import { ddRead, makeLeaf, makePodCgroup, newPodUid, ruleLines } from '../helpers/cgroup';
import { expectThrottled, unthrottledReads } from '../helpers/throttle';
import { request } from '../../src/cli/client';
import { readMountinfo } from '../../src/host/mountinfo';
import { hostRoot } from '../../src/host/host-root';
import { which } from '../../src/host/exec';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

type Err = { error: { code: string; message: string } };
interface Vol { name: string; device: string; deviceNumber: string; qos: { min: Record<string, number>; max: Record<string, number> } }
interface Pool { name: string; capacity: Record<string, number>; guaranteed: Record<string, number>; available: Record<string, number>; volumes: number; capacitySource: Record<string, string>; calibration: { method: string } | null }

describe.skipIf(blocker)(`guarantees${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  // writeIops 10000 with the default 10% headroom: 9000 can be promised. readIops has no figure.
  const fx = useTestDaemon('', '{ writeIops: 10000, readBps: 1G, writeBps: 1G }');
  const api = <T>(method: string, url: string, body?: unknown) => request<T>(fx.node.socket, method, url, body);
  const pool = async () => (await api<{ pools: Pool[] }>('GET', '/v1/pools')).body.pools.find((p) => p.name === 'default')!;

  it('never over-admits 50 concurrent creates whose guarantees exceed the pool', async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => api<Vol & Err>('POST', '/v1/volumes', { name: `g${i}`, size: '4Mi', qos: { min: { writeIops: 1000 } } })),
    );
    const admitted = results.filter((r) => r.status === 201);
    const refused = results.filter((r) => r.status !== 201);
    expect(admitted).toHaveLength(9);
    expect(refused).toHaveLength(41);
    for (const r of refused) {
      expect(r.status).toBe(507);
      expect(r.body.error.code).toBe('ResourceExhausted');
      expect(r.body.error.message).toBe('pool default: this guarantee needs 10% of the device (minWriteIops 1000 = 10%); 0% of the 90% promisable is left');
    }
    const p = await pool();
    const { volumes } = (await api<{ volumes: Vol[] }>('GET', '/v1/volumes')).body;
    expect(p.guaranteed.writeIops).toBe(volumes.reduce((sum, v) => sum + (v.qos.min.writeIops ?? 0), 0));
    expect(p.guaranteed.writeIops).toBe(9000);
    expect(p.available.writeIops).toBe(0);
    expect(p.volumes).toBe(9);
    // Refused requests touched nothing: no backing file for them.
    expect(fs.readdirSync(fx.node.poolDir).sort()).toEqual(admitted.map((r) => `${r.body.name}.img`).sort());
  });

  it('releases a reservation on delete, and admits again', async () => {
    const [first] = (await api<{ volumes: Vol[] }>('GET', '/v1/volumes')).body.volumes;
    expect((await api('DELETE', `/v1/volumes/${first!.name}`)).status).toBe(204);
    expect((await pool()).available.writeIops).toBe(1000);
    const r = await api<Vol>('POST', '/v1/volumes', { name: 'again', size: '4Mi', qos: { min: { writeIops: 1000 } } });
    expect(r.status).toBe(201);
    expect((await pool()).available.writeIops).toBe(0);
  });

  it('says a pool without a capacity figure admits no guarantee in that dimension', async () => {
    const r = await api<Err>('POST', '/v1/volumes', { name: 'noread', size: '4Mi', qos: { min: { readIops: 10 } } });
    expect(r.status).toBe(507);
    expect(r.body.error.message).toBe('pool default has no readIops capacity figure, so it admits no readIops guarantee (set pools[].capacity.readIops in the config or run: qosctl calibrate default)');
  });

  it('re-admits a raised guarantee, keeps the old one when refused, and always allows lowering', async () => {
    const before = (await api<Vol>('GET', '/v1/volumes/again')).body;
    const up = await api<Err>('PATCH', '/v1/volumes/again', { qos: { min: { writeIops: 5000 } } });
    expect(up.status).toBe(507);
    expect(up.body.error.message).toContain('this guarantee needs 50% of the device (minWriteIops 5000 = 50%); 10% of the 90% promisable is left');
    expect((await api<Vol>('GET', '/v1/volumes/again')).body.qos).toEqual(before.qos);
    const down = await api<Vol>('PATCH', '/v1/volumes/again', { qos: { min: { writeIops: 200 } } });
    expect(down.status).toBe(200);
    expect((await pool()).available.writeIops).toBe(800);
    // A class whose guarantees do not fit is refused the same way.
    const cls = await api<Err>('PATCH', '/v1/volumes/again', { class: 'medium' });
    expect(cls.status).toBe(507);
    expect(cls.body.error.message).toContain('readIops'); // medium guarantees readIops; the pool has no figure
  });

  it('through flex: a minWriteIops that does not fit is a Failure naming pool and figures; nothing created or mounted', async () => {
    const podUid = newPodUid();
    makePodCgroup(fx.node.cgroupRoot, podUid);
    const target = podVolumeDir(fx.node.kubeletRoot, podUid, 'db');
    fs.mkdirSync(target, { recursive: true });
    const filesBefore = fs.readdirSync(fx.node.poolDir).sort();
    const r = await callDriver(fx.driver, ['mount', target, mountOptions({ podUid, volumeName: 'db', user: { minWriteIops: '5000', size: '8Mi' } })]);
    expect(r.reply.status).toBe('Failure');
    expect(r.exitCode).toBe(1);
    // "percent", not "%": kubelet uses the text as the format of the pod's event (util/kubelet-text.ts)
    expect(r.reply.message).toBe('pool default: this guarantee needs 50 percent of the device (minWriteIops 5000 = 50 percent); 8 percent of the 90 percent promisable is left');
    expect(readMountinfo(hostRoot()).some((m) => m.mountPoint === target)).toBe(false);
    expect(fs.readdirSync(target)).toEqual([]);
    expect((await api('GET', '/v1/volumes/db')).status).toBe(404);
    expect(fs.readdirSync(fx.node.poolDir).sort()).toEqual(filesBefore);
  });

  it('applies a live maxReadIops change to the container cgroup: dd measures the new rate (±15%), no remount, event logged', async () => {
    const podUid = newPodUid();
    const podCgroup = makePodCgroup(fx.node.cgroupRoot, podUid);
    const leaf = makeLeaf(podCgroup);
    const target = podVolumeDir(fx.node.kubeletRoot, podUid, 'live');
    fs.mkdirSync(target, { recursive: true });
    const m = await callDriver(fx.driver, ['mount', target, mountOptions({ podUid, volumeName: 'live', user: { maxReadIops: '150', size: '64Mi' } })]);
    expect(m.reply.status, m.reply.message).toBe('Success');
    const vol = (await api<Vol>('GET', '/v1/volumes/live')).body;
    const mountId = readMountinfo(hostRoot()).find((e) => e.mountPoint === target)!.id;
    const rate1 = 450 / (await ddRead(leaf, vol.device, '4k', 450));
    await expectThrottled({ rate: rate1, limit: 150, baseline: () => unthrottledReads(vol.device, '4k', 450) });

    const r = spawnSync(process.execPath, [QOSCTL, '--socket', fx.node.socket, 'volume', 'set', 'live', '--max-read-iops', '400'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(ruleLines(leaf, 'blkio.throttle.read_iops_device')).toBe(`${vol.deviceNumber} 400`);
    const rate2 = 1200 / (await ddRead(leaf, vol.device, '4k', 1200));
    await expectThrottled({ rate: rate2, limit: 400, baseline: () => unthrottledReads(vol.device, '4k', 1200) });
    expect(readMountinfo(hostRoot()).find((e) => e.mountPoint === target)!.id).toBe(mountId);

    const { events } = (await api<{ events: { kind: string; source: string; time: string; detail: { old: { qos: Vol['qos'] }; new: { qos: Vol['qos'] } } }[] }>('GET', '/v1/volumes/live/events')).body;
    const change = events.filter((e) => e.kind === 'qos-changed').at(-1)!;
    expect(change.source).toBe('cli');
    expect(change.detail.old.qos.max.readIops).toBe(150);
    expect(change.detail.new.qos.max.readIops).toBe(400);
    expect(Date.parse(change.time)).toBeGreaterThan(Date.now() - 60_000);
    expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
  });

  for (const method of ['probe', 'fio'] as const) {
    const missing = method === 'fio' && !which('fio');
    it.skipIf(missing)(`qosctl calibrate --method ${method} stores a capacity that qosctl pools shows${missing ? ' (skipped: fio is not installed; apt-get install fio)' : ''}`, () => {
      const r = spawnSync(process.execPath, [QOSCTL, '--socket', fx.node.socket, 'calibrate', 'default', '--method', method, '--seconds', '0.5', '--scratch-size', '128Mi'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain(`calibrating pool default with ${method}: 4 phases and 2 mixed workloads of 0.5 s each`);
      expect(r.stderr).toMatch(/\[4\/4\] readBps: \S+\/s/);
      expect(r.stderr).toMatch(/\[mix 2\/2\] random 4k reads beside sequential 128k writes: rIOPS=\d+ .*; predicted \d+ IOPS, measured \d+ \([-+][\d.]+%\)/);
      expect(r.stdout).toMatch(/^pool default capacity: rIOPS=\d+ wIOPS=\d+ rBps=\S+ wBps=\S+$/m);
      expect(r.stdout).toMatch(/^cost model on "random 4k, 70% reads 30% writes": .*predicted \d+ IOPS, measured \d+ \([-+][\d.]+%\)$/m);
      const j = JSON.parse(execFileSync(process.execPath, [QOSCTL, '--socket', fx.node.socket, '-o', 'json', 'pools'], { encoding: 'utf8' }));
      const p = j.pools[0];
      expect(p.calibration.method).toBe(method);
      // both mixes ran, read and wrote, and their prediction is stored with the calibration
      expect(p.calibration.mixes.map((m: { name: string }) => m.name)).toEqual(['random 4k, 70% reads 30% writes', 'random 4k reads beside sequential 128k writes']);
      for (const m of p.calibration.mixes as { rates: Record<string, number>; cost: number; errorPct: number; predictedIops: number; measuredIops: number }[]) {
        expect(m.rates.readIops).toBeGreaterThan(0);
        expect(m.rates.writeIops).toBeGreaterThan(0);
        expect(m.cost).toBeGreaterThan(0);
        expect(m.errorPct).toBeCloseTo(((m.predictedIops - m.measuredIops) / m.measuredIops) * 100, 0);
      }
      expect(p.capacitySource).toEqual({ readIops: 'calibration', writeIops: 'calibration', readBps: 'calibration', writeBps: 'calibration' });
      for (const d of ['readIops', 'writeIops', 'readBps', 'writeBps']) expect(p.capacity[d]).toBeGreaterThan(0);
      const table = execFileSync(process.execPath, [QOSCTL, '--socket', fx.node.socket, '-o', 'wide', 'pools'], { encoding: 'utf8' });
      expect(table).toMatch(new RegExp(`^default +file +rIOPS=\\d+ wIOPS=\\d+ rBps=\\S+ wBps=\\S+ +${method} \\d{4}-`, 'm'));
      // The scratch volume is gone.
      expect(fs.readdirSync(fx.node.poolDir).filter((f) => f.startsWith('qosd-calibrate'))).toEqual([]);
      // -o json streams nothing to stderr and prints the result.
      const jr = spawnSync(process.execPath, [QOSCTL, '--socket', fx.node.socket, '-o', 'json', 'calibrate', 'default', '--method', method, '--seconds', '0.3', '--scratch-size', '64Mi'], { encoding: 'utf8' });
      expect(jr.status, jr.stderr).toBe(0);
      expect(jr.stderr).toBe('');
      expect(JSON.parse(jr.stdout)).toMatchObject({ event: 'done', pool: 'default', method });
    });
  }

  it('refuses to calibrate a pool that does not exist', () => {
    const r = spawnSync(process.execPath, [QOSCTL, '--socket', fx.node.socket, 'calibrate', 'nope', '--seconds', '0.3'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('qosctl: NotFound: pool nope not found (have: default)\n');
    void path;
  });
});
