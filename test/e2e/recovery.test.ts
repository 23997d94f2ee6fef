// Recovery: the daemon is killed (SIGKILL, by its own crash switch) at every step of create,
// mount, unmount and delete; after a restart the retried call succeeds, data is intact, nothing
// was formatted twice, no loop device leaked, and the pod's rules are exactly the expected ones.
// Also: pods that vanished while the daemon was down, stray rules, and a burst of parallel calls.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { nodeTestBlocker } from '../helpers/host';
import { startDaemon, useTestDaemon } from '../helpers/daemon';
import { callDriver, mountOptions, podVolumeDir } from '../helpers/kubelet';
import { makeLeaf, makePodCgroup, newPodUid, ruleLines } from '../helpers/cgroup';
import { request } from '../../src/cli/client';
import { readMountinfo } from '../../src/host/mountinfo';
import { hostRoot } from '../../src/host/host-root';
import { CRASH_POINTS } from '../../src/service/crash-points';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

interface Vol { name: string; device: string; deviceNumber: string; backing: string }
const RIOPS = 'blkio.throttle.read_iops_device';
// The call that kills the daemon: the driver would wait 10 s for a restart that comes after it.
const NO_RETRY = { QOSD_FLEX_RETRY_SECONDS: '0.2' };

function uuidOf(pathOrDevice: string): string {
  return execFileSync('blkid', ['-p', '-o', 'value', '-s', 'UUID', pathOrDevice], { encoding: 'utf8' }).trim();
}
function loopsOf(backing: string): string[] {
  return execFileSync('losetup', ['-j', backing], { encoding: 'utf8' }).split('\n').filter(Boolean);
}
const mountsAt = (target: string) => readMountinfo(hostRoot()).filter((m) => m.mountPoint === target);

