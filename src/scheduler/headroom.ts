// Placement by IO headroom, as the scheduler extender decides it: from the figures each node's
// qosd publishes per StorageClass (CSI GetCapacity, published by external-provisioner as
// CSIStorageCapacity). For a class with a guarantee, maximumVolumeSize is 0 while the guarantee
// does not fit the node's device budget, and capacity is the pool's free space scaled by the part
// of the budget not yet promised (VolumeService.capacityFor): capacity / maximumVolumeSize is the
// node's headroom for that class. A pure function of those figures, so it is tested without a cluster.

/** A claim of the pod still to be provisioned by qosd: its class and the bytes it asks. */
export interface PendingClaim {
  name: string;
  storageClass: string;
  bytes: number;
}

/** The part of a label selector CSIStorageCapacity's nodeTopology uses. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** One published CSIStorageCapacity, quantities in bytes. */
export interface PublishedCapacity {
  storageClassName: string;
  nodeTopology?: LabelSelector;
  capacity?: number;
  maximumVolumeSize?: number;
}

export interface NodeLabels {
  name: string;
  labels: Record<string, string>;
}

export type NodeFit = { fits: true; headroom: number } | { fits: false; reason: string };

/** The highest score an extender may give (the scheduler's MaxExtenderPriority). */
export const MAX_EXTENDER_SCORE = 10;

/**
 * Whether a node can take every one of the pod's claims, and its headroom for them (the smallest
 * over the claims: the node is as good as its tightest class), or the reason it cannot, naming
 * the class and the IO budget where that is the cause.
 */
export function nodeFit(claims: readonly PendingClaim[], published: readonly PublishedCapacity[], node: NodeLabels): NodeFit {
  let headroom = 1;
  for (const c of claims) {
    const here = published.filter((p) => p.storageClassName === c.storageClass && selects(p.nodeTopology, node.labels));
    if (here.length === 0) return { fits: false, reason: `qosd: no capacity published for StorageClass ${c.storageClass} on this node (is qosd running here?)` };
    // More than one object can match a node (a topology that spans several): the best of them.
    const best = here.map(figures).sort((a, b) => b.headroom - a.headroom || b.largest - a.largest)[0]!;
    if (best.largest === 0) return { fits: false, reason: `qosd: this node's IO budget cannot take the guarantee of StorageClass ${c.storageClass} (no device time left to promise)` };
    if (best.largest < c.bytes) return { fits: false, reason: `qosd: claim ${c.name} asks ${c.bytes} bytes; the largest StorageClass ${c.storageClass} volume here is ${best.largest}` };
    headroom = Math.min(headroom, best.headroom);
  }
  return { fits: true, headroom };
}

/** A node's score out of MAX_EXTENDER_SCORE: its headroom for the pod's claims. */
export function scoreOf(fit: NodeFit): number {
  return fit.fits ? Math.round(fit.headroom * MAX_EXTENDER_SCORE) : 0;
}

function figures(p: PublishedCapacity): { largest: number; headroom: number } {
  const largest = p.maximumVolumeSize ?? p.capacity ?? 0;
  const capacity = p.capacity ?? largest;
  return { largest, headroom: largest > 0 ? Math.min(1, capacity / largest) : 0 };
}

/** Whether a label selector selects these labels (an absent selector selects every node). */
export function selects(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const values = e.values ?? [];
    const ok =
      e.operator === 'In' ? has && values.includes(labels[e.key]!)
      : e.operator === 'NotIn' ? !has || !values.includes(labels[e.key]!)
      : e.operator === 'Exists' ? has
      : e.operator === 'DoesNotExist' ? !has
      : false; // an operator this reader does not know selects nothing
    if (!ok) return false;
  }
  return true;
}
