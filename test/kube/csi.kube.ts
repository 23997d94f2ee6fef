// qosd's CSI node plugin under a real kubelet (1.37), with the API server, scheduler and PV binder:
// kubelet finds the driver through qosd's own registration socket (no node-driver-registrar),
// publishes pre-provisioned PVs (filesystem and raw block) into busybox pods whose direct IO is
// measured, asks for the volume's stats, and unpublishes when the pod goes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import * as os from 'node:os';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { qosChange } from '../../src/csi/controller-requests';
import { sectionCommands } from '../helpers/readme';
import { BIN, CLUSTER, LOGS, QOSD, RUN, deletePod, figure, kubectl, logsUntil, pod, podMounts, qosd, qosdServes, until } from './cluster';

const NODE = CLUSTER.REALKUBE_NODE_NAME ?? 'localhost';
const DRIVER = 'nvme.qosd.io';
const TOPOLOGY = 'topology.qosd.io/node';
const REPO = path.resolve(__dirname, '..', '..');
const CLOCK = "now() { cut -d' ' -f1 /proc/uptime; }; rate() { awk -v n=$1 -v s=$2 -v e=$3 'BEGIN { printf \"%d\", n / (e - s) }'; }";
const IDLE = 'while :; do sleep 1 & wait $!; done';
const made: [kind: string, name: string][] = [];

const json = async <T>(args: string[]): Promise<T> => JSON.parse(await kubectl([...args, '-o', 'json'])) as T;

/** A qosd volume, a PV for it (csi, node affinity to this node) and a PVC bound to that PV. */
async function preProvisioned(name: string, body: Record<string, unknown>, mode: 'Filesystem' | 'Block'): Promise<{ deviceNumber: string }> {
  const v = await qosd<{ deviceNumber: string }>('POST', '/v1/volumes', { name, size: '64Mi', ...body });
  expect(v.status, JSON.stringify(v.body)).toBe(201);
  const pv = {
    apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: `pv-${name}` },
    spec: {
      capacity: { storage: '64Mi' }, accessModes: ['ReadWriteOnce'], volumeMode: mode, persistentVolumeReclaimPolicy: 'Retain', storageClassName: '',
      csi: { driver: DRIVER, volumeHandle: name, ...(mode === 'Filesystem' ? { fsType: 'ext4' } : {}) },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: TOPOLOGY, operator: 'In', values: [NODE] }] }] } },
    },
  };
  const pvc = {
    apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: `pvc-${name}`, namespace: 'default' },
    spec: { accessModes: ['ReadWriteOnce'], volumeMode: mode, storageClassName: '', volumeName: `pv-${name}`, resources: { requests: { storage: '64Mi' } } },
  };
  made.push(['pvc', `pvc-${name}`], ['pv', `pv-${name}`]);
  await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [pv, pvc] }));
  await until(`pvc-${name} to bind`, 60_000, async () => ((await json<{ status: { phase: string } }>(['get', 'pvc', `pvc-${name}`])).status.phase === 'Bound' ? true : undefined));
  return v.body;
}

/** A pod with the PVC at /data (a filesystem) or /dev/xvda (a block device). */
async function podWith(name: string, claim: string, mode: 'Filesystem' | 'Block', script: string): Promise<string> {
  made.push(['pod', name]);
  const container: Record<string, unknown> = {
    name: 'c', image: CLUSTER.REALKUBE_IMAGE ?? 'localhost/busybox:local', imagePullPolicy: 'Never',
    command: ['/bin/sh', '-c', `trap 'exit 0' TERM; ${script}`],
    ...(mode === 'Filesystem' ? { volumeMounts: [{ name: 'data', mountPath: '/data' }] } : { volumeDevices: [{ name: 'data', devicePath: '/dev/xvda' }] }),
  };
  const manifest = {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' },
    spec: {
      hostNetwork: true, restartPolicy: 'Never', terminationGracePeriodSeconds: 2, automountServiceAccountToken: false,
      containers: [container], volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim } }],
    },
  };
  await kubectl(['apply', '-f', '-'], JSON.stringify(manifest));
  return name;
}

interface Attachment { volume: string; target: string; podUid: string | null; source: string; kind: string }
const attachments = async () => (await qosd<{ attachments: Attachment[] }>('GET', '/v1/attachments')).body.attachments;

