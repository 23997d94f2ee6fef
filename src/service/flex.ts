// The daemon side of the FlexVolume driver qosd/nvme: kubelet's argv in, the reply kubelet reads
// out. Options are validated here (unknown keys and bad values are a Failure naming the option)
// and mount targets must lie under <kubelet.rootDir>/pods/. Nothing is "Not supported" for a
// transient reason: kubelet caches that answer for good.
import * as path from 'node:path';
import { parseQuantity } from '../util/quantity';
import { POD_UID } from '../host/pod-cgroup';
import { QosdError, asQosdError, invalid } from '../model/errors';
import { NAMESPACE, namespaceOwner } from '../model/owner';
import type { AttachmentService } from './attachments';
import type { VolumeRequest } from './volumes';
import { checkTargetIn } from './targets';
import { QOS_OPTIONS, limitsFromOptions } from './volume-options';

export type FlexStatus = 'Success' | 'Failure' | 'Not supported';

export interface FlexReply {
  status: FlexStatus;
  message?: string;
  capabilities?: {
    attach: boolean;
    selinuxRelabel: boolean;
    fsGroup: boolean;
    supportsMetrics: boolean;
    requiresFSResize: boolean;
  };
}

/** The init reply. attach:false makes kubelet call mount/unmount only; never send capabilities:null. */
export const INIT_REPLY: FlexReply = {
  status: 'Success',
  capabilities: { attach: false, selinuxRelabel: true, fsGroup: true, supportsMetrics: true, requiresFSResize: false },
};

const USER_OPTIONS = new Set(['volumeId', 'ephemeral', 'size', 'pool', 'class', ...QOS_OPTIONS]);

