// The central controller's own logic (csi/central.ts): what it refuses before writing anything,
// how it finds a volume's node, and how it answers from the node's outcome, including a node that
// is late. The API server here is a stand-in holding objects in memory (the REST semantics the
// controller relies on: create → 201 or 409, get → 404 when absent, delete); the real API server
// and a real node carry the same calls in test/kube/provision.kube.ts.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { KubeClient } from '../../src/kube/client';
import { CsiCentralController } from '../../src/csi/central';
import { toServiceError } from '../../src/csi/status';
import type { VolumeRequest } from '../../src/csi/volume-request';

const PREFIX = '/apis/qosd.io/v1alpha1/volumerequests';
interface StandIn {
  objects: Map<string, VolumeRequest>;
  calls: string[];
  /** What "the node" does with a new object: an outcome after a delay, or nothing. */
  node: ((r: VolumeRequest) => { after: number; status: VolumeRequest['status'] } | undefined) | undefined;
  crd: boolean;
}
const api: StandIn = { objects: new Map(), calls: [], node: undefined, crd: true };
const pv = (name: string, handle: string, node?: string) => ({
  metadata: { name },
  spec: {
    csi: { driver: 'nvme.qosd.io', volumeHandle: handle },
    ...(node ? { nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'topology.qosd.io/node', operator: 'In', values: [node] }] }] } } } : {}),
  },
});
// two pages, so the lookup follows `continue`
const PAGES = [
  { metadata: { continue: 'p2' }, items: [pv('pv-a', 'pvc-a', 'node-1'), { metadata: { name: 'other' }, spec: { csi: { driver: 'other.csi', volumeHandle: 'pvc-b' } } }] },
  { metadata: {}, items: [pv('pv-b', 'pvc-b', 'node-2'), pv('pv-c', 'pvc-c')] },
];

const server = http.createServer((req, res) => {
  const url = new URL(req.url!, 'http://x');
  api.calls.push(`${req.method} ${url.pathname}`);
  const send = (code: number, body: unknown) => res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
  let text = '';
  req.on('data', (c) => (text += c)).on('end', () => {
    if (url.pathname === '/version') return send(200, { gitVersion: 'v1.20.2' });
    if (url.pathname === '/api/v1/persistentvolumes') return send(200, PAGES[url.searchParams.get('continue') === 'p2' ? 1 : 0]);
    if (!url.pathname.startsWith(PREFIX) || !api.crd) return send(404, { kind: 'Status', reason: 'NotFound', message: 'the server could not find the requested resource' });
    const name = url.pathname.slice(PREFIX.length + 1);
    if (req.method === 'POST') {
      const r = JSON.parse(text) as VolumeRequest;
      if (api.objects.has(r.metadata.name)) return send(409, { kind: 'Status', reason: 'AlreadyExists', message: 'exists' });
      api.objects.set(r.metadata.name, r);
      const outcome = api.node?.(r);
      if (outcome) setTimeout(() => api.objects.has(r.metadata.name) && (api.objects.get(r.metadata.name)!.status = outcome.status), outcome.after);
      return send(201, r);
    }
    const r = api.objects.get(name);
    if (!r) return send(404, { kind: 'Status', reason: 'NotFound', message: `volumerequests "${name}" not found` });
    if (req.method === 'DELETE') api.objects.delete(name);
    return send(200, r);
  });
});

let central: CsiCentralController;
let client: KubeClient;
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  client = new KubeClient({ server: new URL(`http://127.0.0.1:${port}`), token: 't', insecureSkipTlsVerify: false, source: 'test' });
  central = new CsiCentralController({ client, log: pino({ level: 'silent' }), waitMs: 1000, pollMs: 20 });
});
afterAll(() => {
  client.close();
  server.close();
});
beforeEach(() => {
  api.objects.clear();
  api.calls.length = 0;
  api.node = (r) => ({ after: 50, status: { phase: 'Succeeded', code: 'OK', message: '', finishedAt: new Date().toISOString(), ...(r.spec.operation === 'Expand' ? { capacityBytes: r.spec.requiredBytes } : {}) } });
  api.crd = true;
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    const e = toServiceError(err);
    return `${status[e.code]}: ${e.details}`;
  }
}

