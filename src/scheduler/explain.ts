// Why a pod with a guaranteed qosd claim waits. When no node can take the claim's guarantee, the
// scheduler's volume binding drops every node on the CSIStorageCapacity qosd publishes
// (maximumVolumeSize 0) before any extender is asked, and its event says only that the nodes "did
// not have enough free storage": nothing tells the user that the device time is what is missing,
// not the bytes. The extender, which reads the same figures, says it: for each unschedulable pod
// whose claim fits no node, an event naming the class, the IO budget and each node's reason.
import { nodeFit, type NodeLabels, type PendingClaim, type PublishedCapacity } from './headroom';

/** Why no node can take one of the pod's claims, or undefined when some node can take them all. */
export function noNodeFits(claims: readonly PendingClaim[], published: readonly PublishedCapacity[], nodes: readonly NodeLabels[]): string | undefined {
  if (claims.length === 0 || nodes.length === 0) return undefined;
  const fits = nodes.map((n) => ({ node: n.name, fit: nodeFit(claims, published, n) }));
  if (fits.some((f) => f.fit.fits)) return undefined;
  const reasons = fits.map((f) => `${f.node}: ${f.fit.fits ? '' : f.fit.reason.replace(/^qosd: /, '')}`);
  // Only a wait qosd can explain: at least one node is out for lack of IO budget.
  if (!reasons.some((r) => r.includes('IO budget'))) return undefined;
  const classes = [...new Set(claims.map((c) => c.storageClass))].join(', ');
  return `qosd: no node's IO budget can take the guarantee of StorageClass ${classes} (${reasons.join('; ')}); the pod is scheduled once a node has the device time, with no step of yours`;
}
