// The CSIStorageCapacity objects published for qosd's driver, in every namespace, page by page:
// read by the scheduler extender (to place pods) and by a node's qosd (to rewrite its own).
import type { KubeClient } from './client';

export interface CapacityObject {
  metadata: { name: string; namespace: string };
  storageClassName: string;
  nodeTopology?: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };
  capacity?: string;
  maximumVolumeSize?: string;
}
interface CapacityList {
  items: CapacityObject[];
  metadata: { continue?: string };
}

export async function capacityObjects(client: KubeClient, driver: string): Promise<CapacityObject[]> {
  const out: CapacityObject[] = [];
  let next: string | undefined = '';
  while (next !== undefined) {
    const page: CapacityList = await client.get<CapacityList>(
      `/apis/storage.k8s.io/v1/csistoragecapacities?limit=500&labelSelector=${encodeURIComponent(`csi.storage.k8s.io/drivername=${driver}`)}${next ? `&continue=${encodeURIComponent(next)}` : ''}`,
    );
    out.push(...page.items);
    next = page.metadata.continue || undefined;
  }
  return out;
}
