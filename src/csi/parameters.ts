// A CSI string map the user wrote (a PV's volumeAttributes, a StorageClass's parameters, a
// VolumeAttributesClass's mutable parameters): the keys Kubernetes adds itself (pod info,
// csi.storage.k8s.io/…, storage.kubernetes.io/…) are skipped; any other key must be known.
import { invalid } from '../model/errors';

const KUBERNETES_KEY = /^([a-z0-9.-]+\.)?(k8s\.io|kubernetes\.io)\//;

/** The user's keys of `params`, each one of `known`; InvalidArgument names `field["key"]`. */
export function ownKeys(params: Record<string, string>, known: ReadonlySet<string>, field: string): Map<string, string> {
  const own = new Map<string, string>();
  for (const [k, v] of Object.entries(params)) {
    if (KUBERNETES_KEY.test(k)) continue;
    if (!known.has(k)) throw invalid(`${field}["${k}"]: unknown key (known: ${[...known].join(', ')})`);
    own.set(k, v);
  }
  return own;
}