beforeAll(async () => {
  await kubectl(['apply', '-f', path.join(REPO, 'deploy', 'kubernetes', 'csi-driver.yaml')]);
});

afterAll(async () => {
  for (const [kind, name] of made.reverse()) await kubectl(['delete', kind, name, '--ignore-not-found', '--wait=false']).catch(() => undefined);
});

describe('the deploy manifests', () => {
  it('are accepted by the API server (server-side dry run); the StorageClasses, VolumeAttributesClasses, the VolumeRequest resource and the node access apply for real', async () => {
    const dir = path.join(REPO, 'deploy', 'kubernetes');
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.yaml'))) {
      const out = await kubectl(['apply', '--dry-run=server', '-f', path.join(dir, f)]);
      expect(out, f).toMatch(/(created|configured|unchanged) \(server dry run\)/);
    }
    for (const f of ['storage-classes.yaml', 'volume-attributes-classes.yaml', 'volume-requests.yaml', 'node-access.yaml']) await kubectl(['apply', '-f', path.join(dir, f)]);
    const sc = await json<{ provisioner: string; volumeBindingMode: string; allowVolumeExpansion: boolean; parameters: Record<string, string> }>(['get', 'storageclass', 'qosd-high']);
    expect(sc).toMatchObject({ provisioner: DRIVER, volumeBindingMode: 'WaitForFirstConsumer', allowVolumeExpansion: true, parameters: { class: 'high' } });
  });

  it("the README's kubectl commands, run as written from the checkout, are accepted by the API server (server-side dry run)", async () => {
    const commands = sectionCommands('Use it from Kubernetes');
    expect(commands.length).toBeGreaterThan(0);
    for (const c of commands) {
      const words = c.split(/\s+/);
      expect(words.slice(0, 2), c).toEqual(['kubectl', 'apply']);
      const out = await kubectl([...words.slice(1), '--dry-run=server']); // relative to the checkout, where run.sh starts the tests
      expect(out, c).toMatch(/(created|configured|unchanged) \(server dry run\)/);
    }
  });

  it("kube-scheduler (this release's) takes the configuration that enables qosd's extender, and refuses it spoilt", async () => {
    const config = parse(fs.readFileSync(path.join(REPO, 'deploy', 'kube-scheduler', 'scheduler-config.yaml'), 'utf8')) as { clientConnection: { kubeconfig: string }; extenders: Record<string, unknown>[] };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-scheduler-config-'));
    // The cluster's kubeconfig for the control plane's /etc/kubernetes/scheduler.conf: the
    // scheduler reads the file before it writes its configuration back and exits (and, but for
    // --secure-port=0, binds the port the cluster's own scheduler holds).
    const check = (c: typeof config) => {
      const file = path.join(dir, 'config.yaml');
      fs.writeFileSync(file, stringify({ ...c, clientConnection: { ...c.clientConnection, kubeconfig: path.join(RUN, 'kubeconfig') } }));
      return new Promise<{ ok: boolean; stderr: string }>((resolve) =>
        execFile(path.join(BIN, 'kube-scheduler'), ['--config', file, '--secure-port=0', '--write-config-to', path.join(dir, 'out.yaml')], { timeout: 60_000 }, (err, _out, stderr) => resolve({ ok: !err, stderr })),
      );
    };
    try {
      const good = await check(config);
      expect(good.ok, good.stderr).toBe(true);
      const written = parse(fs.readFileSync(path.join(dir, 'out.yaml'), 'utf8')) as { extenders: Record<string, unknown>[] };
      expect(written.extenders).toEqual([expect.objectContaining({ urlPrefix: 'http://127.0.0.1:8998', filterVerb: 'filter', prioritizeVerb: 'prioritize', nodeCacheCapable: true, ignorable: true })]);
      const spoilt = await check({ ...config, extenders: [{ ...config.extenders[0], weight: 0 }] });
      expect(spoilt.ok).toBe(false);
      expect(spoilt.stderr).toContain('extenders[0].weight');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('VolumeAttributesClasses (storage.k8s.io/v1): each parameters map is what ControllerModifyVolume accepts', async () => {
    const file = path.join(REPO, 'deploy', 'kubernetes', 'volume-attributes-classes.yaml');
    const classes = parseAllDocuments(fs.readFileSync(file, 'utf8')).map((d) => d.toJS() as { kind: string; metadata: { name: string }; driverName: string; parameters: Record<string, string> });
    expect(classes.length).toBeGreaterThanOrEqual(3);
    for (const c of classes) {
      expect(c).toMatchObject({ kind: 'VolumeAttributesClass', driverName: DRIVER });
      expect(() => qosChange(c.parameters)).not.toThrow();
      expect((await json<{ driverName: string }>(['get', 'volumeattributesclass', c.metadata.name])).driverName).toBe(DRIVER);
    }
  });

  it("gives each node credentials of its own: a node's token writes the status of its own VolumeRequests and is refused another node's", async () => {
    // Two nodes' service accounts, as the README makes them, and a request for each node.
    for (const n of ['node-a', 'node-b']) await kubectl(['-n', 'qosd-nodes', 'create', 'serviceaccount', n]).catch(() => undefined);
    const token = async (n: string) => (await kubectl(['-n', 'qosd-nodes', 'create', 'token', n, '--duration=1h'])).trim();
    const request = (name: string, node: string) => ({
      apiVersion: 'qosd.io/v1alpha1', kind: 'VolumeRequest', metadata: { name, labels: { 'qosd.io/node': node } },
      spec: { node, volumeId: 'pvc-x', operation: 'Modify', mutableParameters: { maxReadIops: '100' } },
    });
    made.push(['volumerequest', 'vr-for-node-a'], ['volumerequest', 'vr-for-node-b']);
    await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [request('vr-for-node-a', 'node-a'), request('vr-for-node-b', 'node-b')] }));
    const status = JSON.stringify({ status: { phase: 'Succeeded', code: 'OK', message: 'done', finishedAt: new Date().toISOString() } });
    const patch = async (vr: string, as: string) => kubectl(['--token', await token(as), 'patch', 'volumerequest', vr, '--subresource=status', '--type=merge', '-p', status]);
    const refused = await patch('vr-for-node-b', 'node-a').then((out) => `patched: ${out}`, (err: Error) => err.message.replace(/--token \S+/, '--token …'));
    console.log(`node-a writing node-b's request: ${refused}`);
    expect(refused).toContain('the qosd of node node-a may write the status of its own VolumeRequests only, not of one for node node-b');
    expect(await patch('vr-for-node-a', 'node-a')).toMatch(/patched/);
    // Nor may a node write requests themselves: RBAC gives it their status alone.
    await expect(kubectl(['--token', await token('node-a'), 'delete', 'volumerequest', 'vr-for-node-a'])).rejects.toThrow(/forbidden/i);
    expect((await json<{ status?: { phase: string } }>(['get', 'volumerequest', 'vr-for-node-b'])).status?.phase).toBeUndefined();
  });
});

