// The CSI Controller service over the real socket with a real gRPC client, on a real daemon whose
// pool's IO budget holds exactly two volumes of the built-in `high` class: CreateVolume (as
// external-provisioner sends it), its idempotency and codes, GetCapacity that answers 0 bytes for
// a class the pool can no longer guarantee, expansion, live QoS changes reaching a published
// pod's cgroups, and DeleteVolume.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeTestBlocker } from '../helpers/host';
import { useTestDaemon } from '../helpers/daemon';
import { makeLeaf, makePodCgroup, newPodUid, ruleLines } from '../helpers/cgroup';
import { blockCapability, csiClient, csiMountTarget, mountCapability, podInfo, type CsiClient } from '../helpers/csi';
import { spawnSync } from 'node:child_process';

const blocker = nodeTestBlocker();
if (blocker && process.env.QOSD_REQUIRE_NODE_TESTS === '1') throw new Error(`node tests required but cannot run: ${blocker}`);

const NODE = 'qosd-test-node';
const HERE = { segments: { 'topology.qosd.io/node': NODE } };
// high guarantees 20000 IOPS and 500M/s each way: 10% of this device per figure, 40% in all, so
// two fit in the 90% that may be promised and a third does not.
const TWO_HIGH = '{ readIops: 200000, writeIops: 200000, readBps: 5000M, writeBps: 5000M }';
const MiB = 1024 * 1024;

interface Vol { name: string; sizeBytes: number; class: string; fsType: string; deviceNumber: string; qos: { min: Record<string, number>; max: Record<string, number> } }
interface Created { volume: { volume_id: string; capacity_bytes: string; accessible_topology: { segments: Record<string, string> }[] } }

