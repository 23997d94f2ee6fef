// StorageClass parameters, VolumeAttributesClass mutable parameters, capacity ranges and topology
// as the CSI controller reads them (no root, no socket).
import { describe, expect, it } from 'vitest';
import { capabilitiesFsType, classRequest, inParameters, qosChange, reachesNode, sizeOf, volumeNameFor } from '../../src/csi/controller-requests';
import { QosdError } from '../../src/model/errors';
import { CsiError } from '../../src/csi/status';

const MiB = 1024 * 1024;
const cap = (fs_type: string) => ({ mount: { fs_type, mount_flags: [], volume_mount_group: '' }, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' }) as never;

function failure(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return `${err instanceof CsiError ? `grpc ${err.code}` : (err as QosdError).code}: ${(err as Error).message}`;
  }
  return 'OK';
}

describe('StorageClass parameters', () => {
  it('take the flex option names; mutable parameters win; Kubernetes keys are skipped', () => {
    const params = { pool: 'nvme', class: 'medium', fsType: 'xfs', maxReadIops: '800', minWriteIops: '100', 'csi.storage.k8s.io/pvc/name': 'data' };
    expect(classRequest('pvc-1', params, { class: 'high', maxReadIops: '900', maxWriteBps: '100M' })).toEqual({
      name: 'pvc-1', pool: 'nvme', fsType: 'xfs', class: 'high', qos: { min: { writeIops: 100 }, max: { readIops: 900, writeBps: 100_000_000 } },
    });
    expect(classRequest('pvc-2', {}, {})).toEqual({ name: 'pvc-2' });
  });

  it('name the key that is wrong', () => {
    expect(failure(() => classRequest('v', { maxReadIOPS: '1' }, {}))).toBe('InvalidArgument: parameters["maxReadIOPS"]: unknown key (known: pool, class, fsType, maxReadIops, minReadIops, maxWriteIops, minWriteIops, maxReadBps, minReadBps, maxWriteBps, minWriteBps, readLatencyTarget, writeLatencyTarget)');
    expect(failure(() => classRequest('v', { fsType: 'zfs' }, {}))).toContain('parameters["fsType"]');
    expect(failure(() => classRequest('v', {}, { pool: 'nvme' }))).toContain('mutable_parameters["pool"]: unknown key');
    expect(failure(() => classRequest('v', {}, { maxReadBps: '1.5' }))).toContain('mutable_parameters["maxReadBps"]');
  });
});

describe('ControllerModifyVolume parameters', () => {
  it('change only what they name', () => {
    expect(qosChange({ maxReadIops: '500' })).toEqual({ min: {}, max: { readIops: 500 } });
    expect(qosChange({ class: 'high' })).toEqual({ class: 'high' });
    expect(qosChange({})).toEqual({}); // nothing named: nothing changes (csi-sanity modifies so)
  });
  it('refuse unknown keys and bad values', () => {
    expect(failure(() => qosChange({ XXX_FakeKey: '1' }))).toContain('mutable_parameters["XXX_FakeKey"]: unknown key');
    expect(failure(() => qosChange({ minWriteIops: '-1' }))).toContain('mutable_parameters["minWriteIops"]');
  });
});

describe('capacity ranges', () => {
  it('round required bytes up to a whole MiB within the limit; none set: the default', () => {
    expect(sizeOf(null, 10 * MiB)).toBeUndefined();
    expect(sizeOf({ required_bytes: '0', limit_bytes: '0' }, 10 * MiB)).toBeUndefined();
    expect(sizeOf({ required_bytes: String(5 * MiB + 1), limit_bytes: '' }, 10 * MiB)).toBe(6 * MiB);
    expect(sizeOf({ required_bytes: String(5 * MiB + 1), limit_bytes: String(5 * MiB + 10) }, 10 * MiB)).toBe(5 * MiB + 10);
    expect(sizeOf({ required_bytes: '', limit_bytes: String(4 * MiB) }, 10 * MiB)).toBe(4 * MiB);
    expect(sizeOf({ required_bytes: '1', limit_bytes: '' }, 10 * MiB)).toBe(MiB);
  });
  it('are OUT_OF_RANGE when they cannot be met', () => {
    expect(failure(() => sizeOf({ required_bytes: String(2 * MiB), limit_bytes: String(MiB) }, MiB))).toMatch(/^grpc 11: capacity_range: required_bytes/);
    expect(failure(() => sizeOf({ required_bytes: '', limit_bytes: '4096' }, MiB))).toMatch(/^grpc 11: capacity_range.limit_bytes/);
    expect(failure(() => sizeOf({ required_bytes: '-5', limit_bytes: '' }, MiB))).toMatch(/^grpc 11/);
  });
});

describe('capabilities and topology', () => {
  it('take one filesystem across the capabilities', () => {
    expect(capabilitiesFsType([cap('xfs'), cap('')])).toBe('xfs');
    expect(failure(() => capabilitiesFsType([]))).toBe('InvalidArgument: volume_capabilities: missing');
    expect(failure(() => capabilitiesFsType([cap('xfs'), cap('ext4')]))).toContain('one filesystem');
  });
  it('reach this node only when a topology names it (none named: any)', () => {
    expect(reachesNode([], 'n1')).toBe(true);
    expect(reachesNode([{ segments: { 'topology.qosd.io/node': 'n1' } }], 'n1')).toBe(true);
    expect(reachesNode([{ segments: { 'topology.qosd.io/node': 'n2' } }], 'n1')).toBe(false);
  });
});

describe('errors of the volume service, as CSI fields', () => {
  it('name parameters["pool"], parameters["minReadIops"], capacity_range', async () => {
    const thrower = (msg: string) => () => {
      throw new QosdError('InvalidArgument', msg);
    };
    expect(failure(() => inParameters(thrower('pool: "x" is not a configured pool')))).toBe('InvalidArgument: parameters["pool"]: "x" is not a configured pool');
    expect(failure(() => inParameters(thrower('min.readIops: guarantee 5 is above the limit max.readIops 1')))).toBe('InvalidArgument: parameters["minReadIops"]: guarantee 5 is above the limit max.readIops 1');
    expect(failure(() => inParameters(thrower('size: too small')))).toBe('InvalidArgument: capacity_range: too small');
    await expect(inParameters(async () => thrower('class: "x" is not a configured class')(), 'mutable_parameters')).rejects.toThrow('mutable_parameters["class"]: "x"');
  });
});

describe('CSI names as qosd volume names', () => {
  it("keeps a name qosd can use (external-provisioner's pvc-<uid>), and makes any other one usable, the same every time", () => {
    expect(volumeNameFor('pvc-6f1f4c2e-9a55-4d0b-8a43-1e2d3c4b5a69')).toBe('pvc-6f1f4c2e-9a55-4d0b-8a43-1e2d3c4b5a69');
    const mixed = volumeNameFor('Sanity-Vol-C8645155');
    expect(mixed).toMatch(/^sanity-vol-c8645155-[0-9a-f]{16}$/);
    expect(volumeNameFor('Sanity-Vol-C8645155')).toBe(mixed);
    // Names that differ only where qosd's alphabet cannot tell them apart stay apart.
    expect(volumeNameFor('sanity vol')).not.toBe(volumeNameFor('sanity/vol'));
    expect(volumeNameFor('---')).toMatch(/^csi-[0-9a-f]{16}$/);
    // The longest CSI name still gives an id CSI accepts (128 bytes).
    expect(volumeNameFor(`A${'a'.repeat(127)}`).length).toBeLessThanOrEqual(128);
  });
});
