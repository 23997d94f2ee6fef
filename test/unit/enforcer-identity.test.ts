// The enforcer asks whose a device is before it writes or clears a rule for it (over the fixture
// cgroup v1 tree, with the pools' answer given by the test): a volume whose recorded number is
// another's gets no rule written and none cleared, the mismatch is recorded once, and its device
// is looked for again; a number that is nobody's may have our rules cleared.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hostRoot } from '../../src/host/host-root';
import { blkioFor } from '../../src/host/blkio';
import { Enforcer } from '../../src/enforce/enforcer';
import { Metrics } from '../../src/metrics/registry';
import type { DeviceIdentity } from '../../src/model/device-identity';
import { FIXTURE_PODS, addAttachment, addVolume, copyTree, memoryStore, quietLog } from '../helpers/fixtures';

const V1_RIOPS = 'blkio.throttle.read_iops_device';
const trees: string[] = [];
afterEach(() => {
  for (const t of trees.splice(0)) fs.rmSync(t, { recursive: true, force: true });
});

function setup(identity: DeviceIdentity) {
  const tree = copyTree('v1-cgroupfs');
  trees.push(tree);
  const base = path.join(tree, 'blkio');
  const store = memoryStore();
  const metrics = new Metrics();
  const refound: string[] = [];
  let id = identity;
  const enforcer = new Enforcer({
    blkio: blkioFor({ version: 'v1', base }), kubelet: { cgroupRoot: '/', cgroupDriver: 'cgroupfs' }, root: hostRoot({ cgroup: tree }), store, log: quietLog(), metrics,
    identify: () => id, refind: (name) => refound.push(name),
  });
  const vol = addVolume(store, { name: 'db', deviceNumber: '7:5', max: { readIops: 200 } });
  const pod = `${base}/kubepods/burstable/pod${FIXTURE_PODS.burstable}`;
  const att = addAttachment(store, vol, FIXTURE_PODS.burstable, pod, 'v1');
  const rule = () => fs.readFileSync(path.join(pod, V1_RIOPS), 'utf8');
  return { store, metrics, enforcer, vol, att, pod, rule, refound, set: (next: DeviceIdentity) => (id = next) };
}

describe('enforcer: a device confirmed as the volume\'s before its rules are touched', () => {
  it("writes nothing for a number that is another's, records it once, asks for the device again, and throws for an attach", async () => {
    const { store, metrics, enforcer, vol, att, rule, refound } = setup({ is: 'other', why: 'loop device 7:5 is backed by /elsewhere.img' });
    expect(enforcer.apply(att, vol, 'qos-change')).toMatchObject({ writes: 0, refused: 'device 7:5 recorded for volume db is not its own any more' });
    expect(enforcer.apply(att, vol, 'controller').writes).toBe(0);
    expect(rule()).toBe('');
    expect(() => enforcer.confirmDevice(vol)).toThrow('device 7:5 recorded for volume db is not its own any more; qosd is finding its device again: retry');
    const events = store.events.list('db').filter((e) => e.kind === 'device-mismatch');
    expect(events).toEqual([expect.objectContaining({ detail: { device: '7:5', found: 'other', why: 'loop device 7:5 is backed by /elsewhere.img' } })]);
    expect(refound).toEqual(['db']);
    expect(await metrics.registry.getSingleMetricAsString('qosd_device_mismatches_total')).toContain('qosd_device_mismatches_total{found="other"} 1');
  });

  it("leaves the rules of a number that is another's on detach, and clears ours from a number that is nobody's", () => {
    const { enforcer, vol, att, pod, rule, set } = setup({ is: 'ours' });
    expect(enforcer.apply(att, vol, 'attach').writes).toBeGreaterThan(0);
    expect(rule()).toBe('7:5 200');
    set({ is: 'other', why: 'another file' });
    enforcer.clear(att);
    expect(rule()).toBe('7:5 200');
    set({ is: 'gone', why: 'no such device' });
    enforcer.clear(att);
    expect(rule()).toBe('7:5 0');
    expect(fs.existsSync(pod)).toBe(true);
  });

  it("an attachment from before the volume's device moved (a reboot): its old number, now another's, is left alone without calling the volume mismatched", () => {
    const { store, enforcer, vol, att, rule, refound, set } = setup({ is: 'ours' });
    enforcer.apply(att, vol, 'attach');
    store.volumes.update(vol.name, { deviceNumber: '7:9' }, new Date().toISOString()); // recovery found it at 7:9
    set({ is: 'other', why: 'another file' });
    enforcer.clear(att);
    expect(rule()).toBe('7:5 200');
    expect(store.events.list('db').filter((e) => e.kind === 'device-mismatch')).toEqual([]);
    expect(refound).toEqual([]);
  });
});
