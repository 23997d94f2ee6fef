// Dynamic provisioning through qosd's CSI Controller service under the real API server, scheduler,
// PV controller and kubelet 1.20. The test cluster has no external-provisioner or external-resizer
// image, so this file does their part exactly as they do it, and nothing more: it waits for the
// scheduler's volume.kubernetes.io/selected-node on the PVC (WaitForFirstConsumer), calls
// CreateVolume on that node's CSI socket with the StorageClass parameters and the node's topology,
// creates the PV from the answer (claimRef, node affinity). external-resizer's part (a PVC grown,
// a VolumeAttributesClass changed, which 1.20 does not have) is its call on the central
// controller, `qosd csi-controller`, run here beside the API server as its Deployment would run
// it: that carries the call to this node's qosd through a VolumeRequest in the real API server.
// Everything else is Kubernetes' own: binding, scheduling, publishing, mounting, and the
// container's IO, measured.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER, LOGS, QOSD, RUN, deletePod, figure, kubectl, logsUntil, pod, qosd, until } from './cluster';
import { csiClient } from '../helpers/csi';

const NODE = CLUSTER.REALKUBE_NODE_NAME ?? 'localhost';
const DRIVER = 'nvme.qosd.io';
const TOPOLOGY = 'topology.qosd.io/node';
const CLOCK = "now() { cut -d' ' -f1 /proc/uptime; }; rate() { awk -v n=$1 -v s=$2 -v e=$3 'BEGIN { printf \"%d\", n / (e - s) }'; }";
const made: [kind: string, name: string][] = [];
const csi = csiClient(path.join(QOSD, 'csi.sock'));
const CENTRAL_SOCKET = path.join(QOSD, 'central', 'csi.sock');
const central = csiClient(CENTRAL_SOCKET, 15_000);
let centralProcess: ChildProcess | undefined;

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

beforeAll(async () => {
  // The CSIDriver (attachRequired: false): without it the attach/detach controller waits for a
  // VolumeAttachment no one makes (csi.kube.ts applies it too; each file stands on its own).
  await kubectl(['apply', '-f', path.join(__dirname, '..', '..', 'deploy', 'kubernetes', 'csi-driver.yaml')]);
  // The central controller as its Deployment runs it, with this cluster's kubeconfig for the pod's service account.
  const out = fs.openSync(path.join(LOGS, 'csi-controller.log'), 'a');
  centralProcess = spawn(process.execPath, [path.join(__dirname, '..', '..', 'dist', 'cli', 'qosd.js'), 'csi-controller', '--socket', CENTRAL_SOCKET, '--kubeconfig', path.join(RUN, 'kubeconfig')], { stdio: ['ignore', out, out] });
  await until('qosd csi-controller to serve', 30_000, async () => (fs.existsSync(CENTRAL_SOCKET) ? true : undefined));
  await until("this node's qosd to watch VolumeRequests", 30_000, async () => ((await qosd<{ csi: { volumeRequests: { watching: boolean } | null } }>('GET', '/v1/status')).body.csi.volumeRequests?.watching ? true : undefined));
});

afterAll(async () => {
  for (const [kind, name] of made.reverse()) await kubectl(['delete', kind, name, '--ignore-not-found', '--wait=false']).catch(() => undefined);
  csi.close();
  central.close();
  centralProcess?.kill('SIGTERM');
});

const volumeRequests = async (): Promise<unknown[]> => (await json<{ items: unknown[] }>(['get', 'volumerequests'])).items;
const carriedOut = (): number => fs.readFileSync(path.join(LOGS, 'qosd.log'), 'utf8').split('volume request carried out').length - 1;
/** The READ_LOOP figures the container printed after the first `skip` lines of them. */
const loopReads = async (skip: number): Promise<number[]> => (await kubectl(['logs', 'dyn'])).split('\n').filter((l) => l.startsWith('READ_LOOP=')).map((l) => Number(l.slice(10))).slice(skip);

