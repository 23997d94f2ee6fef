// The flex door's rule for tenants. Whoever can create a pod in a namespace can put a flex volume
// in it with any options, so a flex mount reaches only the volumes of its pod's namespace (and
// volumes nobody owns yet, which it claims), never a volume provisioned through CSI for a
// PersistentVolume, and never changes a volume's QoS: that is the operator's (API, qosctl) or the
// volume's own CSI path (a VolumeAttributesClass).
import type { Volume } from '../store/volumes';
import { sameSpec, type QosSpec } from '../model/qos';
import { CSI_OWNER, ownerNamespace } from '../model/owner';
import { QosdError } from '../model/errors';

/** What a mount asks of the volume's QoS, when it names any. */
export interface MountQos {
  class: string;
  qos: QosSpec;
}

/** Throws PermissionDenied or FailedPrecondition, naming why, when a tenant's mount may not reach `v`. */
export function checkTenantMount(v: Volume, namespace: string, asked: MountQos | undefined): void {
  if (v.owner === CSI_OWNER) {
    throw new QosdError('PermissionDenied', `volume ${v.name} was provisioned through CSI for a PersistentVolume; a flex mount cannot reach it (mount it through its PersistentVolumeClaim)`);
  }
  const owner = ownerNamespace(v.owner);
  if (owner !== undefined && owner !== namespace) {
    throw new QosdError('PermissionDenied', `volume ${v.name} belongs to namespace ${owner}; a pod in namespace ${namespace} cannot mount it`);
  }
  if (asked && (asked.class !== v.class || !sameSpec(asked.qos, v.qos))) {
    throw new QosdError(
      'FailedPrecondition',
      `volume ${v.name} has class ${v.class} and QoS ${JSON.stringify(v.qos)}; this mount names class ${asked.class} and ${JSON.stringify(asked.qos)}, and a mount never changes a volume's QoS: change it with qosctl volume set (or the API), then mount with the same options or none`,
    );
  }
}
