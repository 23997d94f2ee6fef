// The scheduler's figures for this node, brought up to date when a guarantee changes here.
// external-provisioner publishes each class's capacity (GetCapacity) as CSIStorageCapacity and
// refreshes it after each volume it creates or deletes; anything else that moves the pool's
// promises (a VolumeAttributesClass or API change of a guarantee, a flex volume, a volume qosd
// deleted itself) would show only at its next poll, a minute later by default, while the
// scheduler places pods by the old figure. So after such a change qosd rewrites its own node's
// objects with what GetCapacity answers now: the provisioner's next poll finds the same figures.
// A node writes only its own node's objects (deploy/kubernetes/node-access.yaml: RBAC, and an
// admission policy that holds each node to its own topology).
import type { Logger } from 'pino';
import { MERGE_PATCH, type KubeClient } from '../kube/client';
import { capacityObjects, type CapacityObject } from '../kube/capacity-objects';
import { DRIVER_NAME, TOPOLOGY_KEY } from './names';
import { parseQuantity } from '../util/quantity';

interface StorageClass {
  provisioner: string;
  parameters?: Record<string, string>;
}

/** GetCapacity for a class's parameters on this node: what the provisioner would publish. */
export type CapacityOf = (parameters: Record<string, string>) => Promise<{ available_capacity: string; maximum_volume_size: { value: string } }>;

/** How long after a change the figures are rewritten: a burst of changes makes one round. */
export const PUBLISH_AFTER_MS = 500;

export class CapacityPublisher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly client: KubeClient,
    private readonly nodeName: string,
    private readonly capacityOf: CapacityOf,
    private readonly log: Logger,
  ) {}

  /** A guarantee was admitted, changed or released: rewrite the figures shortly. */
  changed(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.round(), PUBLISH_AFTER_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One round now; returns how many objects it rewrote (a failure is logged, not thrown). */
  async round(): Promise<number> {
    let written = 0;
    this.running = (async () => {
      try {
        written = await this.publish();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "could not refresh this node's published capacity; the provisioner's next poll will");
      }
    })();
    await this.running;
    this.running = undefined;
    if (this.again && !this.stopped) {
      this.again = false;
      this.changed();
    }
    return written;
  }

  private async publish(): Promise<number> {
    const classes = new Map<string, StorageClass | undefined>();
    let written = 0;
    for (const c of await this.ownObjects()) {
      if (!classes.has(c.storageClassName)) classes.set(c.storageClassName, await this.storageClass(c.storageClassName));
      const sc = classes.get(c.storageClassName);
      if (sc?.provisioner !== DRIVER_NAME) continue;
      let now;
      try {
        now = await this.capacityOf(sc.parameters ?? {});
      } catch (err) {
        // a class this node refuses (GetCapacity answers the provisioner the same): left to it
        this.log.debug({ storageClass: c.storageClassName, err: (err as Error).message }, 'no capacity for this class here');
        continue;
      }
      const capacity = now.available_capacity;
      const maximumVolumeSize = now.maximum_volume_size.value;
      if (same(c.capacity, capacity) && same(c.maximumVolumeSize, maximumVolumeSize)) continue;
      await this.client.request(
        'PATCH',
        `/apis/storage.k8s.io/v1/namespaces/${encodeURIComponent(c.metadata.namespace)}/csistoragecapacities/${encodeURIComponent(c.metadata.name)}`,
        { capacity, maximumVolumeSize },
        MERGE_PATCH,
      );
      written++;
    }
    if (written > 0) this.log.info({ written }, "refreshed this node's published capacity after a guarantee changed");
    return written;
  }

  /** This node's CSIStorageCapacity objects of qosd's driver, in every namespace. */
  private async ownObjects(): Promise<CapacityObject[]> {
    return (await capacityObjects(this.client, DRIVER_NAME)).filter((c) => c.nodeTopology?.matchLabels?.[TOPOLOGY_KEY] === this.nodeName);
  }

  private async storageClass(name: string): Promise<StorageClass | undefined> {
    try {
      return await this.client.get<StorageClass>(`/apis/storage.k8s.io/v1/storageclasses/${encodeURIComponent(name)}`);
    } catch {
      return undefined; // deleted meanwhile: the provisioner removes its objects
    }
  }
}

/** Whether a published quantity is this number of bytes (the API server may write "1Gi" for 1073741824). */
function same(published: string | undefined, bytes: string): boolean {
  if (published === undefined) return false;
  if (published === bytes) return true;
  const v = published === '0' ? 0 : parseQuantity(published);
  return typeof v === 'number' && v === Number(bytes);
}