describe.skipIf(blocker)(`recovery${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  const fx = useTestDaemon();
  const api = <T>(method: string, url: string, body?: unknown) => request<T>(fx.node.socket, method, url, body);

  /** Restarts the daemon with the crash switch set, runs `call`, waits for the crash, restarts clean. */
  async function crashDuring<T>(step: string, call: () => Promise<T>): Promise<T> {
    await fx.daemon.stop();
    fx.daemon = await startDaemon(fx.node, [], { QOSD_CRASH_AT: step });
    const result = await call();
    await fx.daemon.exited;
    expect(fx.daemon.child.signalCode).toBe('SIGKILL');
    fx.daemon = await startDaemon(fx.node);
    return result;
  }

  function pod() {
    const podUid = newPodUid();
    const podCgroup = makePodCgroup(fx.node.cgroupRoot, podUid);
    const leaf = makeLeaf(podCgroup);
    return { podUid, podCgroup, leaf };
  }

  function expectRules(dirs: string[], device: string, value: number | undefined) {
    for (const d of dirs) expect(ruleLines(d, RIOPS), d).toBe(value === undefined ? '' : `${device} ${value}`);
  }

  for (const step of CRASH_POINTS.filter((s) => s.startsWith('create:'))) {
    it(`create killed at ${step}: the retried mount succeeds, formatted once, no loop leaked, rules exact`, async () => {
      const p = pod();
      const name = `c-${step.split(':')[1]}`;
      const target = podVolumeDir(fx.node.kubeletRoot, p.podUid, name);
      fs.mkdirSync(target, { recursive: true });
      const args = ['mount', target, mountOptions({ podUid: p.podUid, volumeName: name, user: { size: '32Mi', maxReadIops: '300' } })];
      const first = await crashDuring(step, () => callDriver(fx.driver, args, NO_RETRY));
      expect(first.reply.status).toBe('Failure');
      expect(mountsAt(target)).toHaveLength(0);
      const backing = path.join(fx.node.poolDir, `${name}.img`);
      const uuidBefore = fs.existsSync(backing) ? uuidOf(backing) : '';
      const retry = await callDriver(fx.driver, args);
      expect(retry.reply.status, retry.reply.message).toBe('Success');
      const vol = (await api<Vol>('GET', `/v1/volumes/${name}`)).body;
      if (uuidBefore) expect(uuidOf(vol.device)).toBe(uuidBefore); // not formatted again
      expect(loopsOf(vol.backing)).toHaveLength(1);
      expect(mountsAt(target)).toHaveLength(1);
      fs.writeFileSync(path.join(target, 'f'), 'x');
      expectRules([p.podCgroup, p.leaf], vol.deviceNumber, 300);
      expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
    });
  }

  for (const step of CRASH_POINTS.filter((s) => s.startsWith('attach:'))) {
    it(`mount killed at ${step}: the retried mount succeeds, data intact, one mount, rules exact`, async () => {
      const name = `a-${step.split(':')[1]}`;
      const seed = pod();
      const seedTarget = podVolumeDir(fx.node.kubeletRoot, seed.podUid, name);
      fs.mkdirSync(seedTarget, { recursive: true });
      const opts = { size: '32Mi', maxReadIops: '250' };
      expect((await callDriver(fx.driver, ['mount', seedTarget, mountOptions({ podUid: seed.podUid, volumeName: name, user: opts })])).reply.status).toBe('Success');
      fs.writeFileSync(path.join(seedTarget, 'data.txt'), 'written before the crash');
      expect((await callDriver(fx.driver, ['unmount', seedTarget])).reply.status).toBe('Success');
      const vol = (await api<Vol>('GET', `/v1/volumes/${name}`)).body;
      const uuid = uuidOf(vol.device);

      const p = pod();
      const target = podVolumeDir(fx.node.kubeletRoot, p.podUid, name);
      fs.mkdirSync(target, { recursive: true });
      const args = ['mount', target, mountOptions({ podUid: p.podUid, volumeName: name, user: opts })];
      await crashDuring(step, () => callDriver(fx.driver, args, NO_RETRY));
      const retry = await callDriver(fx.driver, args);
      expect(retry.reply.status, retry.reply.message).toBe('Success');
      expect(mountsAt(target)).toHaveLength(1);
      expect(fs.readFileSync(path.join(target, 'data.txt'), 'utf8')).toBe('written before the crash');
      expect(uuidOf(vol.device)).toBe(uuid);
      expect(loopsOf(vol.backing)).toHaveLength(1);
      expectRules([p.podCgroup, p.leaf], vol.deviceNumber, 250);
      const atts = (await api<{ attachments: { volume: string; state: string }[] }>('GET', '/v1/attachments')).body.attachments.filter((a) => a.volume === name);
      expect(atts).toEqual([expect.objectContaining({ state: 'attached' })]);
      expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
    });
  }

  for (const step of CRASH_POINTS.filter((s) => s.startsWith('detach:'))) {
    it(`unmount killed at ${step}: after restart the retried unmount succeeds, rules cleared, data intact`, async () => {
      const name = `d-${step.split(':')[1]}`;
      const p = pod();
      const target = podVolumeDir(fx.node.kubeletRoot, p.podUid, name);
      fs.mkdirSync(target, { recursive: true });
      const args = ['mount', target, mountOptions({ podUid: p.podUid, volumeName: name, user: { size: '32Mi', maxReadIops: '200' } })];
      expect((await callDriver(fx.driver, args)).reply.status).toBe('Success');
      fs.writeFileSync(path.join(target, 'data.txt'), 'kept');
      const vol = (await api<Vol>('GET', `/v1/volumes/${name}`)).body;
      const uuid = uuidOf(vol.device);

      await crashDuring(step, () => callDriver(fx.driver, ['unmount', target], NO_RETRY));
      const retry = await callDriver(fx.driver, ['unmount', target]);
      expect(retry.reply.status, retry.reply.message).toBe('Success');
      expect(mountsAt(target)).toHaveLength(0);
      expect(fs.readdirSync(target)).toEqual([]);
      expectRules([p.podCgroup, p.leaf], vol.deviceNumber, undefined);
      expect((await api<{ attachments: { volume: string }[] }>('GET', '/v1/attachments')).body.attachments.filter((a) => a.volume === name)).toEqual([]);
      expect(loopsOf(vol.backing)).toHaveLength(1);
      // Mounted again, the data is there and the filesystem is the same one.
      expect((await callDriver(fx.driver, args)).reply.status).toBe('Success');
      expect(fs.readFileSync(path.join(target, 'data.txt'), 'utf8')).toBe('kept');
      expect(uuidOf(vol.device)).toBe(uuid);
      expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
    });
  }

  for (const step of CRASH_POINTS.filter((s) => s.startsWith('delete:'))) {
    it(`delete killed at ${step}: finished at restart, storage and loop device gone`, async () => {
      const name = `x-${step.split(':')[1]}`;
      const created = await api<Vol>('POST', '/v1/volumes', { name, size: '16Mi' });
      expect(created.status).toBe(201);
      await crashDuring(step, () => api('DELETE', `/v1/volumes/${name}`).catch(() => undefined));
      expect((await api('GET', `/v1/volumes/${name}`)).status).toBe(404);
      expect(fs.existsSync(created.body.backing)).toBe(false);
      expect(loopsOf(created.body.backing)).toEqual([]);
    });
  }

  it('clears a rule for a qosd volume that no attachment wants, within one reconcile interval', async () => {
    const created = await api<Vol>('POST', '/v1/volumes', { name: 'stray', size: '16Mi' });
    const p = pod();
    fs.writeFileSync(path.join(p.leaf, RIOPS), `${created.body.deviceNumber} 77`);
    // A device qosd does not manage (a disk that is no loop device of any volume) is left alone.
    const disk = fs.readdirSync('/sys/block').find((n) => !n.startsWith('loop'))!;
    const other = fs.readFileSync(`/sys/block/${disk}/dev`, 'utf8').trim();
    fs.writeFileSync(path.join(p.leaf, 'blkio.throttle.write_iops_device'), `${other} 55`);
    const until = Date.now() + 5000;
    while (Date.now() < until && ruleLines(p.leaf, RIOPS) !== '') await new Promise((r) => setTimeout(r, 50));
    expect(ruleLines(p.leaf, RIOPS)).toBe('');
    expect(ruleLines(p.leaf, 'blkio.throttle.write_iops_device')).toBe(`${other} 55`);
    fs.writeFileSync(path.join(p.leaf, 'blkio.throttle.write_iops_device'), `${other} 0`);
    await api('DELETE', '/v1/volumes/stray');
  });

  it('rewrites a rule changed in an attached pod\'s watched cgroup after passes that found it right, by a writer that does not truncate', async () => {
    // The steady pass skips a watched cgroup it found right (rule-watch.ts): the write must reach
    // it through the watch, on this kernel's cgroupfs.
    const p = pod();
    const target = podVolumeDir(fx.node.kubeletRoot, p.podUid, 'watched');
    fs.mkdirSync(target, { recursive: true });
    expect((await callDriver(fx.driver, ['mount', target, mountOptions({ podUid: p.podUid, volumeName: 'watched', user: { size: '16Mi', maxReadIops: '321' } })])).reply.status).toBe('Success');
    const vol = (await api<Vol>('GET', '/v1/volumes/watched')).body;
    expectRules([p.podCgroup, p.leaf], vol.deviceNumber, 321);
    await new Promise((r) => setTimeout(r, 5000)); // two reconcile intervals: read, then vouched for
    const fd = fs.openSync(path.join(p.leaf, RIOPS), 'r+');
    fs.writeSync(fd, `${vol.deviceNumber} 999`);
    fs.closeSync(fd);
    expect(ruleLines(p.leaf, RIOPS)).toBe(`${vol.deviceNumber} 999`);
    const until = Date.now() + 7000;
    while (Date.now() < until && ruleLines(p.leaf, RIOPS) !== `${vol.deviceNumber} 321`) await new Promise((r) => setTimeout(r, 50));
    expectRules([p.podCgroup, p.leaf], vol.deviceNumber, 321);
    expect((await callDriver(fx.driver, ['unmount', target])).reply.status).toBe('Success');
  }, 20_000);

  it('closes the attachment of a pod removed while the daemon was stopped, and deletes its ephemeral volume', async () => {
    const p = pod();
    const target = podVolumeDir(fx.node.kubeletRoot, p.podUid, 'gone');
    fs.mkdirSync(target, { recursive: true });
    const persistent = podVolumeDir(fx.node.kubeletRoot, p.podUid, 'kept');
    fs.mkdirSync(persistent, { recursive: true });
    expect((await callDriver(fx.driver, ['mount', target, mountOptions({ podUid: p.podUid, volumeName: 'gone', user: { ephemeral: 'true', size: '16Mi', maxReadIops: '100' } })])).reply.status).toBe('Success');
    expect((await callDriver(fx.driver, ['mount', persistent, mountOptions({ podUid: p.podUid, volumeName: 'kept', user: { size: '16Mi' } })])).reply.status).toBe('Success');
    const eph = (await api<{ volumes: Vol[] }>('GET', '/v1/volumes')).body.volumes.find((v) => v.name.startsWith('gone-'))!;
    await fx.daemon.stop();
    // The pod goes away behind qosd's back: kubelet unmounted nothing it told qosd about.
    execFileSync('umount', [target]);
    execFileSync('umount', [persistent]);
    fs.rmdirSync(p.leaf);
    fs.rmdirSync(p.podCgroup);
    fx.daemon = await startDaemon(fx.node);
    const atts = (await api<{ attachments: { volume: string }[] }>('GET', '/v1/attachments')).body.attachments;
    expect(atts.filter((a) => a.volume === eph.name || a.volume === 'kept')).toEqual([]);
    expect((await api('GET', `/v1/volumes/${eph.name}`)).status).toBe(404);
    expect(fs.existsSync(eph.backing)).toBe(false);
    expect((await api('GET', '/v1/volumes/kept')).status).toBe(200);
    const events = (await api<{ events: { kind: string; source: string }[] }>('GET', '/v1/volumes/kept/events')).body.events;
    expect(events.some((e) => e.kind === 'pod-vanished' && e.source === 'reconcile')).toBe(true);
  });

  it('20 parallel flex mounts of different volumes with parallel init: all Success, mounts and rules correct', async () => {
    const pods = Array.from({ length: 20 }, () => pod());
    const targets = pods.map((p, i) => {
      const t = podVolumeDir(fx.node.kubeletRoot, p.podUid, `burst${i}`);
      fs.mkdirSync(t, { recursive: true });
      return t;
    });
    const results = await Promise.all([
      ...targets.map((t, i) => callDriver(fx.driver, ['mount', t, mountOptions({ podUid: pods[i]!.podUid, volumeName: `burst${i}`, user: { size: '8Mi', maxReadIops: String(100 + i) } })])),
      ...Array.from({ length: 10 }, () => callDriver(fx.driver, ['init'])),
    ]);
    for (const r of results) {
      expect(r.reply.status, r.reply.message).toBe('Success');
      expect(r.output.trim().startsWith('{') && r.output.trim().endsWith('}')).toBe(true);
    }
    const { volumes } = (await api<{ volumes: Vol[] }>('GET', '/v1/volumes')).body;
    for (const [i, t] of targets.entries()) {
      expect(mountsAt(t)).toHaveLength(1);
      const vol = volumes.find((v) => v.name === `burst${i}`)!;
      expectRules([pods[i]!.podCgroup, pods[i]!.leaf], vol.deviceNumber, 100 + i);
    }
    const un = await Promise.all(targets.map((t) => callDriver(fx.driver, ['unmount', t])));
    for (const r of un) expect(r.reply.status).toBe('Success');
  });
});