describe.skipIf(blocker)(`CSI controller service on the socket${blocker ? ` (skipped: ${blocker})` : ''}`, () => {
  const fx = useTestDaemon('', TWO_HIGH);
  let csi: CsiClient;
  beforeAll(() => {
    csi = csiClient(fx.node.csiSocket);
  });
  afterAll(() => csi?.close());

  /** A CreateVolume as external-provisioner sends it for a PVC (strict topology, extra metadata). */
  function createReq(name: string, over: Record<string, unknown> = {}) {
    return {
      name, capacity_range: { required_bytes: String(32 * MiB) }, volume_capabilities: [mountCapability()],
      parameters: { 'csi.storage.k8s.io/pvc/name': 'data', 'csi.storage.k8s.io/pvc/namespace': 'default', 'csi.storage.k8s.io/pv/name': name },
      accessibility_requirements: { requisite: [HERE], preferred: [HERE] }, ...over,
    };
  }
  const volume = async (name: string) => fx.api<Vol>('GET', `/v1/volumes/${name}`);

  it('offers create/delete, capacity, expansion and modify; the plugin offers the controller and online expansion', async () => {
    const caps = await csi.call<{ capabilities: { rpc: { type: string } }[] }>('Controller', 'ControllerGetCapabilities');
    expect(caps.capabilities.map((c) => c.rpc.type).sort()).toEqual(['CREATE_DELETE_VOLUME', 'EXPAND_VOLUME', 'GET_CAPACITY', 'MODIFY_VOLUME']);
    const plugin = await csi.call<{ capabilities: { service?: { type: string }; volume_expansion?: { type: string } }[] }>('Identity', 'GetPluginCapabilities');
    expect(plugin.capabilities.map((c) => c.service?.type ?? `expansion ${c.volume_expansion?.type}`).sort()).toEqual(['CONTROLLER_SERVICE', 'VOLUME_ACCESSIBILITY_CONSTRAINTS', 'expansion ONLINE']);
  });

  it('makes no filesystem on a volume asked for as a raw block device; a first mount as a filesystem makes one', async () => {
    const r = await csi.call<Created>('Controller', 'CreateVolume', createReq('pvc-raw', { volume_capabilities: [blockCapability()] }));
    expect(r.volume.volume_id).toBe('pvc-raw');
    const v = (await fx.api<Vol & { device: string; formatted?: boolean }>('GET', '/v1/volumes/pvc-raw')).body;
    const probe = spawnSync('blkid', ['-p', v.device], { encoding: 'utf8' });
    expect(probe.status, probe.stdout).toBe(2); // nothing on it
    // Grown, it is still raw: the device is bigger and no filesystem is looked for or made.
    const grown = await csi.call<{ capacity_bytes: string }>('Controller', 'ControllerExpandVolume', { volume_id: 'pvc-raw', capacity_range: { required_bytes: String(96 * MiB) } });
    expect(grown.capacity_bytes).toBe(String(96 * MiB));
    expect(spawnSync('blockdev', ['--getsize64', v.device], { encoding: 'utf8' }).stdout.trim()).toBe(String(96 * MiB));
    expect(spawnSync('blkid', ['-p', v.device], { encoding: 'utf8' }).status).toBe(2);
    // Published as a filesystem (a later PV of it with volumeMode Filesystem): formatted then.
    const podUid = newPodUid();
    makeLeaf(makePodCgroup(fx.node.cgroupRoot, podUid));
    const target = csiMountTarget(fx.node.kubeletRoot, podUid, 'pv-raw');
    fs.mkdirSync(path.dirname(target), { recursive: true });
    expect(await csi.code('Node', 'NodePublishVolume', { volume_id: 'pvc-raw', target_path: target, volume_capability: mountCapability(), readonly: false, volume_context: podInfo(podUid) })).toBe('OK');
    expect(spawnSync('blkid', ['-p', '-o', 'value', '-s', 'TYPE', v.device], { encoding: 'utf8' }).stdout.trim()).toBe('ext4');
    expect(await csi.code('Node', 'NodeUnpublishVolume', { volume_id: 'pvc-raw', target_path: target })).toBe('OK');
    expect(await csi.code('Controller', 'DeleteVolume', { volume_id: 'pvc-raw' })).toBe('OK');
  });

  it('creates a volume with the StorageClass parameters on this node, once for repeated calls', async () => {
    const req = createReq('pvc-1', { parameters: { ...createReq('').parameters, class: 'best-effort', minReadIops: '100', maxReadIops: '300', fsType: 'ext4' } });
    const r = await csi.call<Created>('Controller', 'CreateVolume', req);
    expect(r.volume).toMatchObject({ volume_id: 'pvc-1', capacity_bytes: String(32 * MiB), accessible_topology: [HERE] });
    const v = (await volume('pvc-1')).body;
    expect(v).toMatchObject({ class: 'best-effort', fsType: 'ext4', sizeBytes: 32 * MiB });
    expect(v.qos).toEqual({ min: { readIops: 100 }, max: { readIops: 300 } });
    for (let i = 0; i < 3; i++) expect((await csi.call<Created>('Controller', 'CreateVolume', req)).volume.volume_id).toBe('pvc-1');
    const events = (await fx.api<{ events: { kind: string; source: string }[] }>('GET', '/v1/volumes/pvc-1/events')).body.events;
    expect(events.filter((e) => e.kind === 'volume-created').map((e) => e.source)).toEqual(['csi']);
  });

  it('takes any CSI name (csi-sanity names volumes in capitals): the volume id is a qosd name, the same for a repeat', async () => {
    const a = await csi.call<Created>('Controller', 'CreateVolume', createReq('Sanity-Controller-Create-C8645155'));
    expect(a.volume.volume_id).toMatch(/^sanity-controller-create-c8645155-[0-9a-f]{16}$/);
    const again = await csi.call<Created>('Controller', 'CreateVolume', createReq('Sanity-Controller-Create-C8645155'));
    expect(again.volume.volume_id).toBe(a.volume.volume_id);
    expect((await volume(a.volume.volume_id)).status).toBe(200);
    expect(await csi.code('Controller', 'DeleteVolume', { volume_id: a.volume.volume_id })).toBe('OK');
    expect((await volume(a.volume.volume_id)).status).toBe(404);
  });

  it('answers the same name with other arguments ALREADY_EXISTS, changing nothing', async () => {
    const base = createReq('pvc-1', { parameters: { minReadIops: '100', maxReadIops: '300' } });
    expect(await csi.code('Controller', 'CreateVolume', base)).toBe('OK');
    expect(await csi.code('Controller', 'CreateVolume', { ...base, capacity_range: { required_bytes: String(64 * MiB) } })).toBe('ALREADY_EXISTS');
    expect(await csi.code('Controller', 'CreateVolume', { ...base, parameters: { minReadIops: '100', maxReadIops: '400' } })).toBe('ALREADY_EXISTS');
    expect(await csi.code('Controller', 'CreateVolume', { ...base, parameters: { class: 'medium' } })).toBe('ALREADY_EXISTS');
    expect(await csi.code('Controller', 'CreateVolume', { ...base, volume_capabilities: [mountCapability('xfs')] })).toBe('ALREADY_EXISTS');
    expect((await volume('pvc-1')).body).toMatchObject({ sizeBytes: 32 * MiB, fsType: 'ext4' });
  });

  it('refuses bad requests with the spec codes, naming the field, creating nothing', async () => {
    const cases: [string, Record<string, unknown>, string, string][] = [
      ['no name', { name: '' }, 'INVALID_ARGUMENT', 'name'],
      ['no capabilities', { volume_capabilities: [] }, 'INVALID_ARGUMENT', 'volume_capabilities'],
      ['multi-node', { volume_capabilities: [mountCapability('ext4', 'MULTI_NODE_MULTI_WRITER')] }, 'FAILED_PRECONDITION', 'access_mode'],
      ['unknown parameter', { parameters: { maxReadIOPS: '5' } }, 'INVALID_ARGUMENT', 'parameters["maxReadIOPS"]'],
      ['bad figure', { parameters: { minWriteBps: 'fast' } }, 'INVALID_ARGUMENT', 'minWriteBps'],
      ['guarantee above limit', { parameters: { minReadIops: '500', maxReadIops: '300' } }, 'INVALID_ARGUMENT', 'parameters["minReadIops"]'],
      ['unknown class', { parameters: { class: 'platinum' } }, 'INVALID_ARGUMENT', 'class'],
      ['unknown pool', { parameters: { pool: 'ssd' } }, 'INVALID_ARGUMENT', 'pool'],
      ['immutable key as mutable', { mutable_parameters: { pool: 'default' } }, 'INVALID_ARGUMENT', 'mutable_parameters["pool"]'],
      ['fake mutable key', { mutable_parameters: { XXX_FakeKey: 'x' } }, 'INVALID_ARGUMENT', 'XXX_FakeKey'],
      ['from a snapshot', { volume_content_source: { snapshot: { snapshot_id: 'snap-1' } } }, 'INVALID_ARGUMENT', 'volume_content_source'],
      ['two filesystems', { volume_capabilities: [mountCapability('ext4'), mountCapability('xfs')] }, 'INVALID_ARGUMENT', 'volume_capabilities'],
      ['range upside down', { capacity_range: { required_bytes: String(64 * MiB), limit_bytes: String(32 * MiB) } }, 'OUT_OF_RANGE', 'capacity_range'],
      ['another node', { accessibility_requirements: { requisite: [{ segments: { 'topology.qosd.io/node': 'other' } }], preferred: [] } }, 'RESOURCE_EXHAUSTED', 'other'.length ? NODE : ''],
    ];
    for (const [what, over, code, names] of cases) {
      const name = `pvc-bad-${cases.findIndex((c) => c[0] === what)}`;
      const r = await csi.answer('Controller', 'CreateVolume', createReq(name, over));
      expect(r.code, `${what}: ${r.details}`).toBe(code);
      expect(r.details, what).toContain(names);
      expect((await volume(name)).status, what).toBe(404);
    }
  });

  it('answers GetCapacity for high > 0 falling with the device time promised, then 0 once two high volumes hold the budget; best-effort still gets the free bytes; a third high is RESOURCE_EXHAUSTED', async () => {
    const answer = async (parameters: Record<string, string>, topology: unknown = HERE) => {
      const r = await csi.call<{ available_capacity: string; maximum_volume_size: { value: string } }>('Controller', 'GetCapacity', { volume_capabilities: [mountCapability()], parameters, accessible_topology: topology });
      return { capacity: Number(r.available_capacity), max: Number(r.maximum_volume_size.value) };
    };
    const cap = async (parameters: Record<string, string>, topology: unknown = HERE) => (await answer(parameters, topology)).capacity;
    const freeBefore = await cap({ class: 'best-effort' });
    expect(freeBefore).toBeGreaterThan(64 * MiB);
    // Both are the pool's free bytes, read a moment apart from a filesystem that other test files
    // (and CI's Kubernetes build) write to meanwhile: equal within that churn, not to the byte.
    expect(Math.abs((await cap({ class: 'high' })) - freeBefore)).toBeLessThan(0.01 * freeBefore);
    await csi.call('Controller', 'CreateVolume', createReq('pvc-high-1', { parameters: { class: 'high' } }));
    // 40% of the device promised, 50% of the 90% promisable left: the largest volume is still the
    // free space, the capacity the scheduler scores by is 5/9 of it
    const one = await answer({ class: 'high' });
    expect(Math.abs(one.capacity / one.max - 5 / 9)).toBeLessThan(0.001);
    expect(Math.abs(one.max - freeBefore)).toBeLessThan(0.01 * freeBefore);
    expect(Math.abs((await cap({ class: 'best-effort' })) - freeBefore)).toBeLessThan(0.01 * freeBefore);
    await csi.call('Controller', 'CreateVolume', createReq('pvc-high-2', { parameters: { class: 'high' } }));
    expect(await answer({ class: 'high' })).toEqual({ capacity: 0, max: 0 });
    expect(await cap({ class: 'best-effort', minWriteBps: '600M' })).toBe(0); // 12% of the device, and 10% is left
    expect(await cap({ class: 'best-effort', minWriteBps: '400M' })).toBeGreaterThan(0);
    expect(await cap({ class: 'best-effort' })).toBeGreaterThan(64 * MiB);
    expect(await cap({ class: 'best-effort' }, { segments: { 'topology.qosd.io/node': 'other' } })).toBe(0);
    try {
      await csi.call('Controller', 'CreateVolume', createReq('pvc-high-3', { parameters: { class: 'high' } }));
      expect.fail('a third high volume was admitted');
    } catch (err) {
      const e = err as { code: number; details: string };
      expect(e.code).toBe(8); // RESOURCE_EXHAUSTED
      // as kubelet and the sidecars get it: no "%" (kubelet formats event text with it, see util/kubelet-text.ts)
      expect(e.details).toBe('pool default: this guarantee needs 40 percent of the device (minReadIops 20000 = 10 percent, minWriteIops 20000 = 10 percent, minReadBps 500M = 10 percent, minWriteBps 500M = 10 percent); 10 percent of the 90 percent promisable is left');
    }
    expect((await volume('pvc-high-3')).status).toBe(404);
    expect(await csi.code('Controller', 'GetCapacity', { parameters: { class: 'platinum' } })).toBe('INVALID_ARGUMENT');
  });

  it('validates capabilities against the volume', async () => {
    const ok = await csi.call<{ confirmed: { volume_capabilities: unknown[] } | null; message: string }>('Controller', 'ValidateVolumeCapabilities', { volume_id: 'pvc-1', volume_capabilities: [mountCapability()] });
    expect(ok.confirmed?.volume_capabilities).toHaveLength(1);
    const no = await csi.call<{ confirmed: unknown; message: string }>('Controller', 'ValidateVolumeCapabilities', { volume_id: 'pvc-1', volume_capabilities: [mountCapability('xfs')] });
    expect(no.confirmed).toBeNull();
    expect(no.message).toContain('ext4');
    expect(await csi.code('Controller', 'ValidateVolumeCapabilities', { volume_id: 'nope', volume_capabilities: [mountCapability()] })).toBe('NOT_FOUND');
    expect(await csi.code('Controller', 'ValidateVolumeCapabilities', { volume_capabilities: [mountCapability()] })).toBe('INVALID_ARGUMENT');
    expect(await csi.code('Controller', 'ValidateVolumeCapabilities', { volume_id: 'pvc-1' })).toBe('INVALID_ARGUMENT');
  });

  it('expands a volume (device and filesystem, so the node has nothing left to do); codes for the rest', async () => {
    const r = await csi.call<{ capacity_bytes: string; node_expansion_required: boolean }>('Controller', 'ControllerExpandVolume', { volume_id: 'pvc-1', capacity_range: { required_bytes: String(48 * MiB) } });
    expect(r).toEqual({ capacity_bytes: String(48 * MiB), node_expansion_required: false });
    expect((await volume('pvc-1')).body.sizeBytes).toBe(48 * MiB);
    const again = await csi.call<{ capacity_bytes: string }>('Controller', 'ControllerExpandVolume', { volume_id: 'pvc-1', capacity_range: { required_bytes: String(40 * MiB) } });
    expect(again.capacity_bytes).toBe(String(48 * MiB));
    expect(await csi.code('Controller', 'ControllerExpandVolume', { volume_id: 'nope', capacity_range: { required_bytes: '1' } })).toBe('NOT_FOUND');
    expect(await csi.code('Controller', 'ControllerExpandVolume', { volume_id: 'pvc-1' })).toBe('INVALID_ARGUMENT');
    expect(await csi.code('Controller', 'ControllerExpandVolume', { capacity_range: { required_bytes: '1' } })).toBe('INVALID_ARGUMENT');
  });

  it("modifies a published volume's QoS at once in the pod's cgroups; a bad key changes nothing; delete refuses while published", async () => {
    const podUid = newPodUid();
    const podCgroup = makePodCgroup(fx.node.cgroupRoot, podUid);
    const leaf = makeLeaf(podCgroup);
    const target = csiMountTarget(fx.node.kubeletRoot, podUid, 'pvc-1');
    fs.mkdirSync(path.dirname(target), { recursive: true });
    expect(await csi.code('Node', 'NodePublishVolume', { volume_id: 'pvc-1', target_path: target, volume_capability: mountCapability(), volume_context: podInfo(podUid) })).toBe('OK');
    const dev = (await volume('pvc-1')).body.deviceNumber;
    expect(ruleLines(leaf, 'blkio.throttle.read_iops_device')).toBe(`${dev} 300`);

    expect(await csi.call('Controller', 'ControllerModifyVolume', { volume_id: 'pvc-1', mutable_parameters: { maxReadIops: '500', maxWriteIops: '250' } })).toEqual({});
    expect(ruleLines(leaf, 'blkio.throttle.read_iops_device')).toBe(`${dev} 500`);
    expect(ruleLines(leaf, 'blkio.throttle.write_iops_device')).toBe(`${dev} 250`);
    expect(await csi.code('Controller', 'ControllerModifyVolume', { volume_id: 'pvc-1', mutable_parameters: { maxReadIops: '500', maxWriteIops: '250' } })).toBe('OK');

    const before = (await volume('pvc-1')).body;
    expect(await csi.code('Controller', 'ControllerModifyVolume', { volume_id: 'pvc-1', mutable_parameters: { maxReadIops: '100', XXX_FakeKey: 'x' } })).toBe('INVALID_ARGUMENT');
    expect(await csi.code('Controller', 'ControllerModifyVolume', { volume_id: 'pvc-1', mutable_parameters: { maxReadIops: 'lots' } })).toBe('INVALID_ARGUMENT');
    // None named changes nothing, as csi-sanity expects.
    expect(await csi.code('Controller', 'ControllerModifyVolume', { volume_id: 'pvc-1', mutable_parameters: {} })).toBe('OK');
    expect((await volume('pvc-1')).body).toEqual(before);
    expect(await csi.code('Controller', 'ControllerModifyVolume', { volume_id: 'pvc-1', mutable_parameters: { minReadBps: '900M' } })).toBe('RESOURCE_EXHAUSTED');
    expect(await csi.code('Controller', 'ControllerModifyVolume', { volume_id: 'nope', mutable_parameters: { maxReadIops: '1' } })).toBe('NOT_FOUND');
    expect(await csi.code('Controller', 'ControllerModifyVolume', { mutable_parameters: { maxReadIops: '1' } })).toBe('INVALID_ARGUMENT');
    expect((await volume('pvc-1')).body.qos).toEqual(before.qos);
    expect(ruleLines(leaf, 'blkio.throttle.read_iops_device')).toBe(`${dev} 500`);

    expect(await csi.code('Controller', 'DeleteVolume', { volume_id: 'pvc-1' })).toBe('FAILED_PRECONDITION');
    expect((await volume('pvc-1')).status).toBe(200);
    expect(await csi.code('Node', 'NodeUnpublishVolume', { volume_id: 'pvc-1', target_path: target })).toBe('OK');
  });

  it('deletes a volume: gone with its storage; a repeat and an unknown id are OK; no id is INVALID_ARGUMENT', async () => {
    const backing = path.join(fx.node.poolDir, 'pvc-1.img');
    expect(fs.existsSync(backing)).toBe(true);
    expect(await csi.call('Controller', 'DeleteVolume', { volume_id: 'pvc-1' })).toEqual({});
    expect((await volume('pvc-1')).status).toBe(404);
    expect(fs.existsSync(backing)).toBe(false);
    expect(await csi.code('Controller', 'DeleteVolume', { volume_id: 'pvc-1' })).toBe('OK');
    expect(await csi.code('Controller', 'DeleteVolume', { volume_id: 'never-was' })).toBe('OK');
    expect(await csi.code('Controller', 'DeleteVolume', {})).toBe('INVALID_ARGUMENT');
  });
});