describe('qosd as a CSI node plugin under a real kubelet', () => {
  it('is registered by kubelet through its own registration socket: CSINode has the driver and topology key, the Node the label', async () => {
    const csiNode = await until('CSINode to list nvme.qosd.io', 90_000, async () => {
      const n = await json<{ spec: { drivers: { name: string; nodeID: string; topologyKeys: string[] }[] | null } }>(['get', 'csinode', NODE]).catch(() => undefined);
      return n?.spec.drivers?.find((d) => d.name === DRIVER);
    });
    expect(csiNode).toMatchObject({ nodeID: NODE, topologyKeys: [TOPOLOGY] });
    const node = await json<{ metadata: { labels: Record<string, string>; annotations: Record<string, string> } }>(['get', 'node', NODE]);
    expect(node.metadata.labels[TOPOLOGY]).toBe(NODE);
    expect(JSON.parse(node.metadata.annotations['csi.volume.kubernetes.io/nodeid']!)).toMatchObject({ [DRIVER]: NODE });
    const log = fs.readFileSync(path.join(LOGS, 'qosd.log'), 'utf8');
    expect(log).toContain('kubelet registered the CSI driver');
  });

  it("publishes a pre-provisioned filesystem PV: the container's direct IO is held to the volume's limits (±15%)", async () => {
    const readIops = 200;
    const writeBps = 4 * 1024 * 1024;
    await preProvisioned('csi-db', { qos: { max: { readIops, writeBps } } }, 'Filesystem');
    const name = await podWith('csi-db', 'pvc-csi-db', 'Filesystem', [
      CLOCK,
      'dd if=/dev/zero of=/data/r bs=1M count=4 oflag=direct 2>/dev/null',
      's=$(now); dd if=/data/r of=/dev/null bs=4k count=600 iflag=direct 2>/dev/null; e=$(now)',
      'echo READ_IOPS=$(rate 600 $s $e)',
      's=$(now); dd if=/dev/zero of=/data/w bs=1M count=12 oflag=direct 2>/dev/null; e=$(now)',
      'echo WRITE_BPS=$(rate 12582912 $s $e)',
      'echo DONE', IDLE,
    ].join('\n'));
    const log = await logsUntil(name, 'DONE', 180_000);
    const r = figure(log, 'READ_IOPS');
    const w = figure(log, 'WRITE_BPS');
    console.log(`CSI filesystem PV, measured in the container: read ${r} IOPS against ${readIops}; write ${(w / 1048576).toFixed(2)} MiB/s against 4 MiB/s`);
    expect(r).toBeGreaterThan(readIops * 0.85);
    expect(r).toBeLessThan(readIops * 1.15);
    expect(w).toBeGreaterThan(writeBps * 0.85);
    expect(w).toBeLessThan(writeBps * 1.15);
    const uid = (await pod(name)).metadata.uid;
    const att = (await attachments()).find((a) => a.podUid === uid);
    expect(att).toMatchObject({ volume: 'csi-db', source: 'csi', kind: 'mount' });
    expect(att!.target).toContain(`/pods/${uid}/volumes/kubernetes.io~csi/pv-csi-db/mount`);
  });

  it("shows the volume's use in kubelet's own stats: kubelet called NodeGetVolumeStats", async () => {
    const uid = (await pod('csi-db')).metadata.uid;
    // /stats/summary on kubelet's read-only port: the pod's volume "data" with the PVC reference.
    const used = await until('kubelet volume stats for pvc-csi-db', 120_000, async () => {
      const res = await fetch(`${CLUSTER.KUBELET_READONLY}/stats/summary`);
      const summary = (await res.json()) as { pods: { podRef: { uid: string }; volume?: { name: string; usedBytes?: number; capacityBytes?: number; pvcRef?: { name: string } }[] }[] };
      const v = summary.pods.find((p) => p.podRef.uid === uid)?.volume?.find((x) => x.pvcRef?.name === 'pvc-csi-db');
      // kubelet's figure is its last NodeGetVolumeStats: wait until one was taken after the writes.
      return v?.usedBytes !== undefined && v.usedBytes >= 16 * 1024 * 1024 ? v : undefined;
    });
    console.log(`kubelet /stats/summary for pvc-csi-db: used ${used.usedBytes} of ${used.capacityBytes} bytes`);
    expect(used.usedBytes!).toBeGreaterThanOrEqual(16 * 1024 * 1024); // the 4 MiB and 12 MiB files
    expect(used.capacityBytes!).toBeGreaterThan(40 * 1024 * 1024);
    const line = await until('kubelet_volume_stats_used_bytes for pvc-csi-db', 60_000, async () => {
      const metrics = await (await fetch(`${CLUSTER.KUBELET_READONLY}/metrics`)).text();
      return metrics.split('\n').find((l) => l.startsWith('kubelet_volume_stats_used_bytes{') && l.includes('persistentvolumeclaim="pvc-csi-db"'));
    });
    expect(Number(line.split(' ').pop())).toBeGreaterThanOrEqual(16 * 1024 * 1024);
  });

  it('unpublishes when the pod is deleted: nothing mounted, no attachment, the volume kept', async () => {
    const uid = (await pod('csi-db')).metadata.uid;
    await deletePod('csi-db');
    await until('the attachment of the deleted pod to go', 90_000, async () => ((await attachments()).some((a) => a.podUid === uid) ? undefined : true));
    expect(podMounts().filter((m) => m.includes(uid))).toEqual([]);
    expect((await qosd('GET', '/v1/volumes/csi-db')).status).toBe(200);
    const events = (await qosd<{ events: { kind: string; source: string }[] }>('GET', '/v1/volumes/csi-db/events')).body.events;
    expect(events.filter((e) => e.kind === 'detached').map((e) => e.source)).toEqual(['csi']);
  });

  it('gives a raw-block PV to the container as a device, throttled (±15%)', async () => {
    const readIops = 250;
    const vol = await preProvisioned('csi-raw', { qos: { max: { readIops } } }, 'Block');
    const name = await podWith('csi-raw', 'pvc-csi-raw', 'Block', [
      CLOCK,
      'ls -l /dev/xvda; [ -b /dev/xvda ] && echo IS_BLOCK=1',
      's=$(now); dd if=/dev/xvda of=/dev/null bs=4k count=750 iflag=direct 2>/dev/null; e=$(now)',
      'echo READ_IOPS=$(rate 750 $s $e)',
      'echo DONE', IDLE,
    ].join('\n'));
    const log = await logsUntil(name, 'DONE', 180_000);
    expect(figure(log, 'IS_BLOCK')).toBe(1);
    const r = figure(log, 'READ_IOPS');
    console.log(`CSI raw-block PV, measured in the container: read ${r} IOPS against ${readIops} (device ${vol.deviceNumber})`);
    expect(r).toBeGreaterThan(readIops * 0.85);
    expect(r).toBeLessThan(readIops * 1.15);
    const uid = (await pod(name)).metadata.uid;
    expect((await attachments()).find((a) => a.podUid === uid)).toMatchObject({ volume: 'csi-raw', source: 'csi', kind: 'block' });
    await deletePod(name);
    await until('the block attachment to go', 90_000, async () => ((await attachments()).some((a) => a.podUid === uid) ? undefined : true));
  });

  it('survives qosd being killed inside NodePublishVolume: kubelet retries, one mount, nothing leaked', async () => {
    // Mounted but not yet recorded as attached: the step where a careless retry mounts twice. Every
    // step of publish and unpublish is killed in test/csi/recovery.test.ts; this is kubelet's retry.
    for (const step of ['attach:mounted']) {
      const vname = `csi-crash-${step.split(':')[1]}`;
      await preProvisioned(vname, { qos: { max: { readIops: 300 } } }, 'Filesystem');
      await restartQosd({ QOSD_CRASH_AT: step });
      const name = await podWith(vname, `pvc-${vname}`, 'Filesystem', `echo DONE; ${IDLE}`);
      // qosd kills itself at the step; the pod waits, and kubelet's retry reaches a clean qosd.
      await until(`qosd to die at ${step}`, 120_000, async () => (qosdAlive() ? undefined : true));
      await restartQosd({});
      await logsUntil(name, 'DONE', 180_000);
      const uid = (await pod(name)).metadata.uid;
      const mine = podMounts().filter((m) => m.includes(uid) && m.includes('kubernetes.io~csi'));
      expect(mine, `${step}: ${mine.join('\n')}`).toHaveLength(1);
      const atts = (await attachments()).filter((a) => a.volume === vname);
      expect(atts).toHaveLength(1);
      await deletePod(name);
      await until(`${vname} to be unpublished`, 90_000, async () => ((await attachments()).some((a) => a.volume === vname) ? undefined : true));
      expect(podMounts().filter((m) => m.includes(uid))).toEqual([]);
    }
  });
});

