// The CSI Identity and Node services over the real socket, with a real gRPC client (the protos
// kubelet's calls are encoded with), on a real daemon: loop devices, mounts checked in the host's
// mount table, cgroup v1 rules read back and measured with dd from inside the pod's cgroup.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasXfs, nodeTestBlocker } from '../helpers/host';
import { useTestDaemon, VERSION_OF_PACKAGE } from '../helpers/daemon';
import { ddRead, makeLeaf, makePodCgroup, newPodUid, ruleLines } from '../helpers/cgroup';
import { expectThrottled, unthrottledReads } from '../helpers/throttle';
import { blockCapability, csiBlockTarget, csiClient, csiMountTarget, mountCapability, podInfo, type CsiClient } from '../helpers/csi';
import { readMountinfo } from '../../src/host/mountinfo';
import { hostRoot } from '../../src/host/host-root';
import { deviceOf, formatDevice } from '../../src/host/block-device';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

interface Vol { name: string; device: string; deviceNumber: string; sizeBytes: number }
interface Usage { total: string; available: string; used: string; unit: string }
interface Stats { usage: Usage[]; volume_condition: { abnormal: boolean; message: string } }
const RIOPS = 'blkio.throttle.read_iops_device';
/** Whether this process holds CAP_SYS_RESOURCE (bit 24), which growing a mounted ext4 needs. */
const hasCapSysResource = () => ((BigInt(`0x${/CapEff:\s*([0-9a-f]+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]}`) >> 24n) & 1n) === 1n;
const mountsAt = (target: string) => readMountinfo(hostRoot()).filter((m) => m.mountPoint === target);

