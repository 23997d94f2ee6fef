// The central CSI controller (`qosd csi-controller`): the endpoint of external-resizer, which runs
// once per cluster, never per node, and calls ControllerExpandVolume (a PVC grown) and
// ControllerModifyVolume (a PVC's VolumeAttributesClass changed). A qosd volume lives on one
// node, so each call is checked here, then carried to that node's qosd as a VolumeRequest
// (volume-request.ts) through the API server, and answered with what the node did.
//
// Why the API server and not a direct call: it is the one channel every node already reaches and
// that already authenticates and authorises both ends (RBAC on one resource); qosd's own API
// never leaves the node's unix socket; a node that is down or restarting finds the request when it
// comes back; and the object shows what was asked and what happened (`kubectl get volumerequests`).
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { KubeApiError, type KubeClient } from '../kube/client';
import { invalid, notFound } from '../model/errors';
import { CsiError } from './status';
import { DRIVER_NAME, TOPOLOGY_KEY } from './names';
import { volumeId } from './node-requests';
import { qosChange, sizeOf } from './controller-requests';
import { COLLECTION, volumeRequestFor, type VolumeRequest, type VolumeRequestSpec, type VolumeRequestStatus } from './volume-request';
import type { ControllerExpandVolumeRequest, ControllerModifyVolumeRequest } from './types';

interface PersistentVolume {
  metadata: { name: string };
  spec: {
    csi?: { driver: string; volumeHandle: string };
    nodeAffinity?: { required?: { nodeSelectorTerms?: { matchExpressions?: { key: string; operator: string; values?: string[] }[] }[] } };
  };
}
interface PersistentVolumeList {
  metadata: { continue?: string };
  items: PersistentVolume[];
}

export interface CentralOptions {
  client: KubeClient;
  log: Logger;
  /** How long a call waits for the node (external-resizer gives up after 10 s by default). */
  waitMs: number;
  pollMs?: number;
}

const CAPABILITIES = ['EXPAND_VOLUME', 'MODIFY_VOLUME'] as const;

export class CsiCentralController {
  /** volume id → node: a local volume never moves, so a PV is looked up once. */
  private readonly owners = new Map<string, string>();

  constructor(private readonly o: CentralOptions) {}

  getCapabilities(): { capabilities: { rpc: { type: string } }[] } {
    return { capabilities: CAPABILITIES.map((type) => ({ rpc: { type } })) };
  }

  async expandVolume(req: ControllerExpandVolumeRequest): Promise<{ capacity_bytes: string; node_expansion_required: boolean }> {
    const id = volumeId(req.volume_id);
    if (!req.capacity_range) throw invalid('capacity_range: missing');
    sizeOf(req.capacity_range, 0); // OUT_OF_RANGE here, before anything is written
    const node = await this.ownerOf(id);
    const spec: VolumeRequestSpec = { node, volumeId: id, operation: 'Expand', requiredBytes: req.capacity_range.required_bytes || '0', limitBytes: req.capacity_range.limit_bytes || '0' };
    const done = await this.carry(spec);
    // The node grows the device and the filesystem (mounted or not): nothing left for kubelet.
    return { capacity_bytes: done.capacityBytes ?? '0', node_expansion_required: false };
  }

  async modifyVolume(req: ControllerModifyVolumeRequest): Promise<Record<string, never>> {
    const id = volumeId(req.volume_id);
    const change = qosChange(req.mutable_parameters); // INVALID_ARGUMENT here, naming the key, before anything is written
    const node = await this.ownerOf(id);
    if (Object.keys(change).length === 0) return {}; // nothing named, nothing to carry
    await this.carry({ node, volumeId: id, operation: 'Modify', mutableParameters: { ...req.mutable_parameters } });
    return {};
  }

  /** Ready when the API server answers. */
  async probe(): Promise<string | undefined> {
    try {
      await this.o.client.get('/version');
      return undefined;
    } catch (err) {
      return `the API server does not answer (${(err as Error).message})`;
    }
  }