describe('a PVC provisioned through CreateVolume (the sidecar part done by the test)', () => {
  it("gets a volume of the StorageClass's QoS on the node the scheduler picked; the container's dd is held to it (±15%); a VolumeAttributesClass change and a resize through the central controller reach the running pod", async () => {
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
      // then, for the changes made while it runs: the read rate and the filesystem's size, over and over
      "while :; do s=$(now); dd if=/data/r of=/dev/null bs=4k count=300 iflag=direct 2>/dev/null; e=$(now); echo READ_LOOP=$(rate 300 $s $e); echo SIZE_KB=$(df -k /data | awk 'NR==2 {print $2}'); done",
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

    // A VolumeAttributesClass change as external-resizer makes it: ControllerModifyVolume on the
    // central controller, carried to this node; the running container's reads follow at once.
    const before = (await loopReads(0)).length;
    expect(await central.call('Controller', 'ControllerModifyVolume', { volume_id: volumeId, mutable_parameters: { maxReadIops: '100' } })).toEqual({});
    expect((await qosd<{ qos: { max: Record<string, number> } }>('GET', `/v1/volumes/${volumeId}`)).body.qos.max).toMatchObject({ readIops: 100, writeBps: 4 * MI });
    // the first figure after the change may have begun before it: the two after that count
    const after = await until('two reads measured after the change', 60_000, async () => {
      const f = await loopReads(before + 1);
      return f.length >= 2 ? f.slice(0, 2) : undefined;
    });
    console.log(`ControllerModifyVolume maxReadIops 200 → 100 through qosd csi-controller: the running container reads at ${after.join(', ')} IOPS`);
    for (const r2 of after) {
      expect(r2).toBeGreaterThan(100 * 0.85);
      expect(r2).toBeLessThan(100 * 1.15);
    }
    // A change the pool cannot admit: the node's refusal comes back with its reason, nothing changes.
    const refused = await central.answer('Controller', 'ControllerModifyVolume', { volume_id: volumeId, mutable_parameters: { minWriteIops: '50000' } });
    expect(refused.code).toBe('RESOURCE_EXHAUSTED');
    expect(refused.details).toContain('this guarantee needs 250 percent of the device (minWriteIops 50000 = 250 percent)');
    expect((await qosd<{ qos: { min: Record<string, number>; max: Record<string, number> } }>('GET', `/v1/volumes/${volumeId}`)).body.qos).toMatchObject({ min: {}, max: { readIops: 100 } });
    // Bad input is refused by the central controller itself, naming the key; nothing reaches the node.
    const done = carriedOut();
    const bad = await central.answer('Controller', 'ControllerModifyVolume', { volume_id: volumeId, mutable_parameters: { maxReadIops: 'lots' } });
    expect(bad.code).toBe('INVALID_ARGUMENT');
    expect(bad.details).toContain('mutable_parameters["maxReadIops"]');
    expect((await central.answer('Controller', 'ControllerModifyVolume', { volume_id: volumeId, mutable_parameters: { size: '1Gi' } })).code).toBe('INVALID_ARGUMENT');
    expect((await central.answer('Controller', 'ControllerModifyVolume', { volume_id: 'pvc-no-such-volume', mutable_parameters: { maxReadIops: '100' } })).code).toBe('NOT_FOUND');
    expect(carriedOut()).toBe(done);
    expect(await volumeRequests()).toEqual([]); // each answered request was deleted

    // The resize: the PVC asks for more (the API server checks allowVolumeExpansion); the
    // resizer's call reaches the node, which grows the device and the mounted xfs; the pod sees it.
    await kubectl(['patch', 'pvc', 'dyn-data', '--type', 'merge', '-p', JSON.stringify({ spec: { resources: { requests: { storage: '640Mi' } } } })]);
    const expand = { volume_id: volumeId, capacity_range: { required_bytes: String(640 * MI) }, volume_capability: { mount: { fs_type: 'xfs', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } } };
    const grown = await central.call<{ capacity_bytes: string; node_expansion_required: boolean }>('Controller', 'ControllerExpandVolume', expand);
    expect(grown).toEqual({ capacity_bytes: String(640 * MI), node_expansion_required: false });
    // the sidecar's retry of the same call: the same answer, nothing grows twice
    expect(await central.call('Controller', 'ControllerExpandVolume', expand)).toEqual(grown);
    const kb = await until('the container to see the grown filesystem', 60_000, async () => {
      const sizes = (await kubectl(['logs', 'dyn'])).split('\n').filter((l) => l.startsWith('SIZE_KB=')).map((l) => Number(l.slice(8)));
      const last = sizes[sizes.length - 1];
      return last !== undefined && last > 500 * 1024 ? last : undefined;
    });
    console.log(`after ControllerExpandVolume to 640 MiB through qosd csi-controller, df in the container: ${kb} KiB`);

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
