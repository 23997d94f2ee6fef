// What the scheduler extender reads from the API server for one pod: its claims that qosd is yet
// to provision (unbound, of a StorageClass whose provisioner is qosd's driver), the
// CSIStorageCapacity objects qosd's provisioners publish, and the candidate nodes' labels. Read
// at each call: the scheduler asks once per pod, and the capacity must be the one just published
// after the last volume was created or deleted (the provisioner refreshes it then).
import { KubeApiError, type KubeClient } from '../kube/client';
import { capacityObjects } from '../kube/capacity-objects';
import { DRIVER_NAME } from '../csi/names';
import { parseQuantity } from '../util/quantity';
import type { NodeLabels, PendingClaim, PublishedCapacity } from './headroom';

/** The parts of a Pod the extender reads. */
export interface PodLike {
  metadata: { name: string; namespace?: string };
  spec?: { volumes?: { name: string; persistentVolumeClaim?: { claimName: string }; ephemeral?: unknown }[] };
}

interface Claim {
  metadata: { name: string };
  spec: { storageClassName?: string; volumeName?: string; resources?: { requests?: { storage?: string } } };
}
interface StorageClass {
  provisioner: string;
}
interface NodeList {
  items: { metadata: { name: string; labels?: Record<string, string> } }[];
}

/** The pod's claims qosd still has to provision (a bound claim already has its node). */
export async function pendingClaims(client: KubeClient, pod: PodLike): Promise<PendingClaim[]> {
  const ns = pod.metadata.namespace ?? 'default';
  const names = (pod.spec?.volumes ?? []).map((v) => v.persistentVolumeClaim?.claimName ?? (v.ephemeral ? `${pod.metadata.name}-${v.name}` : undefined)).filter((n): n is string => !!n);
  const out: PendingClaim[] = [];
  const provisioners = new Map<string, string | undefined>();
  for (const name of names) {
    const claim = await orMissing(client.get<Claim>(`/api/v1/namespaces/${encodeURIComponent(ns)}/persistentvolumeclaims/${encodeURIComponent(name)}`));
    const cls = claim?.spec.storageClassName;
    if (!claim || claim.spec.volumeName || !cls) continue;
    if (!provisioners.has(cls)) provisioners.set(cls, (await orMissing(client.get<StorageClass>(`/apis/storage.k8s.io/v1/storageclasses/${encodeURIComponent(cls)}`)))?.provisioner);
    if (provisioners.get(cls) !== DRIVER_NAME) continue;
    const asked = parseQuantity(claim.spec.resources?.requests?.storage ?? '0');
    out.push({ name: `${ns}/${name}`, storageClass: cls, bytes: typeof asked === 'number' ? asked : 0 });
  }
  return out;
}

/** Every CSIStorageCapacity published for qosd's driver, in all namespaces. */
export async function publishedCapacities(client: KubeClient): Promise<PublishedCapacity[]> {
  return (await capacityObjects(client, DRIVER_NAME)).map((c) => ({ storageClassName: c.storageClassName, nodeTopology: c.nodeTopology, capacity: bytes(c.capacity), maximumVolumeSize: bytes(c.maximumVolumeSize) }));
}

/** The labels of the named nodes (the scheduler sends names alone when its node cache is on). */
export async function nodeLabels(client: KubeClient, names: readonly string[]): Promise<NodeLabels[]> {
  const byName = new Map((await allNodeLabels(client)).map((n) => [n.name, n.labels]));
  return names.map((name) => ({ name, labels: byName.get(name) ?? {} }));
}

function bytes(q: string | undefined): number | undefined {
  if (q === undefined) return undefined;
  if (q === '0') return 0;
  const v = parseQuantity(q);
  return typeof v === 'number' ? v : undefined;
}

async function orMissing<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return undefined;
    throw err;
  }
}

/** A pod the scheduler could not place (PodScheduled False, Unschedulable), with what explain.ts needs. */
export interface WaitingPod extends PodLike {
  metadata: { name: string; namespace?: string; uid: string };
}
interface PodList {
  items: (WaitingPod & { status?: { conditions?: { type: string; status: string; reason?: string }[] } })[];
}

/** The pods no node has been found for, in all namespaces. */
export async function unschedulablePods(client: KubeClient): Promise<WaitingPod[]> {
  const list = await client.get<PodList>(`/api/v1/pods?fieldSelector=${encodeURIComponent('spec.nodeName=,status.phase=Pending')}`);
  return list.items.filter((p) => p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable'));
}

/** Every node's labels. */
export async function allNodeLabels(client: KubeClient): Promise<NodeLabels[]> {
  const all = await client.get<NodeList>('/api/v1/nodes');
  return all.items.map((n) => ({ name: n.metadata.name, labels: n.metadata.labels ?? {} }));
}

/** A Warning event on the pod, as `kubectl describe pod` and `kubectl get events` show it. */
export async function warnPod(client: KubeClient, pod: WaitingPod, reason: string, message: string, component: string): Promise<void> {
  const ns = pod.metadata.namespace ?? 'default';
  const now = new Date().toISOString();
  await client.request('POST', `/api/v1/namespaces/${encodeURIComponent(ns)}/events`, {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: `${pod.metadata.name}.`, namespace: ns },
    involvedObject: { apiVersion: 'v1', kind: 'Pod', namespace: ns, name: pod.metadata.name, uid: pod.metadata.uid },
    reason,
    message,
    type: 'Warning',
    source: { component },
    reportingComponent: component,
    reportingInstance: component,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  });
}
