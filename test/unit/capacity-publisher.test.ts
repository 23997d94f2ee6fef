// The publisher that rewrites this node's CSIStorageCapacity figures when a guarantee changes
// (csi/capacity-publisher.ts): only this node's objects of qosd's driver, only where GetCapacity
// now answers otherwise, as a merge patch of capacity and maximumVolumeSize. The API server is a
// stand-in holding the objects and recording the writes; the real one, with the real provisioner
// beside, is in test/kube/provision.kube.ts.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient } from '../../src/kube/client';
import { CapacityPublisher, type CapacityOf } from '../../src/csi/capacity-publisher';

const GiB = 1024 ** 3;
const object = (name: string, node: string, storageClassName: string, capacity: string, maximumVolumeSize: string) => ({
  metadata: { name, namespace: 'kube-system' }, storageClassName, nodeTopology: { matchLabels: { 'topology.qosd.io/node': node } }, capacity, maximumVolumeSize,
});

describe('CapacityPublisher against a stand-in API server', () => {
  const objects = [
    object('a-db', 'a', 'db', String(50 * GiB), '100Gi'), // this node's: stale
    object('a-bulk', 'a', 'bulk', '100Gi', String(100 * GiB)), // this node's: already right (the API server's spelling)
    object('a-other', 'a', 'other', '1Gi', '1Gi'), // another driver's class
    object('b-db', 'b', 'db', String(50 * GiB), '100Gi'), // another node's
  ];
  const classes: Record<string, unknown> = {
    db: { provisioner: 'nvme.qosd.io', parameters: { minReadIops: '1000' } },
    bulk: { provisioner: 'nvme.qosd.io', parameters: {} },
    other: { provisioner: 'other.csi' },
  };
  const patches: { path: string; body: unknown; type: string }[] = [];
  const api = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const send = (code: number, body: unknown) => res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    let m;
    if (req.method === 'GET' && url.pathname === '/apis/storage.k8s.io/v1/csistoragecapacities') {
      expect(url.searchParams.get('labelSelector')).toBe('csi.storage.k8s.io/drivername=nvme.qosd.io');
      return send(200, { metadata: {}, items: objects });
    }
    if ((m = /^\/apis\/storage\.k8s\.io\/v1\/storageclasses\/(.+)$/.exec(url.pathname))) return classes[m[1]!] ? send(200, classes[m[1]!]) : send(404, { kind: 'Status', reason: 'NotFound' });
    if (req.method === 'PATCH') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        patches.push({ path: url.pathname, body: JSON.parse(body), type: req.headers['content-type'] ?? '' });
        send(200, {});
      });
      return;
    }
    send(404, { kind: 'Status', reason: 'NotFound' });
  });
  let client: KubeClient;
  const asked: Record<string, string>[] = [];
  // What GetCapacity answers now: 30% of the budget left for a guaranteed class, all of it otherwise.
  const capacityOf: CapacityOf = async (parameters) => {
    asked.push(parameters);
    const cap = parameters.minReadIops ? 30 * GiB : 100 * GiB;
    return { available_capacity: String(cap), maximum_volume_size: { value: String(100 * GiB) } };
  };

  beforeAll(async () => {
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    client = new KubeClient({ server: new URL(`http://127.0.0.1:${(api.address() as AddressInfo).port}`), insecureSkipTlsVerify: false, source: 'test' });
  });
  afterAll(async () => {
    client.close();
    await new Promise((r) => api.close(r));
  });

  it("rewrites this node's stale figures of qosd's classes, and nothing else", async () => {
    const p = new CapacityPublisher(client, 'a', capacityOf, pino({ level: 'silent' }));
    expect(await p.round()).toBe(1);
    expect(patches).toEqual([
      { path: '/apis/storage.k8s.io/v1/namespaces/kube-system/csistoragecapacities/a-db', body: { capacity: String(30 * GiB), maximumVolumeSize: String(100 * GiB) }, type: 'application/merge-patch+json' },
    ]);
    expect(asked).toEqual([{ minReadIops: '1000' }, {}]);
  });

  it('a burst of changes makes one round, shortly after', async () => {
    patches.length = 0;
    objects[0]!.capacity = String(50 * GiB);
    const p = new CapacityPublisher(client, 'a', capacityOf, pino({ level: 'silent' }));
    for (let i = 0; i < 5; i++) p.changed();
    await new Promise((r) => setTimeout(r, 1_000));
    await p.stop();
    expect(patches.length).toBe(1);
  });

  it('an API server away is logged, not thrown; the next change tries again', async () => {
    const gone = new KubeClient({ server: new URL('http://127.0.0.1:1'), insecureSkipTlsVerify: false, source: 'test' });
    const p = new CapacityPublisher(gone, 'a', capacityOf, pino({ level: 'silent' }));
    expect(await p.round()).toBe(0);
    gone.close();
  });
});
