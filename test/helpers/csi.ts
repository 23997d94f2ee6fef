// A real gRPC client for qosd's CSI socket (and a kubelet-side registration client), with the
// proto files qosd serves: what kubelet, node-driver-registrar and csi-sanity send, on the wire.
import * as grpc from '@grpc/grpc-js';
import { protos } from '../../src/csi/proto';

type Service = 'Identity' | 'Controller' | 'Node' | 'Registration';

export interface CsiClient {
  call<T = Record<string, unknown>>(service: Service, method: string, request?: unknown): Promise<T>;
  /** The status code name a call fails with (e.g. "INVALID_ARGUMENT"), or "OK". */
  code(service: Service, method: string, request?: unknown): Promise<string>;
  /** The status code name and message a call fails with ("OK" and "" when it succeeds). */
  answer(service: Service, method: string, request?: unknown): Promise<{ code: string; details: string }>;
  close(): void;
}

export function csiClient(socket: string, timeoutMs = 60_000, options: grpc.ChannelOptions = {}): CsiClient {
  const { clients } = protos();
  const made = new Map<Service, grpc.Client>();
  const client = (s: Service): grpc.Client => {
    let c = made.get(s);
    if (!c) {
      c = new clients[s](`unix://${socket}`, grpc.credentials.createInsecure(), options);
      made.set(s, c);
    }
    return c;
  };
  const call = <T>(service: Service, method: string, request: unknown = {}): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const c = client(service) as unknown as Record<string, (req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: T) => void) => void>;
      const fn = c[method];
      if (!fn) throw new Error(`no method ${service}.${method}`);
      fn.call(c, request, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  return {
    call,
    async code(service, method, request) {
      return (await this.answer(service, method, request)).code;
    },
    async answer(service, method, request) {
      try {
        await call(service, method, request);
        return { code: 'OK', details: '' };
      } catch (err) {
        const e = err as grpc.ServiceError;
        return { code: grpc.status[e.code] ?? String(err), details: e.details ?? '' };
      }
    },
    close() {
      for (const c of made.values()) c.close();
    },
  };
}

/** A mount capability as kubelet sends it for a filesystem PV. */
export function mountCapability(fsType = 'ext4', mode = 'SINGLE_NODE_WRITER'): unknown {
  return { mount: { fs_type: fsType, mount_flags: [] }, access_mode: { mode } };
}

export function blockCapability(mode = 'SINGLE_NODE_WRITER'): unknown {
  return { block: {}, access_mode: { mode } };
}

/** kubelet's targets: pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount, and the block publish file. */
export function csiMountTarget(kubeletRoot: string, podUid: string, pv: string): string {
  return `${kubeletRoot}/pods/${podUid}/volumes/kubernetes.io~csi/${pv}/mount`;
}
export function csiBlockTarget(kubeletRoot: string, podUid: string, pv: string): string {
  return `${kubeletRoot}/plugins/kubernetes.io/csi/volumeDevices/publish/${pv}/${podUid}`;
}

/** The volume_context kubelet sends with podInfoOnMount: true. */
export function podInfo(podUid: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    'csi.storage.k8s.io/pod.name': 'db-0',
    'csi.storage.k8s.io/pod.namespace': 'default',
    'csi.storage.k8s.io/pod.uid': podUid,
    'csi.storage.k8s.io/serviceAccount.name': 'default',
    'csi.storage.k8s.io/ephemeral': 'false',
    ...extra,
  };
}