function qosdAlive(): boolean {
  const pid = Number(fs.readFileSync(path.join(RUN, 'qosd.pid'), 'utf8').trim());
  return fs.existsSync(`/proc/${pid}`);
}

/** Restarts qosd (SIGTERM if it runs) with extra environment, waiting until it serves. */
async function restartQosd(env: Record<string, string>): Promise<void> {
  const { spawn } = await import('node:child_process');
  const pidFile = path.join(RUN, 'qosd.pid');
  const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  if (fs.existsSync(`/proc/${pid}`)) {
    process.kill(pid, 'SIGTERM');
    await until(`qosd (${pid}) to exit`, 30_000, async () => (fs.existsSync(`/proc/${pid}`) ? undefined : true));
  }
  const log = fs.openSync(path.join(LOGS, 'qosd.log'), 'a');
  const child = spawn(process.execPath, [path.join(REPO, 'dist', 'cli', 'qosd.js'), '--config', path.join(QOSD, 'config.yaml')], { detached: true, stdio: ['ignore', log, log], env: { ...process.env, ...env } });
  child.unref();
  fs.closeSync(log);
  fs.writeFileSync(pidFile, `${child.pid}\n`);
  await until('qosd to serve', 60_000, async () => ((await qosdServes().catch(() => false)) ? true : undefined));
}
