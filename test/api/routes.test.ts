// The API routes with fastify.inject on a fake service set: no socket, no root, no kernel. The
// store is a real in-memory one (views read attachments from it); the services record what the
// routes asked of them. What is checked: the parsed request the service receives, the status and
// error shape for each kind of failure, and that a refused request never reaches a service.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/server';
import type { Services } from '../../src/api/services';
import { Metrics } from '../../src/metrics/registry';
import { QosdError, notFound } from '../../src/model/errors';
import type { Store } from '../../src/store/store';
import type { FlexReply } from '../../src/service/flex';
import { addVolume, memoryStore, quietLog } from '../helpers/fixtures';

interface Call {
  method: string;
  args: unknown[];
}

function fakeServices(store: Store, calls: Call[]) {
  let failNext: Error | undefined;
  const record = (method: string, ...args: unknown[]) => {
    calls.push({ method, args });
    if (failNext) {
      const e = failNext;
      failNext = undefined;
      throw e;
    }
  };
  const volumes = {
    get: (name: string) => {
      const v = store.volumes.get(name);
      if (!v) throw notFound(`volume ${name} not found`);
      return v;
    },
    list: () => store.volumes.list(),
    create: async (req: { name: string }, source: string) => {
      record('create', req, source);
      return addVolume(store, { name: req.name, deviceNumber: '7:9' });
    },
    changeQos: async (name: string, change: unknown, source: string) => record('changeQos', name, change, source),
    resize: async (name: string, size: number, source: string) => record('resize', name, size, source),
    delete: async (name: string, source: string) => record('delete', name, source),
  };
  const flex = {
    handle: async (argv: string[]): Promise<FlexReply> => {
      record('flex', argv);
      return argv[0] === 'mount' ? { status: 'Failure', message: 'option x: unknown option' } : { status: 'Success' };
    },
  };
  const metrics = new Metrics();
  const services = {
    store, volumes, flex, metrics,
    attachments: { list: () => store.attachments.list() },
    devices: async () => [],
    limitsFor: (v: { qos: { max: Record<string, number> } }) => ({ ...v.qos.max, readIops: 42 }),
    doctor: () => [],
    scrapeMetrics: async () => [],
    attainment: async () => [],
  } as unknown as Services;
  return { services, metrics, failWith: (e: Error) => (failNext = e) };
}

let app: FastifyInstance;
let store: Store;
let calls: Call[];
let fake: ReturnType<typeof fakeServices>;

beforeEach(async () => {
  store = memoryStore();
  calls = [];
  fake = fakeServices(store, calls);
  app = buildApi(fake.services, quietLog());
  await app.ready();
});
afterEach(async () => {
  await app.close();
  store.close();
});

const inject = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method, url, ...(payload !== undefined && { payload: payload as object }), headers });

