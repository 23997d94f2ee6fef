// The scheduler extender (scheduler/): which nodes can take a pod's guaranteed qosd claims and how
// they rank, from the CSIStorageCapacity objects qosd publishes (maximumVolumeSize 0 while a
// class's guarantee does not fit a node; capacity the free space scaled by the device time left).
// The API server here is a stand-in holding the objects in memory (the calls the extender makes:
// get a claim, a StorageClass, list capacities by label with `continue`, list nodes); the
// scheduler's side is a plain HTTP client posting ExtenderArgs as kube-scheduler does.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient } from '../../src/kube/client';
import { nodeFit, scoreOf, selects, type PublishedCapacity } from '../../src/scheduler/headroom';
import { nodeLabels, pendingClaims, publishedCapacities, type PodLike } from '../../src/scheduler/cluster';
import { extenderHandler } from '../../src/scheduler/extender-server';
import { EXTENDER_DEFAULTS, checkedExtenderFlags } from '../../src/cli/scheduler-extender';

const GiB = 1024 ** 3;
const on = (node: string) => ({ matchLabels: { 'topology.qosd.io/node': node } });
const labels = (node: string) => ({ name: node, labels: { 'topology.qosd.io/node': node, 'kubernetes.io/hostname': node } });

describe('placement by headroom (scheduler/headroom.ts)', () => {
  const published: PublishedCapacity[] = [
    { storageClassName: 'db', nodeTopology: on('a'), capacity: 20 * GiB, maximumVolumeSize: 100 * GiB }, // 20% of the budget left
    { storageClassName: 'db', nodeTopology: on('b'), capacity: 70 * GiB, maximumVolumeSize: 100 * GiB },
    { storageClassName: 'db', nodeTopology: on('c'), capacity: 0, maximumVolumeSize: 0 }, // the guarantee does not fit
    { storageClassName: 'bulk', nodeTopology: on('a'), capacity: 100 * GiB, maximumVolumeSize: 100 * GiB },
    { storageClassName: 'bulk', nodeTopology: on('b'), capacity: 5 * GiB, maximumVolumeSize: 5 * GiB },
  ];
  const db = { name: 'ns/data-db-0', storageClass: 'db', bytes: 10 * GiB };

  it('a node fits while its largest volume holds the claim; its headroom is capacity over that; the IO budget is named when it is the cause', () => {
    expect(nodeFit([db], published, labels('a'))).toEqual({ fits: true, headroom: 0.2 });
    expect(nodeFit([db], published, labels('b'))).toEqual({ fits: true, headroom: 0.7 });
    const c = nodeFit([db], published, labels('c'));
    expect(c.fits).toBe(false);
    expect(!c.fits && c.reason).toContain("IO budget cannot take the guarantee of StorageClass db");
    const d = nodeFit([db], published, labels('d'));
    expect(!d.fits && d.reason).toContain('no capacity published for StorageClass db');
    const big = nodeFit([{ ...db, bytes: 200 * GiB }], published, labels('b'));
    expect(!big.fits && big.reason).toContain(`asks ${200 * GiB} bytes`);
  });

  it('a pod is as good on a node as its tightest claim; a class without a guarantee ranks every node alike', () => {
    const log = { name: 'ns/log', storageClass: 'bulk', bytes: 4 * GiB };
    expect(nodeFit([db, log], published, labels('b'))).toEqual({ fits: true, headroom: 0.7 });
    expect(nodeFit([log], published, labels('a'))).toEqual({ fits: true, headroom: 1 });
    expect(nodeFit([log], published, labels('b'))).toEqual({ fits: true, headroom: 1 });
    expect([scoreOf(nodeFit([db], published, labels('a'))), scoreOf(nodeFit([db], published, labels('b'))), scoreOf(nodeFit([db], published, labels('c')))]).toEqual([2, 7, 0]);
  });

  it('reads node selectors as the API does: matchLabels and the four operators; an unknown operator selects nothing', () => {
    const l = { zone: 'z1', disk: 'nvme' };
    expect(selects(undefined, l)).toBe(true);
    expect(selects({ matchLabels: { zone: 'z1' } }, l)).toBe(true);
    expect(selects({ matchLabels: { zone: 'z2' } }, l)).toBe(false);
    expect(selects({ matchExpressions: [{ key: 'zone', operator: 'In', values: ['z1', 'z2'] }] }, l)).toBe(true);
    expect(selects({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['z1'] }] }, l)).toBe(false);
    expect(selects({ matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] }, l)).toBe(true);
    expect(selects({ matchExpressions: [{ key: 'disk', operator: 'Exists' }] }, l)).toBe(true);
    expect(selects({ matchExpressions: [{ key: 'disk', operator: 'Gt', values: ['1'] }] }, l)).toBe(false);
  });
});

