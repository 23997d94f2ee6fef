// Validation of the Node service's requests, at the edge: every field checked before anything on
// the node is touched, and an error names the field (InvalidArgument unless the spec mandates
// another code). What comes out is what the attachment service takes.
import * as path from 'node:path';
import { invalid, QosdError } from '../model/errors';
import { POD_UID } from '../host/pod-cgroup';
import type { AttachRequest } from '../service/attachments';
import { checkTargetIn } from '../service/targets';
import { QOS_OPTIONS, limitsFromOptions } from '../service/volume-options';
import type { VolumeRequest } from '../service/volumes';
import type { AccessMode, NodePublishVolumeRequest, VolumeCapability } from './types';
import { ownKeys } from './parameters';

/** The keys a user may put in a PV's volumeAttributes (the flex option names). */
const USER_KEYS: ReadonlySet<string> = new Set(['pool', 'class', ...QOS_OPTIONS]);
/** One node, so only the single-node modes (and read-only many-readers on this node). */
const LOCAL_MODES: ReadonlySet<AccessMode> = new Set(['SINGLE_NODE_WRITER', 'SINGLE_NODE_READER_ONLY', 'SINGLE_NODE_SINGLE_WRITER', 'SINGLE_NODE_MULTI_WRITER']);
const READ_ONLY_MODES: ReadonlySet<AccessMode> = new Set(['SINGLE_NODE_READER_ONLY', 'MULTI_NODE_READER_ONLY']);
const MAX_ID = 128;

/** The directories under kubelet's root where it asks CSI drivers to publish. */
export function publishDirs(kubeletRootDir: string): string[] {
  return [path.join(kubeletRootDir, 'pods'), path.join(kubeletRootDir, 'plugins')];
}

export function volumeId(id: string, field = 'volume_id'): string {
  if (!id) throw invalid(`${field}: missing`);
  if (id.includes('\0')) throw invalid(`${field}: contains a NUL byte`);
  if (Buffer.byteLength(id) > MAX_ID) throw invalid(`${field}: longer than ${MAX_ID} bytes`);
  return id;
}

export function requiredPath(p: string, field: string): string {
  if (!p) throw invalid(`${field}: missing`);
  if (p.includes('\0')) throw invalid(`${field}: contains a NUL byte`);
  if (!path.isAbsolute(p)) throw invalid(`${field} ${p}: must be an absolute path`);
  return path.resolve(p);
}

/** The capability of a publish: block or mount, read-only or not; InvalidArgument names the field. */
export function capability(cap: VolumeCapability | null, field = 'volume_capability'): { kind: 'block' | 'mount'; fsType: string; readOnlyMode: boolean } {
  if (!cap) throw invalid(`${field}: missing`);
  const mode = cap.access_mode?.mode;
  if (!mode || mode === 'UNKNOWN') throw invalid(`${field}.access_mode: missing`);
  if (!LOCAL_MODES.has(mode) && mode !== 'MULTI_NODE_READER_ONLY') {
    throw new QosdError('FailedPrecondition', `${field}.access_mode: ${mode} is not supported: a qosd volume lives on one node's NVMe`);
  }
  if (cap.access_type === 'block') return { kind: 'block', fsType: '', readOnlyMode: READ_ONLY_MODES.has(mode) };
  if (cap.access_type !== 'mount' || !cap.mount) throw invalid(`${field}: neither block nor mount is set`);
  const { fs_type, mount_flags, volume_mount_group } = cap.mount;
  if (fs_type !== '' && fs_type !== 'ext4' && fs_type !== 'xfs') throw invalid(`${field}.mount.fs_type: "${fs_type}" is not supported (ext4 or xfs)`);
  if (mount_flags.length > 0) throw invalid(`${field}.mount.mount_flags: qosd mounts with its own options (rw/ro, nodev, nosuid); remove ${mount_flags.join(', ')}`);
  if (volume_mount_group) throw invalid(`${field}.mount.volume_mount_group: not supported (qosd does not advertise VOLUME_MOUNT_GROUP; kubelet applies fsGroup itself)`);
  return { kind: 'mount', fsType: fs_type, readOnlyMode: READ_ONLY_MODES.has(mode) };
}

/**
 * The pod whose cgroups get the rules: csi.storage.k8s.io/pod.uid when the CSIDriver sets
 * podInfoOnMount, else the UID in kubelet's target path (pods/<uid>/… for a mount,
 * …/volumeDevices/publish/<pv>/<uid> for a block volume).
 */
export function podUidOf(context: Record<string, string>, target: string): string | undefined {
  const given = context['csi.storage.k8s.io/pod.uid'];
  if (given !== undefined && given !== '') {
    if (!POD_UID.test(given)) throw invalid(`volume_context["csi.storage.k8s.io/pod.uid"]: "${given}" is not a pod UID`);
    return given;
  }
  const inPods = /\/pods\/([^/]+)\//.exec(target)?.[1];
  if (inPods && POD_UID.test(inPods)) return inPods;
  const last = path.basename(target);
  return /\/volumeDevices\/publish\//.test(target) && POD_UID.test(last) ? last : undefined;
}

/** The volume request the volume_context makes: the user's keys validated, Kubernetes' skipped. */
export function contextVolume(name: string, context: Record<string, string>): VolumeRequest {
  const own = ownKeys(context, USER_KEYS, 'volume_context');
  const volume: VolumeRequest = { name };
  const pool = own.get('pool');
  if (pool !== undefined) volume.pool = pool;
  const cls = own.get('class');
  if (cls !== undefined) volume.class = cls;
  const qos = limitsFromOptions(own, (k) => `volume_context["${k}"]`);
  if (qos) volume.qos = qos;
  return volume;
}

/** A NodePublishVolume request as the attachment service's attach, or InvalidArgument. */
export function publishRequest(req: NodePublishVolumeRequest, kubeletRootDir: string): AttachRequest {
  const name = volumeId(req.volume_id);
  const target = checkTargetIn(requiredPath(req.target_path, 'target_path'), publishDirs(kubeletRootDir), 'target_path', ` (kubelet.rootDir is ${kubeletRootDir})`);
  const cap = capability(req.volume_capability);
  const volume = contextVolume(name, req.volume_context);
  if (cap.fsType) volume.fsType = cap.fsType as 'ext4' | 'xfs';
  return {
    volume,
    target,
    podUid: podUidOf(req.volume_context, target),
    readOnly: req.readonly || cap.readOnlyMode,
    kind: cap.kind,
    create: false,
    source: 'csi',
  };
}
