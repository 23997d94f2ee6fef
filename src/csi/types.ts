// The CSI messages qosd reads and writes, as proto-loader hands them over (proto/csi.proto;
// keepCase, defaults on: a missing string is "", a missing message null, a missing map {}).

export type AccessMode =
  | 'UNKNOWN' | 'SINGLE_NODE_WRITER' | 'SINGLE_NODE_READER_ONLY' | 'MULTI_NODE_READER_ONLY'
  | 'MULTI_NODE_SINGLE_WRITER' | 'MULTI_NODE_MULTI_WRITER' | 'SINGLE_NODE_SINGLE_WRITER' | 'SINGLE_NODE_MULTI_WRITER';

export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: { fs_type: string; mount_flags: string[]; volume_mount_group: string } | null;
  access_mode: { mode: AccessMode } | null;
  access_type?: 'block' | 'mount';
}

export interface NodePublishVolumeRequest {
  volume_id: string;
  publish_context: Record<string, string>;
  staging_target_path: string;
  target_path: string;
  volume_capability: VolumeCapability | null;
  readonly: boolean;
  secrets: Record<string, string>;
  volume_context: Record<string, string>;
}

export interface NodeUnpublishVolumeRequest {
  volume_id: string;
  target_path: string;
}

export interface NodeGetVolumeStatsRequest {
  volume_id: string;
  volume_path: string;
  staging_target_path: string;
}

export interface VolumeUsage {
  available: string;
  total: string;
  used: string;
  unit: 'BYTES' | 'INODES';
}

export interface NodeGetVolumeStatsResponse {
  usage: VolumeUsage[];
  volume_condition: { abnormal: boolean; message: string };
}

export interface NodeExpandVolumeRequest {
  volume_id: string;
  volume_path: string;
  capacity_range: { required_bytes: string; limit_bytes: string } | null;
  staging_target_path: string;
  volume_capability: VolumeCapability | null;
}

export interface TopologyMsg {
  segments: Record<string, string>;
}

export interface CapacityRangeMsg {
  required_bytes: string;
  limit_bytes: string;
}

export interface CreateVolumeRequest {
  name: string;
  capacity_range: CapacityRangeMsg | null;
  volume_capabilities: VolumeCapability[];
  parameters: Record<string, string>;
  secrets: Record<string, string>;
  volume_content_source: { snapshot?: unknown; volume?: unknown; type?: string } | null;
  accessibility_requirements: { requisite: TopologyMsg[]; preferred: TopologyMsg[] } | null;
  mutable_parameters: Record<string, string>;
}

export interface VolumeMsg {
  capacity_bytes: string;
  volume_id: string;
  volume_context: Record<string, string>;
  accessible_topology: TopologyMsg[];
}

export interface ValidateVolumeCapabilitiesRequest {
  volume_id: string;
  volume_context: Record<string, string>;
  volume_capabilities: VolumeCapability[];
  parameters: Record<string, string>;
  mutable_parameters: Record<string, string>;
}

export interface GetCapacityRequest {
  volume_capabilities: VolumeCapability[];
  parameters: Record<string, string>;
  accessible_topology: TopologyMsg | null;
}

export interface ControllerExpandVolumeRequest {
  volume_id: string;
  capacity_range: CapacityRangeMsg | null;
  volume_capability: VolumeCapability | null;
}

export interface ControllerModifyVolumeRequest {
  volume_id: string;
  mutable_parameters: Record<string, string>;
}