describe('the extender over HTTP, reading a stand-in API server', () => {
  const claims: Record<string, unknown> = {
    'data-db-0': { metadata: { name: 'data-db-0' }, spec: { storageClassName: 'db', resources: { requests: { storage: '10Gi' } } } },
    'data-db-1': { metadata: { name: 'data-db-1' }, spec: { storageClassName: 'db', volumeName: 'pv-1', resources: { requests: { storage: '10Gi' } } } },
    scratch: { metadata: { name: 'scratch' }, spec: { storageClassName: 'other', resources: { requests: { storage: '1Gi' } } } },
  };
  const classes: Record<string, unknown> = { db: { provisioner: 'nvme.qosd.io' }, other: { provisioner: 'other.csi' } };
  const capacity = (node: string, cap: string, max: string) => ({ storageClassName: 'db', nodeTopology: on(node), capacity: cap, maximumVolumeSize: max });
  const pages = [
    { metadata: { continue: 'p2' }, items: [capacity('a', '20Gi', '100Gi'), capacity('b', '70Gi', '100Gi')] },
    { metadata: {}, items: [capacity('c', '0', '0')] },
  ];
  const calls: string[] = [];
  let apiDown = false;
  const api = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    calls.push(`${url.pathname}${url.searchParams.has('labelSelector') ? `?${url.searchParams.get('labelSelector')}` : ''}`);
    const send = (code: number, body: unknown) => res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    const missing = () => send(404, { kind: 'Status', reason: 'NotFound', message: 'not found' });
    if (apiDown) return send(503, { kind: 'Status', reason: 'ServiceUnavailable', message: 'etcd is away' });
    let m;
    if ((m = /^\/api\/v1\/namespaces\/ns\/persistentvolumeclaims\/(.+)$/.exec(url.pathname))) return claims[m[1]!] ? send(200, claims[m[1]!]) : missing();
    if ((m = /^\/apis\/storage\.k8s\.io\/v1\/storageclasses\/(.+)$/.exec(url.pathname))) return classes[m[1]!] ? send(200, classes[m[1]!]) : missing();
    if (url.pathname === '/apis/storage.k8s.io/v1/csistoragecapacities') return send(200, pages[url.searchParams.get('continue') === 'p2' ? 1 : 0]);
    if (url.pathname === '/api/v1/nodes') return send(200, { items: ['a', 'b', 'c'].map((n) => ({ metadata: { name: n, labels: labels(n).labels } })) });
    return missing();
  });
  let client: KubeClient;
  let extender: http.Server;
  let base: string;

  beforeAll(async () => {
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    client = new KubeClient({ server: new URL(`http://127.0.0.1:${(api.address() as AddressInfo).port}`), insecureSkipTlsVerify: false, source: 'test' });
    const cluster = {
      pendingClaims: (pod: PodLike) => pendingClaims(client, pod),
      publishedCapacities: () => publishedCapacities(client),
      nodeLabels: (names: readonly string[]) => nodeLabels(client, names),
    };
    extender = http.createServer(extenderHandler(cluster, pino({ level: 'silent' })));
    await new Promise<void>((r) => extender.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(extender.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    client.close();
    await new Promise((r) => extender.close(r));
    await new Promise((r) => api.close(r));
  });

  const pod = (...volumes: object[]): PodLike => ({ metadata: { name: 'db-0', namespace: 'ns' }, spec: { volumes: volumes as never } });
  const post = async (path: string, body: unknown) => {
    const r = await fetch(`${base}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };

  it('filter: the node without IO budget for the class is failed with the reason; the others pass (names in, names out)', async () => {
    const r = await post('/filter', { Pod: pod({ name: 'data', persistentVolumeClaim: { claimName: 'data-db-0' } }), NodeNames: ['a', 'b', 'c'] });
    expect(r.status).toBe(200);
    expect(r.body.NodeNames).toEqual(['a', 'b']);
    expect(Object.keys(r.body.FailedAndUnresolvableNodes as object)).toEqual(['c']);
    expect((r.body.FailedAndUnresolvableNodes as Record<string, string>).c).toContain('IO budget');
    expect(calls).toContain('/apis/storage.k8s.io/v1/csistoragecapacities?csi.storage.k8s.io/drivername=nvme.qosd.io');
  });

  it('filter with whole node objects answers with the node list; prioritize scores by headroom', async () => {
    const nodes = { items: ['a', 'b', 'c'].map((n) => ({ metadata: { name: n, labels: labels(n).labels } })) };
    const f = await post('/filter', { Pod: pod({ name: 'data', persistentVolumeClaim: { claimName: 'data-db-0' } }), Nodes: nodes });
    expect((f.body.Nodes as { items: { metadata: { name: string } }[] }).items.map((n) => n.metadata.name)).toEqual(['a', 'b']);
    const p = await post('/prioritize', { Pod: pod({ name: 'data', persistentVolumeClaim: { claimName: 'data-db-0' } }), NodeNames: ['a', 'b', 'c'] });
    expect(p.body).toEqual([{ Host: 'a', Score: 2 }, { Host: 'b', Score: 7 }, { Host: 'c', Score: 0 }]);
  });

  it("a pod without pending qosd claims (bound, another driver's, none) passes everywhere with one score", async () => {
    for (const volumes of [[{ name: 'data', persistentVolumeClaim: { claimName: 'data-db-1' } }], [{ name: 's', persistentVolumeClaim: { claimName: 'scratch' } }], [], [{ name: 'gone', persistentVolumeClaim: { claimName: 'no-such' } }]]) {
      const f = await post('/filter', { Pod: pod(...volumes), NodeNames: ['a', 'b', 'c'] });
      expect(f.body).toEqual({ NodeNames: ['a', 'b', 'c'], FailedNodes: {}, FailedAndUnresolvableNodes: {}, Error: '' });
      expect((await post('/prioritize', { Pod: pod(...volumes), NodeNames: ['a', 'c'] })).body).toEqual([{ Host: 'a', Score: 10 }, { Host: 'c', Score: 10 }]);
    }
  });

  it('bad calls get a clear error and read nothing; an API server away is an error the scheduler retries on', async () => {
    const before = calls.length;
    expect(await post('/filter', 'not json')).toMatchObject({ status: 400, body: { error: expect.stringContaining('body: not JSON') } });
    expect(await post('/filter', { NodeNames: ['a'] })).toMatchObject({ status: 400, body: { error: 'pod: missing, or without metadata.name' } });
    expect((await post('/bind', { Pod: pod() })).status).toBe(404);
    expect((await fetch(`${base}/filter`)).status).toBe(405);
    expect(calls.length).toBe(before);
    apiDown = true;
    try {
      const f = await post('/filter', { Pod: pod({ name: 'data', persistentVolumeClaim: { claimName: 'data-db-0' } }), NodeNames: ['a'] });
      expect(f.body.Error).toContain('503');
    } finally {
      apiDown = false;
    }
  });
});

describe('qosd scheduler-extender flags', () => {
  it('takes an address and port, and names the flag it refuses', () => {
    expect(checkedExtenderFlags({ ...EXTENDER_DEFAULTS })).toMatchObject({ host: '127.0.0.1', port: 8998 });
    expect(checkedExtenderFlags({ ...EXTENDER_DEFAULTS, listen: '[::1]:9000' })).toMatchObject({ host: '::1', port: 9000 });
    expect(() => checkedExtenderFlags({ ...EXTENDER_DEFAULTS, listen: '8998' })).toThrow(/^--listen: "8998" must be an address and port/);
    expect(() => checkedExtenderFlags({ ...EXTENDER_DEFAULTS, listen: '127.0.0.1:70000' })).toThrow(/^--listen/);
    expect(() => checkedExtenderFlags({ ...EXTENDER_DEFAULTS, logLevel: 'loud' })).toThrow(/^--log-level/);
  });
});
