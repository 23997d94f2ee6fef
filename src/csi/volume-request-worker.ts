// The node's side of VolumeRequests (volume-request.ts): qosd watches the ones labelled with its
// node name, carries each out through its own CSI Controller service (the same code as a call on
// its socket: validation, admission, the change applied to every pod using the volume) and
// writes the outcome into the object's status for the central controller to answer with.
import type { Logger } from 'pino';
import { KubeApiError, MERGE_PATCH, type KubeClient, type Watch } from '../kube/client';
import { toServiceError } from './status';
import { status as grpcStatus } from '@grpc/grpc-js';
import type { CsiController } from './controller';
import type { Store } from '../store/store';
import { CSI_OWNER } from '../model/owner';
import { QosdError } from '../model/errors';
import { COLLECTION, NODE_LABEL, type VolumeRequest, type VolumeRequestList, type VolumeRequestStatus } from './volume-request';

export interface WorkerState {
  source: string;
  /** Whether the watch is open now. */
  watching: boolean;
  /** The last reason it was not, or null. */
  error: string | null;
  carriedOut: number;
  /** The most requests carried out at once so far (at most MAX_IN_FLIGHT). */
  highestInFlight: number;
}

/**
 * VolumeRequests carried out at once. A burst (a StatefulSet's claims resized together, a
 * VolumeAttributesClass changed for many PVCs) must not start as many resize2fs or lvextend at once:
 * the rest wait in order, each taken up as one finishes.
 */
export const MAX_IN_FLIGHT = 2;

export class VolumeRequestWorker {
  readonly state: WorkerState;
  /** Requests taken and not finished (queued or running), by name: a repeat event is ignored. */
  private readonly busy = new Set<string>();
  private readonly queue: VolumeRequest[] = [];
  private running = 0;
  private watch: Watch | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly nodeName: string,
    private readonly controller: CsiController,
    private readonly log: Logger,
    /** The node's volumes: a VolumeRequest acts only on one provisioned for a PersistentVolume (CSI's). */
    private readonly store?: Pick<Store, 'volumes'>,
  ) {
    this.state = { source: client.connection.source, watching: false, error: null, carriedOut: 0, highestInFlight: 0 };
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watch?.stop();
    this.wake?.();
    await this.loop;
    this.client.close();
  }

  /** List, then watch from the list's version; after any end or failure, again (backing off to 10 s). */
  private async run(): Promise<void> {
    const selector = `labelSelector=${encodeURIComponent(`${NODE_LABEL}=${this.nodeName}`)}`;
    let backoffMs = 500;
    while (!this.stopped) {
      try {
        const list = await this.client.get<VolumeRequestList>(`${COLLECTION}?${selector}`);
        for (const r of list.items) this.consider(r);
        this.watch = this.client.watch<VolumeRequest>(`${COLLECTION}?${selector}&resourceVersion=${list.metadata.resourceVersion}`, (e) => {
          if (e.type === 'ADDED' || e.type === 'MODIFIED') this.consider(e.object);
          if (e.type === 'ERROR') this.watch?.stop(); // e.g. 410 Gone: list again
        });
        this.state.watching = true;
        if (this.state.error) this.log.info({ source: this.state.source }, 'watching VolumeRequests again');
        this.state.error = null;
        backoffMs = 500;
        await this.watch.done;
      } catch (err) {
        const why = err instanceof KubeApiError && err.status === 404 ? `the API server has no VolumeRequest resource yet (deploy/kubernetes/volume-requests.yaml): ${err.message}` : (err as Error).message;
        if (why !== this.state.error) this.log.warn({ source: this.state.source, err: why }, 'cannot watch VolumeRequests; retrying');
        this.state.error = why;
        backoffMs = Math.min(backoffMs * 2, 10_000);
      }
      this.state.watching = false;
      if (this.stopped) break;
      // The pause before listing again; stop() cuts it short.
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, backoffMs).unref();
      });
    }
  }

  private consider(r: VolumeRequest): void {
    if (r.status?.phase || r.spec?.node !== this.nodeName || this.busy.has(r.metadata.name)) return;
    this.busy.add(r.metadata.name);
    this.queue.push(r);
    this.next();
  }

  /** Starts queued requests while fewer than MAX_IN_FLIGHT run (each may grow a filesystem). */
  private next(): void {
    while (this.running < MAX_IN_FLIGHT && this.queue.length > 0) {
      const r = this.queue.shift()!;
      this.running++;
      this.state.highestInFlight = Math.max(this.state.highestInFlight, this.running);
      void this.carryOut(r).finally(() => {
        this.running--;
        this.busy.delete(r.metadata.name);
        this.next();
      });
    }
  }

  private async carryOut(r: VolumeRequest): Promise<void> {
    const s = r.spec;
    let outcome: VolumeRequestStatus;
    try {
      let capacityBytes: string | undefined;
      // The central side asks only for PersistentVolumes' volumes; a request for any other (a
      // tenant's flex volume, the operator's) is refused, whoever could write it.
      const owner = this.store?.volumes.get(s.volumeId)?.owner;
      if (this.store && owner !== undefined && owner !== CSI_OWNER) {
        throw new QosdError('PermissionDenied', `volume ${s.volumeId} was not provisioned for a PersistentVolume; a VolumeRequest cannot change it`);
      }
      if (s.operation === 'Modify') {
        await this.controller.modifyVolume({ volume_id: s.volumeId, mutable_parameters: s.mutableParameters ?? {} });
      } else if (s.operation === 'Expand') {
        const grown = await this.controller.expandVolume({ volume_id: s.volumeId, capacity_range: { required_bytes: s.requiredBytes ?? '0', limit_bytes: s.limitBytes ?? '0' }, volume_capability: null });
        capacityBytes = grown.capacity_bytes;
      } else {
        throw new Error(`spec.operation: "${String(s.operation)}" is not Expand or Modify`);
      }
      // no empty message: kube-apiserver 1.20 refused {"message": ""} in this status as "null" (met in test:kube)
      outcome = { phase: 'Succeeded', code: 'OK', message: 'done', finishedAt: new Date().toISOString(), ...(capacityBytes ? { capacityBytes } : {}) };
    } catch (err) {
      const e = toServiceError(err);
      outcome = { phase: 'Failed', code: grpcStatus[e.code], message: e.details, finishedAt: new Date().toISOString() };
    }
    this.state.carriedOut++;
    this.log.info({ volumeRequest: r.metadata.name, operation: s.operation, volume: s.volumeId, code: outcome.code, err: outcome.message || undefined }, 'volume request carried out');
    try {
      await this.client.request('PATCH', `${COLLECTION}/${r.metadata.name}/status`, { status: outcome }, MERGE_PATCH);
    } catch (err) {
      // Deleted meanwhile (the central side gave up on it), or the API server away: the change is
      // made either way, and a retry of the call carries it out again (each is idempotent).
      this.log.warn({ volumeRequest: r.metadata.name, err: (err as Error).message }, 'could not record a volume request outcome');
    }
  }
}
