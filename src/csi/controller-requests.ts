// Validation of the Controller service's requests. A StorageClass's `parameters` and a
// VolumeAttributesClass's `mutable_parameters` use the flex option names (DESIGN.md): `pool`,
// `class`, `fsType` and the figures `minReadIops` … `maxWriteBps`; only the class and the figures
// can change later. Keys Kubernetes adds itself (csi.storage.k8s.io/…) are skipped. Every error
// names the field and changes nothing.
import { createHash } from 'node:crypto';
import { QosdError, invalid } from '../model/errors';
import { status } from '@grpc/grpc-js';
import { QOS_OPTIONS, limitsFromOptions, optionName } from '../service/volume-options';
import { VOLUME_NAME, type QosChange, type VolumeRequest } from '../service/volumes';
import { latencyOver, type QosSpec } from '../model/qos';
import { CsiError } from './status';
import { TOPOLOGY_KEY } from './names';
import { capability } from './node-requests';
import { ownKeys } from './parameters';
import type { CapacityRangeMsg, TopologyMsg, VolumeCapability } from './types';

const CLASS_PARAMETERS: ReadonlySet<string> = new Set(['pool', 'class', 'fsType', ...QOS_OPTIONS]);
const MUTABLE_PARAMETERS: ReadonlySet<string> = new Set(['class', ...QOS_OPTIONS]);
const MiB = 1024 * 1024;

/**
 * The qosd volume (and CSI volume_id) for a CreateVolume name. The CO may name a volume with any
 * string up to 128 bytes; a qosd name is a file or LV name (lowercase, digits, ".", "_", "-").
 * A name that is one already (external-provisioner's "pvc-<uid>") is kept; any other is made one,
 * with a digest of the original so two names never meet, and the same name always maps the same.
 */
export function volumeNameFor(csiName: string): string {
  if (VOLUME_NAME.test(csiName)) return csiName;
  const base = csiName.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '').slice(0, 100).replace(/[^a-z0-9]+$/, ''); // with the digest, within CSI's 128 bytes
  const digest = createHash('sha256').update(csiName).digest('hex').slice(0, 16);
  return base ? `${base}-${digest}` : `csi-${digest}`;
}

/** StorageClass parameters with the mutable ones over them (mutable wins, per the spec). */
export function classRequest(name: string, parameters: Record<string, string>, mutable: Record<string, string>): VolumeRequest {
  const own = ownKeys(parameters, CLASS_PARAMETERS, 'parameters');
  const later = ownKeys(mutable, MUTABLE_PARAMETERS, 'mutable_parameters');
  const volume: VolumeRequest = { name };
  const pool = own.get('pool');
  if (pool !== undefined) volume.pool = pool;
  const fsType = own.get('fsType');
  if (fsType !== undefined) {
    if (fsType !== 'ext4' && fsType !== 'xfs') throw invalid(`parameters["fsType"]: "${fsType}" is not supported (ext4 or xfs)`);
    volume.fsType = fsType;
  }
  const cls = later.get('class') ?? own.get('class');
  if (cls !== undefined) volume.class = cls;
  const base = limitsFromOptions(own, (k) => `parameters["${k}"]`);
  const over = limitsFromOptions(later, (k) => `mutable_parameters["${k}"]`);
  if (base || over) {
    volume.qos = { min: { ...base?.min, ...over?.min }, max: { ...base?.max, ...over?.max } } as QosSpec;
    const latency = latencyOver(base?.latency, over?.latency);
    if (latency) volume.qos.latency = latency;
  }
  return volume;
}

/**
 * Runs `fn` (which resolves a volume request in the volume service, at once or as a promise)
 * with its InvalidArgument errors naming the CSI field: "pool: …" becomes `parameters["pool"]: …`,
 * "size: …" `capacity_range: …`.
 */
export function inParameters<T>(fn: () => T, map = 'parameters'): T {
  const rename = (err: unknown): never => {
    if (err instanceof QosdError && err.code === 'InvalidArgument') {
      const m = /^(?:qos\.)?(pool|class|fsType|size|min\.\w+|max\.\w+|latency\.\w+): (.*)$/s.exec(err.message);
      if (m) throw invalid(`${m[1] === 'size' ? 'capacity_range' : `${map}["${optionName(m[1]!)}"]`}: ${m[2]}`);
    }
    throw err;
  };
  try {
    const out = fn();
    return (out instanceof Promise ? out.catch(rename) : out) as T;
  } catch (err) {
    return rename(err);
  }
}

/**
 * The figures and class a ControllerModifyVolume names; only those change (absent keys never do).
 * None named changes nothing (csi-sanity, the spec's reference, modifies with an empty map and
 * expects success).
 */
export function qosChange(mutable: Record<string, string>): QosChange {
  const own = ownKeys(mutable, MUTABLE_PARAMETERS, 'mutable_parameters');
  const change: QosChange = {};
  const cls = own.get('class');
  if (cls !== undefined) change.class = cls;
  const qos = limitsFromOptions(own, (k) => `mutable_parameters["${k}"]`);
  if (qos) {
    change.min = qos.min;
    change.max = qos.max;
    if (qos.latency) change.latency = qos.latency;
  }
  return change;
}

/** The filesystem the capabilities ask for ('' for none named), each capability checked. */
/** Whether every capability asks for a raw block device (then the volume gets no filesystem). */
export function onlyBlock(caps: VolumeCapability[]): boolean {
  return caps.length > 0 && caps.every((c) => c?.access_type === 'block');
}

export function capabilitiesFsType(caps: VolumeCapability[], field = 'volume_capabilities'): string {
  if (caps.length === 0) throw invalid(`${field}: missing`);
  const named = new Set<string>();
  caps.forEach((c, i) => {
    const { fsType } = capability(c, `${field}[${i}]`);
    if (fsType) named.add(fsType);
  });
  if (named.size > 1) throw invalid(`${field}: ask for one filesystem, not ${[...named].join(' and ')}`);
  return [...named][0] ?? '';
}

/**
 * The size a CreateVolume or expansion asks for: required_bytes rounded up to a whole MiB and
 * kept within limit_bytes; undefined when neither is set (the configured default applies).
 * OUT_OF_RANGE when the range cannot be met.
 */
export function sizeOf(range: CapacityRangeMsg | null, defaultSize: number): number | undefined {
  const required = bytes(range?.required_bytes, 'capacity_range.required_bytes');
  const limit = bytes(range?.limit_bytes, 'capacity_range.limit_bytes');
  if (limit > 0 && required > limit) throw new CsiError(status.OUT_OF_RANGE, `capacity_range: required_bytes ${required} is more than limit_bytes ${limit}`);
  if (limit > 0 && limit < MiB) throw new CsiError(status.OUT_OF_RANGE, `capacity_range.limit_bytes: ${limit} is below qosd's 1Mi minimum volume`);
  if (required === 0 && limit === 0) return undefined;
  const want = required === 0 ? Math.min(defaultSize, limit) : Math.ceil(Math.max(required, MiB) / MiB) * MiB;
  return limit > 0 ? Math.min(want, limit) : want;
}

export function bytes(text: string | undefined, field: string): number {
  if (text === undefined || text === '' || text === '0') return 0;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new CsiError(status.OUT_OF_RANGE, `${field}: ${text} is not a byte count qosd can handle`);
  return n;
}

/** Whether a topology (requisite or preferred) names this node; no topology at all counts as yes. */
export function reachesNode(topologies: TopologyMsg[], node: string): boolean {
  if (topologies.length === 0) return true;
  return topologies.some((t) => t.segments[TOPOLOGY_KEY] === node);
}
