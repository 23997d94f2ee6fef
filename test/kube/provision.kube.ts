// Dynamic provisioning through qosd's CSI Controller service under the real API server, scheduler,
// PV controller and kubelet 1.20. The test cluster has no external-provisioner or external-resizer
// image, so this file does their part exactly as they do it, and nothing more: it waits for the
// scheduler's volume.kubernetes.io/selected-node on the PVC (WaitForFirstConsumer), calls
// CreateVolume on that node's CSI socket with the StorageClass parameters and the node's topology,
// creates the PV from the answer (claimRef, node affinity) and, for a resize, calls
// ControllerExpandVolume. Everything else is Kubernetes' own: binding, scheduling, publishing,
// mounting, and the container's IO, measured.
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLUSTER, QOSD, deletePod, figure, kubectl, logsUntil, pod, qosd, until } from './cluster';
import { csiClient } from '../helpers/csi';

const NODE = CLUSTER.REALKUBE_NODE_NAME ?? 'localhost';
const DRIVER = 'nvme.qosd.io';
const TOPOLOGY = 'topology.qosd.io/node';
const CLOCK = "now() { cut -d' ' -f1 /proc/uptime; }; rate() { awk -v n=$1 -v s=$2 -v e=$3 'BEGIN { printf \"%d\", n / (e - s) }'; }";
const made: [kind: string, name: string][] = [];
const csi = csiClient(path.join(QOSD, 'csi.sock'));

const json = async <T>(args: string[]): Promise<T> => JSON.parse(await kubectl([...args, '-o', 'json'])) as T;
const MI = 1024 * 1024;

interface Pvc { metadata: { name: string; namespace: string; uid: string; annotations?: Record<string, string> }; spec: { storageClassName: string; accessModes: string[]; volumeMode?: string; resources: { requests: { storage: string } } }; status: { phase: string } }
interface StorageClass { parameters?: Record<string, string>; reclaimPolicy?: string }

/** "64Mi" → bytes (the quantities this test writes). */
function quantity(q: string): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(q);
  if (!m) throw new Error(`quantity ${q}`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 * MI : MI);
}

/** external-provisioner's part for one PVC: CreateVolume on the selected node, then the PV. */
async function provisionAsTheSidecarWould(claim: string): Promise<{ pv: string; volumeId: string }> {
  const pvc = await until(`the scheduler to select a node for ${claim}`, 120_000, async () => {
    const p = await json<Pvc>(['get', 'pvc', claim]);
    return p.metadata.annotations?.['volume.kubernetes.io/selected-node'] ? p : undefined;
  });
  const node = pvc.metadata.annotations!['volume.kubernetes.io/selected-node']!;
  const sc = await json<StorageClass>(['get', 'storageclass', pvc.spec.storageClassName]);
  const params = { ...sc.parameters };
  const fsType = params['csi.storage.k8s.io/fstype'] ?? 'ext4';
  delete params['csi.storage.k8s.io/fstype']; // the sidecar takes it out into the capability
  const name = `pvc-${pvc.metadata.uid}`;
  const topology = { segments: { [TOPOLOGY]: node } };
  const r = await csi.call<{ volume: { volume_id: string; capacity_bytes: string; accessible_topology: { segments: Record<string, string> }[] } }>('Controller', 'CreateVolume', {
    name,
    capacity_range: { required_bytes: String(quantity(pvc.spec.resources.requests.storage)) },
    volume_capabilities: [{ mount: { fs_type: fsType, mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
    parameters: { ...params, 'csi.storage.k8s.io/pvc/name': claim, 'csi.storage.k8s.io/pvc/namespace': 'default', 'csi.storage.k8s.io/pv/name': name },
    accessibility_requirements: { requisite: [topology], preferred: [topology] },
  });
  const seg = r.volume.accessible_topology[0]!.segments;
  const pv = {
    apiVersion: 'v1', kind: 'PersistentVolume',
    metadata: { name, annotations: { 'pv.kubernetes.io/provisioned-by': DRIVER } },
    spec: {
      capacity: { storage: `${Math.floor(Number(r.volume.capacity_bytes) / MI)}Mi` },
      accessModes: pvc.spec.accessModes, volumeMode: 'Filesystem', storageClassName: pvc.spec.storageClassName,
      persistentVolumeReclaimPolicy: sc.reclaimPolicy ?? 'Delete',
      claimRef: { kind: 'PersistentVolumeClaim', apiVersion: 'v1', namespace: 'default', name: claim, uid: pvc.metadata.uid },
      csi: { driver: DRIVER, volumeHandle: r.volume.volume_id, fsType },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: Object.entries(seg).map(([key, v]) => ({ key, operator: 'In', values: [v] })) }] } },
    },
  };
  made.push(['pv', name]);
  await kubectl(['apply', '-f', '-'], JSON.stringify(pv));
  return { pv: name, volumeId: r.volume.volume_id };
}

afterAll(async () => {
  for (const [kind, name] of made.reverse()) await kubectl(['delete', kind, name, '--ignore-not-found', '--wait=false']).catch(() => undefined);
  csi.close();
});