describe('volume routes', () => {
  it('GET shows the volume with the limits in force now; a missing one is 404 in the error shape', async () => {
    addVolume(store, { name: 'db', deviceNumber: '7:5', max: { writeIops: 100 } });
    const ok = await inject('GET', '/v1/volumes/db');
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ name: 'db', deviceNumber: '7:5', qos: { max: { writeIops: 100 } }, effective: { max: { writeIops: 100, readIops: 42 } }, attachments: [] });
    const missing = await inject('GET', '/v1/volumes/nope');
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: { code: 'NotFound', message: 'volume nope not found' } });
  });

  it('POST hands the service parsed quantities and the source header', async () => {
    const r = await inject('POST', '/v1/volumes', { name: 'db', size: '2Gi', qos: { min: { readIops: 300 }, max: { readBps: '4Mi' } } }, { 'x-qosd-source': 'cli' });
    expect(r.statusCode).toBe(201);
    expect(calls).toEqual([{ method: 'create', args: [{ name: 'db', size: 2 * 2 ** 30, qos: { min: { readIops: 300 }, max: { readBps: 4 * 2 ** 20 } } }, 'cli'] }]);
  });

  it.each([
    [{ name: 'db', sise: '1Gi' }, /body\.sise|sise/],
    [{ name: 'db', size: 1e308 }, /body\.size/],
    [{ name: 'db', size: '1Qi' }, /body\.size/],
    [{ name: 'db', qos: { max: { readIops: -1 } } }, /readIops/],
    [{ name: '../etc' }, /name/],
  ])('refuses %j with 400 naming the field, and never calls the service', async (body, field) => {
    const r = await inject('POST', '/v1/volumes', body);
    expect(r.statusCode).toBe(400);
    expect(r.json().error.code).toBe('InvalidArgument');
    expect(r.json().error.message).toMatch(field);
    expect(calls).toEqual([]);
  });

  it('maps service errors to their statuses: ResourceExhausted 507, InUse 409, anything else 500', async () => {
    fake.failWith(new QosdError('ResourceExhausted', 'pool default: readIops guarantee 9000 exceeds the 10 still available'));
    const refused = await inject('POST', '/v1/volumes', { name: 'db', qos: { min: { readIops: 9000 } } });
    expect(refused.statusCode).toBe(507);
    expect(refused.json()).toEqual({ error: { code: 'ResourceExhausted', message: 'pool default: readIops guarantee 9000 exceeds the 10 still available' } });
    addVolume(store, { name: 'busy', deviceNumber: '7:6' });
    fake.failWith(new QosdError('InUse', 'volume busy is attached at /t; unmount it first'));
    expect((await inject('DELETE', '/v1/volumes/busy')).statusCode).toBe(409);
    fake.failWith(new Error('disk on fire'));
    const broken = await inject('DELETE', '/v1/volumes/busy');
    expect(broken.statusCode).toBe(500);
    expect(broken.json()).toEqual({ error: { code: 'Internal', message: 'disk on fire' } });
  });

  it('PATCH answers 404 before any change, and applies QoS before a grow', async () => {
    expect((await inject('PATCH', '/v1/volumes/nope', { size: '2Gi' })).statusCode).toBe(404);
    expect(calls).toEqual([]);
    addVolume(store, { name: 'db', deviceNumber: '7:5' });
    const r = await inject('PATCH', '/v1/volumes/db', { size: '2Gi', qos: { max: { readIops: null, writeIops: 50 } } });
    expect(r.statusCode).toBe(200);
    expect(calls.map((c) => c.method)).toEqual(['changeQos', 'resize']);
    expect(calls[0]!.args).toEqual(['db', { max: { readIops: null, writeIops: 50 } }, 'api']);
    expect(calls[1]!.args).toEqual(['db', 2 * 2 ** 30, 'api']);
  });

  it('DELETE answers 204 with no body', async () => {
    addVolume(store, { name: 'db', deviceNumber: '7:5' });
    const r = await inject('DELETE', '/v1/volumes/db');
    expect(r.statusCode).toBe(204);
    expect(r.body).toBe('');
    expect(calls).toEqual([{ method: 'delete', args: ['db', 'api'] }]);
  });
});

describe('flex route', () => {
  it('passes argv through, answers a flex Failure as HTTP 200, and counts the call', async () => {
    const r = await inject('POST', '/v1/flex', { argv: ['mount', '/var/lib/kubelet/pods/x/volumes/qosd~nvme/v', '{}'] });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'Failure', message: 'option x: unknown option' });
    expect(calls).toEqual([{ method: 'flex', args: [['mount', '/var/lib/kubelet/pods/x/volumes/qosd~nvme/v', '{}']] }]);
    expect(await fake.metrics.text(async function* (): AsyncIterable<Buffer> {})).toMatch(/qosd_flex_calls_total\{command="mount",status="Failure"\} 1/);
  });

  it('refuses an argv that is not a list of strings, before the handler', async () => {
    for (const argv of [[], 'mount', [1, 2]]) {
      const r = await inject('POST', '/v1/flex', { argv });
      expect(r.statusCode).toBe(400);
      expect(r.json().error.message).toMatch(/argv/);
    }
    expect(calls).toEqual([]);
  });
});
