// The CSI Node service: publish a qosd volume for a pod (a filesystem on a directory, or the
// raw device on a file) with the pod's cgroups throttled, exactly as the flex door does, and the
// reverse; the volume's usage and health; online growth. Every call is idempotent: kubelet
// retries after timeouts and restarts, and a repeat finds the work done and answers OK.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { QosdError, invalid, notFound } from '../model/errors';
import { mountsAt } from '../host/mountinfo';
import type { HostRoot } from '../host/host-root';
import type { AttachmentService } from '../service/attachments';
import type { VolumeService } from '../service/volumes';
import type { Store } from '../store/store';
import type { Attachment } from '../store/attachments';
import { CsiError } from './status';
import { TOPOLOGY_KEY } from './names';
import { publishDirs, publishRequest, requiredPath, volumeId } from './node-requests';
import { canonicalPath, checkTargetIn, removeMadeTarget } from '../service/targets';
import { bytes } from './controller-requests';
import type {
  NodeExpandVolumeRequest, NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse, NodePublishVolumeRequest, NodeUnpublishVolumeRequest, VolumeUsage,
} from './types';

export interface NodeDeps {
  store: Store;
  volumes: VolumeService;
  attachments: AttachmentService;
  kubeletRootDir: string;
  nodeName: string;
  log: Logger;
  /** Where the mount table is read. */
  root: HostRoot;
}

const CAPABILITIES = ['GET_VOLUME_STATS', 'EXPAND_VOLUME', 'VOLUME_CONDITION'] as const;

export class CsiNode {
  constructor(private readonly d: NodeDeps) {}

  getInfo(): { node_id: string; max_volumes_per_node: string; accessible_topology: { segments: Record<string, string> } } {
    return { node_id: this.d.nodeName, max_volumes_per_node: '0', accessible_topology: { segments: { [TOPOLOGY_KEY]: this.d.nodeName } } };
  }

  getCapabilities(): { capabilities: { rpc: { type: string } }[] } {
    return { capabilities: CAPABILITIES.map((type) => ({ rpc: { type } })) };
  }

  async publish(req: NodePublishVolumeRequest): Promise<Record<string, never>> {
    const attach = publishRequest(req, this.d.kubeletRootDir);
    await this.d.attachments.attach(attach);
    return {};
  }

  /**
   * Only a target qosd published, inside kubelet's directories, is unmounted and removed; one it
   * has no record of is left alone and answered OK (the spec's idempotent repeat).
   */
  async unpublish(req: NodeUnpublishVolumeRequest): Promise<Record<string, never>> {
    const name = volumeId(req.volume_id);
    const target = checkTargetIn(requiredPath(req.target_path, 'target_path'), publishDirs(this.d.kubeletRootDir), 'target_path', ` (kubelet.rootDir is ${this.d.kubeletRootDir})`);
    const att = this.d.store.attachments.byTarget(target);
    if (att && att.volume !== name) throw notFound(`volume ${name} is not published at ${target} (volume ${att.volume} is)`);
    if (!att && !this.d.store.volumes.get(name)) throw notFound(`volume ${name} does not exist`);
    if (!att) return {};
    await this.d.attachments.detach(target, 'csi');
    if (mountsAt(this.d.root, target).length > 0) throw new QosdError('FailedPrecondition', `target_path ${target} is still a mount point`);
    try {
      removeMadeTarget(target);
    } catch (err) {
      throw new QosdError('FailedPrecondition', `target_path ${target}: not removed (${(err as Error).message}); qosd removes only the empty directory or file it made`);
    }
    return {};
  }

  async getVolumeStats(req: NodeGetVolumeStatsRequest): Promise<NodeGetVolumeStatsResponse> {
    const att = this.publishedAt(req.volume_id, req.volume_path);
    const problem = this.d.attachments.problemOf(att);
    if (problem !== undefined) return { usage: [], volume_condition: { abnormal: true, message: problem } };
    const usage: VolumeUsage[] = att.kind === 'block' ? [blockUsage(this.d.volumes.get(att.volume).sizeBytes)] : await filesystemUsage(att.target);
    return { usage, volume_condition: { abnormal: false, message: 'mounted, on its own device' } };
  }

  async expand(req: NodeExpandVolumeRequest): Promise<{ capacity_bytes: string }> {
    const att = this.publishedAt(req.volume_id, req.volume_path);
    const name = att.volume;
    const required = bytes(req.capacity_range?.required_bytes, 'capacity_range.required_bytes');
    const limit = bytes(req.capacity_range?.limit_bytes, 'capacity_range.limit_bytes');
    if (limit > 0 && required > limit) throw new CsiError(status.OUT_OF_RANGE, `capacity_range: required_bytes ${required} is more than limit_bytes ${limit}`);
    const v = this.d.volumes.get(att.volume);
    // Already at least that big (or no size asked): the filesystem already fills the device.
    if (required <= v.sizeBytes) return { capacity_bytes: String(v.sizeBytes) };
    const grown = await this.d.volumes.resize(name, required, 'csi');
    return { capacity_bytes: String(grown.sizeBytes) };
  }

  /**
   * The attachment of volume `id` at `volumePath`, checked in the order the spec's codes need:
   * either field missing is InvalidArgument; a volume that does not exist, or is not published at
   * that path (a relative path never is), is NotFound.
   */
  private publishedAt(id: string, volumePath: string): Attachment {
    const name = volumeId(id);
    if (!volumePath) throw invalid('volume_path: missing');
    if (volumePath.includes('\0')) throw invalid('volume_path: contains a NUL byte');
    if (!this.d.store.volumes.get(name)) throw notFound(`volume ${name} does not exist`);
    const att = path.isAbsolute(volumePath) ? this.d.store.attachments.byTarget(canonicalPath(path.resolve(volumePath))) : undefined;
    if (!att || att.volume !== name) throw notFound(`volume ${name} is not published at ${volumePath}`);
    return att;
  }
}

function blockUsage(sizeBytes: number): VolumeUsage {
  return { total: String(sizeBytes), available: '0', used: '0', unit: 'BYTES' };
}

/** statfs off the daemon's thread: kubelet asks this of every volume every stats period. */
async function filesystemUsage(target: string): Promise<VolumeUsage[]> {
  const s = await fs.promises.statfs(target, { bigint: true });
  return [
    { total: String(s.blocks * s.bsize), available: String(s.bavail * s.bsize), used: String((s.blocks - s.bfree) * s.bsize), unit: 'BYTES' },
    { total: String(s.files), available: String(s.ffree), used: String(s.files - s.ffree), unit: 'INODES' },
  ];
}