describe.skipIf(blocker)(`CSI node service on the socket${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  const fx = useTestDaemon();
  let csi: CsiClient;
  beforeAll(() => {
    csi = csiClient(fx.node.csiSocket);
  });
  afterAll(() => csi?.close());

  async function volume(name: string, body: Record<string, unknown> = {}): Promise<Vol> {
    const r = await fx.api<Vol>('POST', '/v1/volumes', { name, size: '32Mi', ...body });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body;
  }

  function pod() {
    const podUid = newPodUid();
    const podCgroup = makePodCgroup(fx.node.cgroupRoot, podUid);
    return { podUid, podCgroup, leaf: makeLeaf(podCgroup) };
  }

  /** A publish request as kubelet 1.20 sends it, the parent of the target made as kubelet makes it. */
  function publishReq(volumeId: string, target: string, podUid: string, over: Record<string, unknown> = {}) {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    return { volume_id: volumeId, target_path: target, volume_capability: mountCapability(), readonly: false, volume_context: podInfo(podUid), ...over };
  }

  describe('Identity', () => {
    it('names the driver nvme.qosd.io with the package version', async () => {
      const info = await csi.call<{ name: string; vendor_version: string }>('Identity', 'GetPluginInfo');
      expect(info).toMatchObject({ name: 'nvme.qosd.io', vendor_version: VERSION_OF_PACKAGE });
    });
    it('offers volume accessibility constraints (a volume lives on one node)', async () => {
      const caps = await csi.call<{ capabilities: { service: { type: string } }[] }>('Identity', 'GetPluginCapabilities');
      expect(caps.capabilities.map((c) => c.service?.type)).toContain('VOLUME_ACCESSIBILITY_CONSTRAINTS');
    });
    it('probes ready', async () => {
      expect(await csi.call('Identity', 'Probe')).toMatchObject({ ready: { value: true } });
    });
  });

  describe('NodeGetInfo and NodeGetCapabilities', () => {
    it('gives the node name as node id and as the topology.qosd.io/node segment', async () => {
      const info = await csi.call<Record<string, unknown>>('Node', 'NodeGetInfo');
      expect(info).toMatchObject({ node_id: 'qosd-test-node', accessible_topology: { segments: { 'topology.qosd.io/node': 'qosd-test-node' } } });
    });
    it('offers stats, expansion and volume condition, not staging', async () => {
      const caps = await csi.call<{ capabilities: { rpc: { type: string } }[] }>('Node', 'NodeGetCapabilities');
      expect(caps.capabilities.map((c) => c.rpc.type).sort()).toEqual(['EXPAND_VOLUME', 'GET_VOLUME_STATS', 'VOLUME_CONDITION']);
      expect(await csi.code('Node', 'NodeStageVolume', { volume_id: 'x' })).toBe('UNIMPLEMENTED');
      expect(await csi.code('Node', 'NodeUnstageVolume', { volume_id: 'x' })).toBe('UNIMPLEMENTED');
    });
  });

  describe('a filesystem volume with a limit', () => {
    const p = { podUid: '', podCgroup: '', leaf: '' };
    let vol: Vol;
    let target: string;
    beforeAll(async () => {
      Object.assign(p, pod());
      vol = await volume('fsvol', { qos: { max: { readIops: 200 } } });
      target = csiMountTarget(fx.node.kubeletRoot, p.podUid, 'pv-fsvol');
    });

    it('publishes: mounted in the host mount table, the pod throttled to the limit (±15%), source csi', async () => {
      expect(await csi.call('Node', 'NodePublishVolume', publishReq('fsvol', target, p.podUid))).toEqual({});
      expect(mountsAt(target).map((m) => m.device)).toEqual([vol.deviceNumber]);
      expect(ruleLines(p.podCgroup, RIOPS)).toBe(`${vol.deviceNumber} 200`);
      expect(ruleLines(p.leaf, RIOPS)).toBe(`${vol.deviceNumber} 200`);
      const seconds = await ddRead(p.leaf, vol.device, '4k', 600);
      await expectThrottled({ rate: 600 / seconds, limit: 200, baseline: () => unthrottledReads(vol.device, '4k', 600) });
      const atts = (await fx.api<{ attachments: { volume: string; target: string; source: string; podUid: string }[] }>('GET', '/v1/attachments')).body.attachments;
      expect(atts.filter((a) => a.volume === 'fsvol')).toMatchObject([{ target, source: 'csi', podUid: p.podUid }]);
      const events = (await fx.api<{ events: { kind: string; source: string }[] }>('GET', '/v1/volumes/fsvol/events')).body.events;
      expect(events.filter((e) => e.kind === 'attached').map((e) => e.source)).toEqual(['csi']);
    });

    it('answers a repeated publish OK with still one mount', async () => {
      for (let i = 0; i < 3; i++) expect(await csi.code('Node', 'NodePublishVolume', publishReq('fsvol', target, p.podUid))).toBe('OK');
      expect(mountsAt(target)).toHaveLength(1);
    });

    it('refuses the same target read-only with ALREADY_EXISTS, another volume there with FAILED_PRECONDITION', async () => {
      expect(await csi.code('Node', 'NodePublishVolume', publishReq('fsvol', target, p.podUid, { readonly: true }))).toBe('ALREADY_EXISTS');
      await volume('other');
      expect(await csi.code('Node', 'NodePublishVolume', publishReq('other', target, p.podUid))).toBe('FAILED_PRECONDITION');
      expect(mountsAt(target).map((m) => m.device)).toEqual([vol.deviceNumber]);
    });

    it('reports bytes and inodes of the filesystem, and the use grows with a file written', async () => {
      const before = await csi.call<Stats>('Node', 'NodeGetVolumeStats', { volume_id: 'fsvol', volume_path: target });
      expect(before.volume_condition.abnormal).toBe(false);
      const bytes = before.usage.find((u) => u.unit === 'BYTES')!;
      const inodes = before.usage.find((u) => u.unit === 'INODES')!;
      expect(Number(bytes.total)).toBeGreaterThan(vol.sizeBytes * 0.7); // less ext4's journal and tables
      expect(Number(bytes.total)).toBeLessThanOrEqual(vol.sizeBytes);
      expect(Number(inodes.total)).toBeGreaterThan(0);
      fs.writeFileSync(path.join(target, 'four-mib'), Buffer.alloc(4 << 20, 1));
      fs.writeFileSync(path.join(target, 'more'), 'x');
      const after = await csi.call<Stats>('Node', 'NodeGetVolumeStats', { volume_id: 'fsvol', volume_path: target });
      const used = (s: Stats, unit: string) => Number(s.usage.find((u) => u.unit === unit)!.used);
      expect(used(after, 'BYTES') - used(before, 'BYTES')).toBeGreaterThanOrEqual(4 << 20);
      expect(used(after, 'INODES') - used(before, 'INODES')).toBe(2);
    });

    it('answers stats NOT_FOUND for an unknown volume or a path it is not published at, INVALID_ARGUMENT without the fields', async () => {
      expect(await csi.code('Node', 'NodeGetVolumeStats', { volume_id: 'nope', volume_path: target })).toBe('NOT_FOUND');
      expect(await csi.code('Node', 'NodeGetVolumeStats', { volume_id: 'fsvol', volume_path: `${target}-elsewhere` })).toBe('NOT_FOUND');
      // csi-sanity's order: an unknown volume is NOT_FOUND whatever the path; a relative path is never where it is published.
      expect(await csi.code('Node', 'NodeGetVolumeStats', { volume_id: 'nope', volume_path: 'some/path' })).toBe('NOT_FOUND');
      expect(await csi.code('Node', 'NodeGetVolumeStats', { volume_id: 'fsvol', volume_path: 'some/path' })).toBe('NOT_FOUND');
      expect(await csi.code('Node', 'NodeGetVolumeStats', { volume_path: target })).toBe('INVALID_ARGUMENT');
      expect(await csi.code('Node', 'NodeGetVolumeStats', { volume_id: 'fsvol' })).toBe('INVALID_ARGUMENT');
    });

    it('answers expansion of mounted ext4 OK with CAP_SYS_RESOURCE, FAILED_PRECONDITION without (as here) and keeps the size', async () => {
      const r = await csi.code('Node', 'NodeExpandVolume', { volume_id: 'fsvol', volume_path: target, capacity_range: { required_bytes: String(64 << 20) } });
      expect(r).toBe(hasCapSysResource() ? 'OK' : 'FAILED_PRECONDITION');
      if (r !== 'OK') expect((await fx.api<Vol>('GET', '/v1/volumes/fsvol')).body.sizeBytes).toBe(vol.sizeBytes);
      expect(fs.statSync(path.join(target, 'four-mib')).size).toBe(4 << 20);
    });

    it('answers expansion errors with the spec codes', async () => {
      const want = 64 << 20;
      expect(await csi.code('Node', 'NodeExpandVolume', { volume_id: 'fsvol', volume_path: target, capacity_range: { required_bytes: String(want * 2), limit_bytes: String(want) } })).toBe('OUT_OF_RANGE');
      expect(await csi.code('Node', 'NodeExpandVolume', { volume_id: 'nope', volume_path: target })).toBe('NOT_FOUND');
      expect(await csi.code('Node', 'NodeExpandVolume', { volume_id: 'fsvol', volume_path: `${target}-elsewhere` })).toBe('NOT_FOUND');
      expect(await csi.code('Node', 'NodeExpandVolume', { volume_path: target })).toBe('INVALID_ARGUMENT');
      expect(await csi.code('Node', 'NodeExpandVolume', { volume_id: 'fsvol' })).toBe('INVALID_ARGUMENT');
    });

    it('reports the volume abnormal when its mount is gone', async () => {
      fs.rmSync(path.join(target, 'four-mib'));
      // Taken away by hand, as an operator might; reconcile mounts it back within its interval.
      const { execFileSync } = await import('node:child_process');
      execFileSync('umount', [target]);
      const s = await csi.call<Stats>('Node', 'NodeGetVolumeStats', { volume_id: 'fsvol', volume_path: target });
      expect(s.volume_condition).toMatchObject({ abnormal: true, message: expect.stringContaining('not mounted') });
      const until = Date.now() + 10_000;
      while (mountsAt(target).length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      expect((await csi.call<Stats>('Node', 'NodeGetVolumeStats', { volume_id: 'fsvol', volume_path: target })).volume_condition.abnormal).toBe(false);
    });

    it('unpublishes: unmounted, exactly its rules cleared, the target removed; a repeat is OK', async () => {
      expect(await csi.call('Node', 'NodeUnpublishVolume', { volume_id: 'fsvol', target_path: target })).toEqual({});
      expect(mountsAt(target)).toHaveLength(0);
      expect(fs.existsSync(target)).toBe(false);
      expect(ruleLines(p.podCgroup, RIOPS)).toBe('');
      expect(ruleLines(p.leaf, RIOPS)).toBe('');
      expect(await csi.code('Node', 'NodeUnpublishVolume', { volume_id: 'fsvol', target_path: target })).toBe('OK');
      const atts = (await fx.api<{ attachments: { volume: string }[] }>('GET', '/v1/attachments')).body.attachments;
      expect(atts.filter((a) => a.volume === 'fsvol')).toEqual([]);
      // The volume is kept: CSI deletes volumes through the controller, never on unpublish.
      expect((await fx.api('GET', '/v1/volumes/fsvol')).status).toBe(200);
    });

    it('answers unpublish NOT_FOUND for an unknown volume and INVALID_ARGUMENT without its fields', async () => {
      expect(await csi.code('Node', 'NodeUnpublishVolume', { volume_id: 'nope', target_path: target })).toBe('NOT_FOUND');
      expect(await csi.code('Node', 'NodeUnpublishVolume', { target_path: target })).toBe('INVALID_ARGUMENT');
      expect(await csi.code('Node', 'NodeUnpublishVolume', { volume_id: 'fsvol' })).toBe('INVALID_ARGUMENT');
    });
  });

  it.skipIf(!hasXfs)(`grows a published xfs volume online: the filesystem is bigger, the data kept, a repeat OK${hasXfs ? '' : ' (skipped: needs mkfs.xfs, Debian package xfsprogs)'}`, async () => {
    const p = pod();
    await volume('xfsvol', { size: '300Mi', fsType: 'xfs' });
    const target = csiMountTarget(fx.node.kubeletRoot, p.podUid, 'pv-xfsvol');
    expect(await csi.code('Node', 'NodePublishVolume', publishReq('xfsvol', target, p.podUid, { volume_capability: mountCapability('xfs') }))).toBe('OK');
    fs.writeFileSync(path.join(target, 'kept'), 'data');
    const before = fs.statfsSync(target).blocks * fs.statfsSync(target).bsize;
    const want = 600 << 20;
    const r = await csi.call<{ capacity_bytes: string }>('Node', 'NodeExpandVolume', { volume_id: 'xfsvol', volume_path: target, capacity_range: { required_bytes: String(want) } });
    expect(Number(r.capacity_bytes)).toBe(want);
    expect(fs.statfsSync(target).blocks * fs.statfsSync(target).bsize).toBeGreaterThan(before * 1.8);
    expect(fs.readFileSync(path.join(target, 'kept'), 'utf8')).toBe('data');
    // Again, and smaller: already big enough, OK with the size it has.
    const again = await csi.call<{ capacity_bytes: string }>('Node', 'NodeExpandVolume', { volume_id: 'xfsvol', volume_path: target, capacity_range: { required_bytes: String(400 << 20) } });
    expect(Number(again.capacity_bytes)).toBe(want);
    expect(await csi.code('Node', 'NodeUnpublishVolume', { volume_id: 'xfsvol', target_path: target })).toBe('OK');
  });

  describe('limits from the PV volumeAttributes (the flex option names)', () => {
    it('applies maxWriteIops from volume_context to the pod and keeps it on the volume', async () => {
      const p = pod();
      const vol = await volume('attrvol');
      const target = csiMountTarget(fx.node.kubeletRoot, p.podUid, 'pv-attrvol');
      const req = publishReq('attrvol', target, p.podUid, { volume_context: podInfo(p.podUid, { maxWriteIops: '150', 'storage.kubernetes.io/csiProvisionerIdentity': '1-2-nvme.qosd.io' }) });
      expect(await csi.code('Node', 'NodePublishVolume', req)).toBe('OK');
      expect(ruleLines(p.podCgroup, 'blkio.throttle.write_iops_device')).toBe(`${vol.deviceNumber} 150`);
      const got = (await fx.api<{ qos: { max: { writeIops: number } } }>('GET', '/v1/volumes/attrvol')).body;
      expect(got.qos.max.writeIops).toBe(150);
      expect(await csi.code('Node', 'NodeUnpublishVolume', { volume_id: 'attrvol', target_path: target })).toBe('OK');
    });
  });

  describe('a raw block volume', () => {
    it('reaches the pod as the device itself, throttled (±15%), and unpublish removes the file', async () => {
      const p = pod();
      const vol = await volume('blockvol', { qos: { max: { readIops: 250 } } });
      const target = csiBlockTarget(fx.node.kubeletRoot, p.podUid, 'pv-blockvol');
      const req = publishReq('blockvol', target, p.podUid, { volume_capability: blockCapability() });
      expect(await csi.code('Node', 'NodePublishVolume', req)).toBe('OK');
      expect(fs.statSync(target).isBlockDevice()).toBe(true);
      expect(formatDevice(deviceOf(target))).toBe(vol.deviceNumber);
      expect(await csi.code('Node', 'NodePublishVolume', req)).toBe('OK');
      expect(mountsAt(target)).toHaveLength(1);
      expect(await csi.code('Node', 'NodePublishVolume', { ...req, volume_capability: mountCapability() })).toBe('ALREADY_EXISTS');
      expect(ruleLines(p.leaf, RIOPS)).toBe(`${vol.deviceNumber} 250`);
      const seconds = await ddRead(p.leaf, target, '4k', 750);
      await expectThrottled({ rate: 750 / seconds, limit: 250, baseline: () => unthrottledReads(target, '4k', 750) });
      const stats = await csi.call<Stats>('Node', 'NodeGetVolumeStats', { volume_id: 'blockvol', volume_path: target });
      expect(stats.volume_condition.abnormal).toBe(false);
      expect(stats.usage).toMatchObject([{ unit: 'BYTES', total: String(vol.sizeBytes) }]);
      expect(await csi.code('Node', 'NodeUnpublishVolume', { volume_id: 'blockvol', target_path: target })).toBe('OK');
      expect(mountsAt(target)).toHaveLength(0);
      expect(fs.existsSync(target)).toBe(false);
      expect(ruleLines(p.leaf, RIOPS)).toBe('');
    });
  });

  describe('bad requests get the spec code, name the field, and change nothing', () => {
    it('each malformed publish', async () => {
      const p = pod();
      await volume('badvol');
      const target = csiMountTarget(fx.node.kubeletRoot, p.podUid, 'pv-badvol');
      const ok = publishReq('badvol', target, p.podUid);
      const cases: [string, Record<string, unknown>, string, string][] = [
        ['no volume_id', { volume_id: '' }, 'INVALID_ARGUMENT', 'volume_id'],
        ['no target_path', { target_path: '' }, 'INVALID_ARGUMENT', 'target_path'],
        ['relative target', { target_path: 'pods/x/mount' }, 'INVALID_ARGUMENT', 'target_path'],
        ['target outside kubelet', { target_path: '/tmp/qosd-csi-elsewhere/mount' }, 'INVALID_ARGUMENT', 'target_path'],
        ['no capability', { volume_capability: null }, 'INVALID_ARGUMENT', 'volume_capability'],
        ['no access mode', { volume_capability: { mount: { fs_type: 'ext4' } } }, 'INVALID_ARGUMENT', 'access_mode'],
        ['multi-node writer', { volume_capability: mountCapability('ext4', 'MULTI_NODE_MULTI_WRITER') }, 'FAILED_PRECONDITION', 'access_mode'],
        ['neither block nor mount', { volume_capability: { access_mode: { mode: 'SINGLE_NODE_WRITER' } } }, 'INVALID_ARGUMENT', 'volume_capability'],
        ['fs type', { volume_capability: mountCapability('btrfs') }, 'INVALID_ARGUMENT', 'fs_type'],
        ['other fs than the volume has', { volume_capability: mountCapability('xfs') }, 'INVALID_ARGUMENT', 'fsType'],
        ['mount flags', { volume_capability: { mount: { fs_type: 'ext4', mount_flags: ['exec'] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } } }, 'INVALID_ARGUMENT', 'mount_flags'],
        ['unknown context key', { volume_context: podInfo(p.podUid, { maxReadIOPS: '5' }) }, 'INVALID_ARGUMENT', 'maxReadIOPS'],
        ['bad limit', { volume_context: podInfo(p.podUid, { maxReadIops: 'lots' }) }, 'INVALID_ARGUMENT', 'maxReadIops'],
        ['bad pod uid', { volume_context: podInfo('not-a-uid') }, 'INVALID_ARGUMENT', 'pod.uid'],
        ['unknown class', { volume_context: podInfo(p.podUid, { class: 'platinum' }) }, 'INVALID_ARGUMENT', 'class'],
        ['unknown volume', { volume_id: 'no-such-volume' }, 'NOT_FOUND', 'no-such-volume'],
      ];
      const before = { mounts: readMountinfo(hostRoot()).length, atts: (await fx.api<{ attachments: unknown[] }>('GET', '/v1/attachments')).body.attachments.length };
      for (const [what, over, code, names] of cases) {
        const r = await csi.answer('Node', 'NodePublishVolume', { ...ok, ...over });
        expect(r.code, `${what}: ${r.details}`).toBe(code);
        expect(r.details, what).toContain(names);
      }
      expect(readMountinfo(hostRoot()).length).toBe(before.mounts);
      expect((await fx.api<{ attachments: unknown[] }>('GET', '/v1/attachments')).body.attachments.length).toBe(before.atts);
      expect(fs.existsSync(target)).toBe(false);
      expect((await fx.api('GET', '/v1/volumes/no-such-volume')).status).toBe(404);
      expect(ruleLines(p.podCgroup, RIOPS)).toBe('');
    });
  });
});