describe('the central controller', () => {
  it('offers only expansion and modification', () => {
    expect(central.getCapabilities()).toEqual({ capabilities: [{ rpc: { type: 'EXPAND_VOLUME' } }, { rpc: { type: 'MODIFY_VOLUME' } }] });
  });

  it('refuses bad requests itself, naming the field, without a call to the API server', async () => {
    expect(await code(central.modifyVolume({ volume_id: 'pvc-a', mutable_parameters: { maxReadIops: 'lots' } }))).toMatch(/^INVALID_ARGUMENT: mutable_parameters\["maxReadIops"\]/);
    expect(await code(central.modifyVolume({ volume_id: 'pvc-a', mutable_parameters: { pool: 'other' } }))).toMatch(/^INVALID_ARGUMENT: mutable_parameters\["pool"\]/);
    expect(await code(central.modifyVolume({ volume_id: '', mutable_parameters: { maxReadIops: '1' } }))).toBe('INVALID_ARGUMENT: volume_id: missing');
    expect(await code(central.expandVolume({ volume_id: 'pvc-a', capacity_range: null, volume_capability: null }))).toBe('INVALID_ARGUMENT: capacity_range: missing');
    expect(await code(central.expandVolume({ volume_id: 'pvc-a', capacity_range: { required_bytes: '9', limit_bytes: '5' }, volume_capability: null }))).toMatch(/^OUT_OF_RANGE: /);
    expect(api.calls).toEqual([]);
  });

  it("finds the volume's node from its PV across list pages; an unknown volume is NOT_FOUND, a PV without the node FAILED_PRECONDITION", async () => {
    await central.modifyVolume({ volume_id: 'pvc-b', mutable_parameters: { maxReadIops: '100' } });
    expect(api.calls.filter((c) => c.includes('persistentvolumes'))).toHaveLength(2);
    expect(await code(central.modifyVolume({ volume_id: 'pvc-x', mutable_parameters: { maxReadIops: '1' } }))).toBe('NOT_FOUND: volume_id: no PersistentVolume of driver nvme.qosd.io has volumeHandle pvc-x');
    expect(await code(central.modifyVolume({ volume_id: 'pvc-c', mutable_parameters: { maxReadIops: '1' } }))).toMatch(/^FAILED_PRECONDITION: volume_id: PersistentVolume pv-c has no node affinity/);
    // known now: no second lookup
    api.calls.length = 0;
    await central.modifyVolume({ volume_id: 'pvc-b', mutable_parameters: { maxReadIops: '200' } });
    expect(api.calls.some((c) => c.includes('persistentvolumes'))).toBe(false);
  });

  it("writes a VolumeRequest for the node, answers with the node's outcome and deletes it", async () => {
    const seen: VolumeRequest[] = [];
    api.node = (r) => {
      seen.push(structuredClone(r));
      return { after: 30, status: { phase: 'Succeeded', code: 'OK', message: '', capacityBytes: '671088640', finishedAt: new Date().toISOString() } };
    };
    expect(await central.expandVolume({ volume_id: 'pvc-a', capacity_range: { required_bytes: '671088640', limit_bytes: '' }, volume_capability: null })).toEqual({ capacity_bytes: '671088640', node_expansion_required: false });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ apiVersion: 'qosd.io/v1alpha1', kind: 'VolumeRequest', metadata: { labels: { 'qosd.io/node': 'node-1' } }, spec: { node: 'node-1', volumeId: 'pvc-a', operation: 'Expand', requiredBytes: '671088640', limitBytes: '0' } });
    expect(api.objects.size).toBe(0);
  });

  it("answers the node's refusal with the node's code and message", async () => {
    api.node = () => ({ after: 10, status: { phase: 'Failed', code: 'RESOURCE_EXHAUSTED', message: 'pool nvme: readIops guarantee 50000 exceeds the 18000 still available', finishedAt: new Date().toISOString() } });
    expect(await code(central.modifyVolume({ volume_id: 'pvc-a', mutable_parameters: { minReadIops: '50000' } }))).toBe('RESOURCE_EXHAUSTED: pool nvme: readIops guarantee 50000 exceeds the 18000 still available');
    expect(api.objects.size).toBe(0); // a retry starts afresh
  });

  it('a late node: DEADLINE_EXCEEDED, the request stays, and the retry of the same call gets the outcome (carried out once)', async () => {
    let made = 0;
    api.node = () => (made++, { after: 1500, status: { phase: 'Succeeded', code: 'OK', message: '', finishedAt: new Date().toISOString() } });
    expect(await code(central.modifyVolume({ volume_id: 'pvc-a', mutable_parameters: { maxWriteIops: '300', maxReadIops: '100' } }))).toMatch(/^DEADLINE_EXCEEDED: node node-1 has not carried out VolumeRequest modify-/);
    expect(api.objects.size).toBe(1);
    // the same parameters in another order name the same request
    expect(await code(central.modifyVolume({ volume_id: 'pvc-a', mutable_parameters: { maxReadIops: '100', maxWriteIops: '300' } }))).toBe('OK');
    expect(made).toBe(1);
    expect(api.objects.size).toBe(0);
  });

  it('without the VolumeRequest resource: FAILED_PRECONDITION naming the manifest; the API server away: UNAVAILABLE', async () => {
    api.crd = false;
    expect(await code(central.modifyVolume({ volume_id: 'pvc-a', mutable_parameters: { maxReadIops: '1' } }))).toMatch(/^FAILED_PRECONDITION: the API server has no VolumeRequest resource: apply deploy\/kubernetes\/volume-requests.yaml/);
    const away = new CsiCentralController({ client: new KubeClient({ server: new URL('http://127.0.0.1:1'), insecureSkipTlsVerify: false, source: 'test', token: 't' }), log: pino({ level: 'silent' }), waitMs: 500 });
    expect(await code(away.modifyVolume({ volume_id: 'pvc-a', mutable_parameters: { maxReadIops: '1' } }))).toMatch(/^UNAVAILABLE: the API server: /);
    expect(await away.probe()).toMatch(/^the API server does not answer/);
    expect(await central.probe()).toBeUndefined();
  });
});

