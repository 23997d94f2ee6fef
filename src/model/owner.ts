// Whose a volume is. A flex mount reaches only volumes of its pod's namespace, and never a volume
// provisioned for a PersistentVolume through CSI; the operator's API reaches every volume.

export const CSI_OWNER = 'csi';

/** The owner a namespace's volumes record. */
export function namespaceOwner(namespace: string): string {
  return `ns:${namespace}`;
}

/** The namespace an owner names, if it names one. */
export function ownerNamespace(owner: string | null): string | undefined {
  return owner?.startsWith('ns:') ? owner.slice(3) : undefined;
}

/** Kubernetes namespace names: DNS labels. */
export const NAMESPACE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
