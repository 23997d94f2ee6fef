// The CSI Controller service, served by every node's qosd for its own volumes (external-
// provisioner runs per node with --node-deployment, so CreateVolume reaches the node the
// scheduler chose). A CSI volume is a qosd volume: created, admitted, grown, changed and deleted
// by the same services as through the API, with events from `csi`.
import { status } from '@grpc/grpc-js';
import { QosdError, invalid, notFound } from '../model/errors';
import type { Volume } from '../store/volumes';
import type { Store } from '../store/store';
import type { VolumeService } from '../service/volumes';
import { sameSpec } from '../model/qos';
import { CSI_OWNER } from '../model/owner';
import { CsiError } from './status';
import { TOPOLOGY_KEY } from './names';
import { volumeId } from './node-requests';
import { capabilitiesFsType, classRequest, inParameters, onlyBlock, qosChange, reachesNode, sizeOf, volumeNameFor } from './controller-requests';
import type {
  ControllerExpandVolumeRequest, ControllerModifyVolumeRequest, CreateVolumeRequest, GetCapacityRequest, ValidateVolumeCapabilitiesRequest, VolumeMsg,
} from './types';

export interface ControllerDeps {
  store: Store;
  volumes: VolumeService;
  nodeName: string;
  defaultSize: number;
}

const CAPABILITIES = ['CREATE_DELETE_VOLUME', 'GET_CAPACITY', 'EXPAND_VOLUME', 'MODIFY_VOLUME'] as const;

export class CsiController {
  constructor(private readonly d: ControllerDeps) {}

  getCapabilities(): { capabilities: { rpc: { type: string } }[] } {
    return { capabilities: CAPABILITIES.map((type) => ({ rpc: { type } })) };
  }

  async createVolume(req: CreateVolumeRequest): Promise<{ volume: VolumeMsg }> {
    const name = volumeNameFor(volumeId(req.name, 'name'));
    const fsType = capabilitiesFsType(req.volume_capabilities);
    if (req.volume_content_source) throw invalid('volume_content_source: qosd makes no volume from a snapshot or another volume');
    // A claim for a raw block device gets one: no filesystem is made on it.
    const want = { ...classRequest(name, req.parameters, req.mutable_parameters), owner: CSI_OWNER, ...(onlyBlock(req.volume_capabilities) ? { raw: true } : {}) };
    if (fsType) {
      if (want.fsType !== undefined && want.fsType !== fsType) throw invalid(`volume_capabilities: fs_type ${fsType} differs from parameters["fsType"] ${want.fsType}`);
      want.fsType = fsType as 'ext4' | 'xfs';
    }
    const size = sizeOf(req.capacity_range, this.d.defaultSize);
    if (size !== undefined) want.size = size;
    const topo = req.accessibility_requirements;
    if (topo && !(reachesNode(topo.requisite, this.d.nodeName) && (topo.requisite.length > 0 || reachesNode(topo.preferred, this.d.nodeName)))) {
      throw new QosdError('ResourceExhausted', `accessibility_requirements: this qosd serves node ${this.d.nodeName} only, which the request does not name`);
    }
    const resolved = inParameters(() => this.d.volumes.resolve(want));
    const existing = this.d.store.volumes.get(name);
    if (existing) {
      // The same name again: OK with the volume if it is what was asked, ALREADY_EXISTS if not.
      const problem = differs(existing, resolved, req.capacity_range ? size : undefined, req.capacity_range?.limit_bytes);
      if (problem) throw new QosdError('AlreadyExists', `volume ${name} exists with ${problem}`);
      if (existing.state !== 'ready') throw new CsiError(status.ABORTED, `volume ${name} is ${existing.state}; retry once that finishes`);
      return { volume: this.volumeMsg(existing) };
    }
    const v = await this.d.volumes.create(want, 'csi');
    return { volume: this.volumeMsg(v) };
  }

  async deleteVolume(req: { volume_id: string }): Promise<Record<string, never>> {
    const name = volumeId(req.volume_id);
    if (!this.d.store.volumes.get(name)) return {}; // gone already: the spec says OK
    await this.d.volumes.delete(name, 'csi');
    return {};
  }