/** The JSON options argument as a Map (a "__proto__" key must stay a plain key). */
export function parseOptions(json: string | undefined): Map<string, string> {
  if (json === undefined) throw invalid('the options argument (JSON) is missing');
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw invalid(`the options argument is not JSON: ${(err as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalid('the options argument must be a JSON object');
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw invalid(`option ${k}: must be a string (kubelet passes every option as a string)`);
    out.set(k, v);
  }
  return out;
}

export interface MountOptions {
  volume: VolumeRequest;
  podUid: string | undefined;
  /** The pod's namespace (kubelet's kubernetes.io/pod.namespace, which a user's options cannot override). */
  namespace?: string;
  readOnly: boolean;
}

/** Turns mount options into a volume request; throws InvalidArgument naming the option. */
export function mountOptions(opts: Map<string, string>): MountOptions {
  for (const k of opts.keys()) {
    if (k.startsWith('kubernetes.io/')) continue;
    if (!USER_OPTIONS.has(k)) throw invalid(`option ${k}: unknown option (known: ${[...USER_OPTIONS].join(', ')})`);
  }
  const podUid = opts.get('kubernetes.io/pod.uid') || undefined;
  if (podUid !== undefined && !POD_UID.test(podUid)) throw invalid(`option kubernetes.io/pod.uid: "${podUid}" is not a pod UID`);
  const namespace = opts.get('kubernetes.io/pod.namespace') || undefined;
  if (namespace !== undefined && !NAMESPACE.test(namespace)) throw invalid(`option kubernetes.io/pod.namespace: "${namespace}" is not a namespace name`);

  const ephemeralText = opts.get('ephemeral');
  if (ephemeralText !== undefined && ephemeralText !== 'true' && ephemeralText !== 'false') {
    throw invalid(`option ephemeral: must be "true" or "false", not "${ephemeralText}"`);
  }
  const ephemeral = ephemeralText === 'true';

  const baseName = opts.get('volumeId') || opts.get('kubernetes.io/pvOrVolumeName');
  if (!baseName) throw invalid('option volumeId: missing, and kubelet passed no kubernetes.io/pvOrVolumeName');
  // An ephemeral volume is private to its pod: unless named explicitly, the pod uid is part of its
  // name, so two pods with an inline volume called "data" never share (or delete) each other's.
  const name = ephemeral && !opts.get('volumeId') && podUid ? `${baseName}-${podUid.toLowerCase()}` : baseName;

  const fsText = opts.get('kubernetes.io/fsType') ?? '';
  if (fsText !== '' && fsText !== 'ext4' && fsText !== 'xfs') {
    throw invalid(`option kubernetes.io/fsType: "${fsText}" is not supported (ext4 or xfs)`);
  }
  const rw = opts.get('kubernetes.io/readwrite') ?? 'rw';
  if (rw !== 'rw' && rw !== 'ro') throw invalid(`option kubernetes.io/readwrite: must be "rw" or "ro", not "${rw}"`);

  const volume: VolumeRequest = { name, ephemeral };
  if (fsText) volume.fsType = fsText as 'ext4' | 'xfs';
  const pool = opts.get('pool');
  if (pool !== undefined) volume.pool = pool;
  const cls = opts.get('class');
  if (cls !== undefined) volume.class = cls;
  const size = opts.get('size');
  if (size !== undefined) {
    const n = parseQuantity(size);
    if (typeof n !== 'number') throw invalid(`option size: ${n.error}`);
    volume.size = n;
  }
  const qos = limitsFromOptions(opts, (k) => `option ${k}`);
  if (qos) volume.qos = qos;
  if (namespace !== undefined) volume.owner = namespaceOwner(namespace);
  return { volume, podUid, namespace, readOnly: rw === 'ro' };
}

/** The absolute target, or InvalidArgument when it is not inside <rootDir>/pods/. */
export function checkTarget(target: string | undefined, kubeletRootDir: string): string {
  if (!target) throw invalid('the mount directory argument is missing');
  return checkTargetIn(target, [path.join(kubeletRootDir, 'pods')], 'mount directory', ` (kubelet.rootDir is ${kubeletRootDir})`);
}

export class FlexHandler {
  constructor(
    private readonly attachments: AttachmentService,
    private readonly kubeletRootDir: string,
    /** flex.allowedNamespaces: the namespaces whose pods may use the driver; undefined: every one. */
    private readonly allowedNamespaces?: ReadonlySet<string>,
  ) {}

  async handle(argv: string[]): Promise<FlexReply> {
    const [command, ...args] = argv;
    try {
      switch (command) {
        case 'init':
          return INIT_REPLY;
        case 'mount':
          return await this.mount(args);
        case 'unmount':
          return await this.unmount(args);
        default:
          // getvolumename, attach, expandvolume, unknown commands: kubelet falls back (and caches).
          return { status: 'Not supported' };
      }
    } catch (err) {
      const e = asQosdError(err);
      return { status: 'Failure', message: e.message };
    }
  }

  private async mount(args: string[]): Promise<FlexReply> {
    const target = checkTarget(args[0], this.kubeletRootDir);
    const m = mountOptions(parseOptions(args[1]));
    // The tenant is the pod's namespace: what a pod there may reach (service/tenancy.ts).
    if (m.namespace === undefined) throw invalid('option kubernetes.io/pod.namespace: missing (kubelet passes the pod\'s namespace with every mount)');
    if (this.allowedNamespaces && !this.allowedNamespaces.has(m.namespace)) {
      throw new QosdError('PermissionDenied', `namespace ${m.namespace} may not use the qosd/nvme flex driver (flex.allowedNamespaces: ${[...this.allowedNamespaces].join(', ') || 'none'})`);
    }
    const { volume, attachment } = await this.attachments.attach({ volume: m.volume, target, podUid: m.podUid, readOnly: m.readOnly, source: 'flex', tenant: m.namespace });
    const where = attachment.podCgroup ? `, rules in ${attachment.podCgroup}` : '';
    return { status: 'Success', message: `volume ${volume.name} (${volume.device}) mounted at ${target}${where}` };
  }

  private async unmount(args: string[]): Promise<FlexReply> {
    const target = checkTarget(args[0], this.kubeletRootDir);
    await this.attachments.detach(target, 'flex');
    return { status: 'Success' };
  }
}