describe('a PVC provisioned through CreateVolume (the sidecar part done by the test)', () => {
  it("gets a volume of the StorageClass's QoS on the node the scheduler picked; the container's dd is held to it (±15%); a resize grows the mounted filesystem", async () => {
    const sc = {
      apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'qosd-test-limited' },
      provisioner: DRIVER, volumeBindingMode: 'WaitForFirstConsumer', allowVolumeExpansion: true, reclaimPolicy: 'Delete',
      parameters: { class: 'best-effort', maxReadIops: '200', maxWriteBps: '4Mi', 'csi.storage.k8s.io/fstype': 'xfs' },
    };
    const pvc = {
      apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'dyn-data', namespace: 'default' },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'qosd-test-limited', resources: { requests: { storage: '320Mi' } } },
    };
    const script = [
      CLOCK,
      'dd if=/dev/zero of=/data/r bs=1M count=4 oflag=direct 2>/dev/null',
      's=$(now); dd if=/data/r of=/dev/null bs=4k count=600 iflag=direct 2>/dev/null; e=$(now)',
      'echo READ_IOPS=$(rate 600 $s $e)',
      's=$(now); dd if=/dev/zero of=/data/w bs=1M count=12 oflag=direct 2>/dev/null; e=$(now)',
      'echo WRITE_BPS=$(rate 12582912 $s $e)',
      'echo DONE',
      "while :; do echo SIZE_KB=$(df -k /data | awk 'NR==2 {print $2}'); sleep 1 & wait $!; done",
    ].join('\n');
    const p = {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'dyn', namespace: 'default' },
      spec: {
        hostNetwork: true, restartPolicy: 'Never', terminationGracePeriodSeconds: 2, automountServiceAccountToken: false,
        containers: [{ name: 'c', image: CLUSTER.REALKUBE_IMAGE ?? 'localhost/busybox:local', imagePullPolicy: 'Never', command: ['/bin/sh', '-c', `trap 'exit 0' TERM; ${script}`], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'dyn-data' } }],
      },
    };
    made.push(['storageclass', 'qosd-test-limited'], ['pvc', 'dyn-data'], ['pod', 'dyn']);
    await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [sc, pvc, p] }));

    const { pv, volumeId } = await provisionAsTheSidecarWould('dyn-data');
    await until('dyn-data to bind', 90_000, async () => ((await json<Pvc>(['get', 'pvc', 'dyn-data'])).status.phase === 'Bound' ? true : undefined));
    const vol = (await qosd<{ pool: string; fsType: string; sizeBytes: number; qos: { max: Record<string, number> } }>('GET', `/v1/volumes/${volumeId}`)).body;
    expect(vol).toMatchObject({ fsType: 'xfs', sizeBytes: 320 * MI, qos: { max: { readIops: 200, writeBps: 4 * MI } } });
    expect((await json<{ spec: { nodeAffinity: unknown } }>(['get', 'pv', pv])).spec.nodeAffinity).toMatchObject({ required: { nodeSelectorTerms: [{ matchExpressions: [{ key: TOPOLOGY, values: [NODE] }] }] } });

    const log = await logsUntil('dyn', 'DONE', 180_000);
    const r = figure(log, 'READ_IOPS');
    const w = figure(log, 'WRITE_BPS');
    console.log(`a dynamically provisioned PV, measured in the container: read ${r} IOPS against 200; write ${(w / MI).toFixed(2)} MiB/s against 4 MiB/s`);
    expect(r).toBeGreaterThan(200 * 0.85);
    expect(r).toBeLessThan(200 * 1.15);
    expect(w).toBeGreaterThan(4 * MI * 0.85);
    expect(w).toBeLessThan(4 * MI * 1.15);

    // The resize: the PVC asks for more (the API server checks allowVolumeExpansion); the
    // resizer's call grows the device and the mounted xfs on the node; the pod sees it.
    await kubectl(['patch', 'pvc', 'dyn-data', '--type', 'merge', '-p', JSON.stringify({ spec: { resources: { requests: { storage: '640Mi' } } } })]);
    const grown = await csi.call<{ capacity_bytes: string; node_expansion_required: boolean }>('Controller', 'ControllerExpandVolume', {
      volume_id: volumeId, capacity_range: { required_bytes: String(640 * MI) }, volume_capability: { mount: { fs_type: 'xfs', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } },
    });
    expect(grown).toEqual({ capacity_bytes: String(640 * MI), node_expansion_required: false });
    const kb = await until('the container to see the grown filesystem', 60_000, async () => {
      const sizes = (await kubectl(['logs', 'dyn'])).split('\n').filter((l) => l.startsWith('SIZE_KB=')).map((l) => Number(l.slice(8)));
      const last = sizes[sizes.length - 1];
      return last !== undefined && last > 500 * 1024 ? last : undefined;
    });
    console.log(`after ControllerExpandVolume to 640 MiB, df in the container: ${kb} KiB`);

    // Deleting: the pod, then the PVC; the PV is Released and the sidecar's part is DeleteVolume.
    const uid = (await pod('dyn')).metadata.uid;
    await deletePod('dyn');
    await until('the pod to be unpublished', 90_000, async () => (((await qosd<{ attachments: { podUid: string }[] }>('GET', '/v1/attachments')).body.attachments.some((a) => a.podUid === uid)) ? undefined : true));
    await kubectl(['delete', 'pvc', 'dyn-data', '--wait=false']);
    expect(await csi.code('Controller', 'DeleteVolume', { volume_id: volumeId })).toBe('OK');
    expect((await qosd('GET', `/v1/volumes/${volumeId}`)).status).toBe(404);
    await kubectl(['delete', 'pv', pv, '--wait=false']);
  });
});
