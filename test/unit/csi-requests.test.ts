// The CSI Node requests as qosd reads them (no root, no socket): what a kubelet 1.20 request turns
// into for the attachment service, and which field an error names.
import { describe, expect, it } from 'vitest';
import { capability, contextVolume, podUidOf, publishRequest } from '../../src/csi/node-requests';
import { QosdError } from '../../src/model/errors';

const ROOT = '/var/lib/kubelet';
const UID = '6f1f4c2e-9a55-4d0b-8a43-1e2d3c4b5a69';
const POD_INFO = { 'csi.storage.k8s.io/pod.uid': UID, 'csi.storage.k8s.io/pod.name': 'db-0', 'csi.storage.k8s.io/pod.namespace': 'default', 'csi.storage.k8s.io/ephemeral': 'false' };
const mount = (fs_type = 'ext4', mode = 'SINGLE_NODE_WRITER') => ({ mount: { fs_type, mount_flags: [], volume_mount_group: '' }, access_mode: { mode }, access_type: 'mount' as const }) as never;
const block = (mode = 'SINGLE_NODE_WRITER') => ({ block: {}, access_mode: { mode }, access_type: 'block' as const }) as never;

function req(over: Record<string, unknown> = {}) {
  return {
    volume_id: 'pg', publish_context: {}, staging_target_path: '', target_path: `${ROOT}/pods/${UID}/volumes/kubernetes.io~csi/pv-pg/mount`,
    volume_capability: mount(), readonly: false, secrets: {}, volume_context: { ...POD_INFO }, ...over,
  } as never;
}

function codeAndMessage(fn: () => unknown): [string, string] {
  try {
    fn();
  } catch (err) {
    return [(err as QosdError).code, (err as Error).message];
  }
  return ['OK', ''];
}

describe('NodePublishVolume as an attach', () => {
  it('a filesystem publish: the volume by name, never created, source csi, the pod from pod.uid', () => {
    expect(publishRequest(req(), ROOT)).toEqual({
      volume: { name: 'pg', fsType: 'ext4' }, target: `${ROOT}/pods/${UID}/volumes/kubernetes.io~csi/pv-pg/mount`,
      podUid: UID, readOnly: false, kind: 'mount', create: false, source: 'csi',
    });
  });

  it('takes limits, guarantees, pool and class from volume_context, skipping Kubernetes keys', () => {
    const ctx = { ...POD_INFO, 'storage.kubernetes.io/csiProvisionerIdentity': '1-2-nvme.qosd.io', maxReadIops: '800', minWriteBps: '10M', class: 'medium', pool: 'nvme' };
    expect(publishRequest(req({ volume_context: ctx }), ROOT).volume).toEqual({
      name: 'pg', fsType: 'ext4', pool: 'nvme', class: 'medium', qos: { min: { writeBps: 10_000_000 }, max: { readIops: 800 } },
    });
  });

  it('is read-only for readonly, and for the read-only access modes', () => {
    expect(publishRequest(req({ readonly: true }), ROOT).readOnly).toBe(true);
    expect(publishRequest(req({ volume_capability: mount('ext4', 'SINGLE_NODE_READER_ONLY') }), ROOT).readOnly).toBe(true);
    expect(publishRequest(req({ volume_capability: mount('', 'SINGLE_NODE_MULTI_WRITER') }), ROOT).readOnly).toBe(false);
  });

  it('a block publish goes to the file under plugins/, with the pod from the path when pod info is off', () => {
    const target = `${ROOT}/plugins/kubernetes.io/csi/volumeDevices/publish/pv-pg/${UID}`;
    const r = publishRequest(req({ volume_capability: block(), target_path: target, volume_context: {} }), ROOT);
    expect(r).toMatchObject({ kind: 'block', target, podUid: UID, volume: { name: 'pg' } });
    expect(r.volume.fsType).toBeUndefined();
  });

  it('finds the pod in a mount target without pod info, and none elsewhere', () => {
    expect(podUidOf({}, `${ROOT}/pods/${UID}/volumes/kubernetes.io~csi/pv/mount`)).toBe(UID);
    expect(podUidOf({}, `${ROOT}/plugins/kubernetes.io/csi/volumeDevices/publish/pv/not-a-uid`)).toBeUndefined();
  });

  it.each([
    ['volume_id', { volume_id: '' }, 'InvalidArgument'],
    ['volume_id', { volume_id: 'v'.repeat(129) }, 'InvalidArgument'],
    ['target_path', { target_path: '' }, 'InvalidArgument'],
    ['target_path', { target_path: '/etc/x' }, 'InvalidArgument'],
    ['target_path', { target_path: `${ROOT}/pods/../../../etc/x` }, 'InvalidArgument'],
    ['volume_capability', { volume_capability: null }, 'InvalidArgument'],
    ['access_mode', { volume_capability: { mount: {}, access_mode: null, access_type: 'mount' } }, 'InvalidArgument'],
    ['access_mode', { volume_capability: mount('ext4', 'MULTI_NODE_MULTI_WRITER') }, 'FailedPrecondition'],
    ['fs_type', { volume_capability: mount('zfs') }, 'InvalidArgument'],
    ['volume_context["size"]', { volume_context: { size: '1Gi' } }, 'InvalidArgument'],
    ['volume_context["maxReadIops"]', { volume_context: { maxReadIops: '1.5' } }, 'InvalidArgument'],
    ['pod.uid', { volume_context: { 'csi.storage.k8s.io/pod.uid': '../x' } }, 'InvalidArgument'],
  ])('refuses a bad %s', (field, over, code) => {
    const [c, m] = codeAndMessage(() => publishRequest(req(over), ROOT));
    expect(c).toBe(code);
    expect(m).toContain(field);
  });

  it('names mount flags and mount groups it does not take', () => {
    const flags = { mount: { fs_type: 'ext4', mount_flags: ['noatime'], volume_mount_group: '' }, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' } as never;
    expect(codeAndMessage(() => capability(flags))[1]).toContain('mount_flags');
    const group = { mount: { fs_type: 'ext4', mount_flags: [], volume_mount_group: '2000' }, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' } as never;
    expect(codeAndMessage(() => capability(group))[1]).toContain('volume_mount_group');
    expect(contextVolume('v', {})).toEqual({ name: 'v' });
  });
});