  validateVolumeCapabilities(req: ValidateVolumeCapabilitiesRequest): { confirmed: unknown; message: string } {
    const name = volumeId(req.volume_id);
    if (req.volume_capabilities.length === 0) throw invalid('volume_capabilities: missing');
    const v = this.d.store.volumes.get(name);
    if (!v) throw notFound(`volume ${name} does not exist`);
    try {
      const fsType = capabilitiesFsType(req.volume_capabilities);
      if (fsType && fsType !== v.fsType) return { confirmed: null, message: `volume ${name} is ${v.fsType}, not ${fsType}` };
      classRequest(name, req.parameters, req.mutable_parameters);
    } catch (err) {
      return { confirmed: null, message: (err as Error).message };
    }
    return {
      confirmed: { volume_context: req.volume_context, volume_capabilities: req.volume_capabilities, parameters: req.parameters, mutable_parameters: req.mutable_parameters },
      message: '',
    };
  }

  async getCapacity(req: GetCapacityRequest): Promise<{ available_capacity: string; maximum_volume_size: { value: string } }> {
    const none = { available_capacity: '0', maximum_volume_size: { value: '0' } };
    if (req.volume_capabilities.length > 0) capabilitiesFsType(req.volume_capabilities);
    const segment = req.accessible_topology?.segments[TOPOLOGY_KEY];
    if (req.accessible_topology && segment !== this.d.nodeName) return none;
    // The class's guarantee is what decides: 0 bytes for a class the pool can no longer admit,
    // and its space scaled by the device time left (VolumeService.capacityFor).
    const probe = classRequest('capacity-probe', req.parameters, {});
    inParameters(() => this.d.volumes.resolve(probe));
    const { bytes, maxBytes } = await this.d.volumes.capacityFor(probe);
    return { available_capacity: String(bytes), maximum_volume_size: { value: String(maxBytes) } };
  }

  async expandVolume(req: ControllerExpandVolumeRequest): Promise<{ capacity_bytes: string; node_expansion_required: boolean }> {
    const name = volumeId(req.volume_id);
    if (!req.capacity_range) throw invalid('capacity_range: missing');
    const v = this.d.store.volumes.get(name);
    if (!v) throw notFound(`volume ${name} does not exist`);
    const size = sizeOf(req.capacity_range, v.sizeBytes) ?? v.sizeBytes;
    // The device and its filesystem grow here, on the node that holds them (mounted or not), so
    // kubelet has nothing left to do: node_expansion_required is false.
    const grown = size > v.sizeBytes ? await this.d.volumes.resize(name, size, 'csi') : v;
    return { capacity_bytes: String(grown.sizeBytes), node_expansion_required: false };
  }

  async modifyVolume(req: ControllerModifyVolumeRequest): Promise<Record<string, never>> {
    const name = volumeId(req.volume_id);
    const change = qosChange(req.mutable_parameters);
    if (!this.d.store.volumes.get(name)) throw notFound(`volume ${name} does not exist`);
    if (Object.keys(change).length === 0) return {};
    await inParameters(() => this.d.volumes.changeQos(name, change, 'csi'), 'mutable_parameters');
    return {};
  }

  private volumeMsg(v: Volume): VolumeMsg {
    return { capacity_bytes: String(v.sizeBytes), volume_id: v.name, volume_context: {}, accessible_topology: [{ segments: { [TOPOLOGY_KEY]: this.d.nodeName } }] };
  }
}

/** How an existing volume differs from a CreateVolume asking for `want`, or undefined. */
function differs(v: Volume, want: ReturnType<VolumeService['resolve']>, size: number | undefined, limit: string | undefined): string | undefined {
  if (v.pool !== want.pool) return `pool ${v.pool}, not ${want.pool}`;
  if (v.fsType !== want.fsType) return `fsType ${v.fsType}, not ${want.fsType}`;
  if (size !== undefined && v.sizeBytes < size) return `${v.sizeBytes} bytes, less than the ${size} asked`;
  if (limit && Number(limit) > 0 && v.sizeBytes > Number(limit)) return `${v.sizeBytes} bytes, more than limit_bytes ${limit}`;
  if (v.class !== want.class || !sameSpec(v.qos, want.qos)) return `other QoS (class ${v.class}, ${JSON.stringify(v.qos)})`;
  return undefined;
}