  /** The node a volume lives on: its PersistentVolume's node affinity on topology.qosd.io/node. */
  private async ownerOf(id: string): Promise<string> {
    const known = this.owners.get(id);
    if (known) return known;
    let next: string | undefined = '';
    while (next !== undefined) {
      const page: PersistentVolumeList = await this.o.client.get<PersistentVolumeList>(`/api/v1/persistentvolumes?limit=500${next ? `&continue=${encodeURIComponent(next)}` : ''}`).catch((err: unknown) => {
        throw unavailable(err);
      });
      for (const pv of page.items) {
        if (pv.spec.csi?.driver !== DRIVER_NAME || pv.spec.csi.volumeHandle !== id) continue;
        const terms = pv.spec.nodeAffinity?.required?.nodeSelectorTerms ?? [];
        const node = terms.flatMap((t) => t.matchExpressions ?? []).find((e) => e.key === TOPOLOGY_KEY && e.operator === 'In')?.values?.[0];
        if (!node) throw new CsiError(status.FAILED_PRECONDITION, `volume_id: PersistentVolume ${pv.metadata.name} has no node affinity on ${TOPOLOGY_KEY}, so the node that holds ${id} is not known`);
        this.owners.set(id, node);
        return node;
      }
      next = page.metadata.continue || undefined;
    }
    throw notFound(`volume_id: no PersistentVolume of driver ${DRIVER_NAME} has volumeHandle ${id}`);
  }

  /**
   * Creates the VolumeRequest (or finds the one an earlier try of the same call made), waits for
   * the node's outcome, deletes the object and answers with the node's code. A node that has not
   * answered in time gets DEADLINE_EXCEEDED: the object stays, the sidecar retries the same call
   * and finds it (done by then, or still waiting), so a change is carried out once.
   */
  private async carry(spec: VolumeRequestSpec): Promise<VolumeRequestStatus> {
    const want = volumeRequestFor(spec);
    const path = `${COLLECTION}/${want.metadata.name}`;
    const deadline = Date.now() + this.o.waitMs;
    await this.create(want);
    for (;;) {
      let got: VolumeRequest | undefined;
      try {
        got = await this.o.client.get<VolumeRequest>(path);
      } catch (err) {
        if (!(err instanceof KubeApiError && err.status === 404)) throw unavailable(err);
        await this.create(want); // a concurrent identical call took its answer and deleted it
      }
      const outcome = got?.status;
      if (outcome?.phase) {
        await this.o.client.request('DELETE', path).catch((err: unknown) => {
          if (!(err instanceof KubeApiError && err.status === 404)) this.o.log.warn({ volumeRequest: want.metadata.name, err: (err as Error).message }, 'could not delete a finished VolumeRequest');
        });
        this.o.log.info({ volumeRequest: want.metadata.name, ...spec, code: outcome.code }, 'volume request answered by its node');
        if (outcome.phase === 'Succeeded') return outcome;
        const code = status[outcome.code as keyof typeof status];
        throw new CsiError(typeof code === 'number' ? code : status.UNKNOWN, outcome.message);
      }
      if (Date.now() >= deadline) {
        throw new CsiError(status.DEADLINE_EXCEEDED, `node ${spec.node} has not carried out VolumeRequest ${want.metadata.name} within ${this.o.waitMs} ms (is its qosd running with csi.kubeconfig set?); it stays, and a retry of this call waits for it again`);
      }
      await new Promise((r) => setTimeout(r, this.o.pollMs ?? 200));
    }
  }

  private async create(want: VolumeRequest): Promise<void> {
    try {
      await this.o.client.request('POST', COLLECTION, want);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 409) return; // made by an earlier try of this call
      if (err instanceof KubeApiError && err.status === 404) {
        throw new CsiError(status.FAILED_PRECONDITION, `the API server has no ${want.kind} resource: apply deploy/kubernetes/volume-requests.yaml (${err.message})`);
      }
      throw unavailable(err);
    }
  }
}

/** The API server failing us is UNAVAILABLE for the sidecar (retried), with its message. */
function unavailable(err: unknown): CsiError {
  if (err instanceof CsiError) return err;
  return new CsiError(status.UNAVAILABLE, `the API server: ${(err as Error).message}`);
}
