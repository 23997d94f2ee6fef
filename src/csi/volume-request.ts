// VolumeRequest (qosd.io/v1alpha1, cluster-scoped): how the central controller (`qosd
// csi-controller`, where external-resizer sends ControllerExpandVolume and ControllerModifyVolume)
// reaches the qosd on the node that holds the volume. The central side creates one naming the
// node (label qosd.io/node); that node's qosd watches its own, carries the request out through its
// CSI Controller service and writes the outcome into the status; the central side answers the
// sidecar with it and deletes the object. deploy/kubernetes/volume-requests.yaml defines it.
import { createHash } from 'node:crypto';

export const GROUP = 'qosd.io';
export const VERSION = 'v1alpha1';
export const KIND = 'VolumeRequest';
export const COLLECTION = `/apis/${GROUP}/${VERSION}/volumerequests`;
export const NODE_LABEL = 'qosd.io/node';

export type Operation = 'Expand' | 'Modify';

export interface VolumeRequestSpec {
  node: string;
  volumeId: string;
  operation: Operation;
  /** Modify: the VolumeAttributesClass parameters, as ControllerModifyVolume got them. */
  mutableParameters?: Record<string, string>;
  /** Expand: the capacity_range, as ControllerExpandVolumeRequest got it (decimal strings). */
  requiredBytes?: string;
  limitBytes?: string;
}

export interface VolumeRequestStatus {
  phase: 'Succeeded' | 'Failed';
  /** The gRPC status name the node's CSI service answered with, e.g. RESOURCE_EXHAUSTED. */
  code: string;
  message: string;
  /** Expand: the volume's size afterwards. */
  capacityBytes?: string;
  finishedAt: string;
}

export interface VolumeRequest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; resourceVersion?: string; creationTimestamp?: string };
  spec: VolumeRequestSpec;
  status?: VolumeRequestStatus;
}

export interface VolumeRequestList {
  metadata: { resourceVersion: string; continue?: string };
  items: VolumeRequest[];
}

/**
 * The object for a request: its name is a digest of what is asked, so the sidecar's retry of the
 * same call finds the same object (one change carried out once), and a different call never meets it.
 */
export function volumeRequestFor(spec: VolumeRequestSpec): VolumeRequest {
  const digest = createHash('sha256').update(JSON.stringify([spec.node, spec.volumeId, spec.operation, spec.mutableParameters ? Object.entries(spec.mutableParameters).sort() : null, spec.requiredBytes ?? null, spec.limitBytes ?? null])).digest('hex').slice(0, 20);
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: KIND,
    metadata: { name: `${spec.operation.toLowerCase()}-${digest}`, labels: { [NODE_LABEL]: spec.node } },
    spec,
  };
}
