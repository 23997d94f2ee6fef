// Hostile input: a generated stream of over 10,000 malformed requests to every route (wrong types,
// unknown fields, huge numbers, path-traversal names, oversized and deeply nested bodies, invalid
// UTF-8, truncated JSON) and malformed flex argvs. Each gets a clear 4xx (or a flex Failure / Not
// supported), never a 5xx; the daemon stays up; SQLite's volumes, attachments and events are
// unchanged. Seeded, so a failure reproduces.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as http from 'node:http';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestNode, removeTestNode, startDaemon, type RunningDaemon, type TestNode } from '../helpers/daemon';
import { rng } from '../helpers/rng';

let node: TestNode;
let daemon: RunningDaemon;

function dump(): string {
  const db = new Database(path.join(node.stateDir, 'qosd.db'), { readonly: true, fileMustExist: true });
  try {
    return JSON.stringify(['volumes', 'attachments', 'events'].map((t) => db.prepare(`SELECT * FROM ${t} ORDER BY rowid`).all()));
  } finally {
    db.close();
  }
}

interface Req { method: string; path: string; body?: Buffer; contentType?: string }

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
function send(r: Req): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {};
    if (r.body !== undefined) {
      headers['content-type'] = r.contentType ?? 'application/json';
      headers['content-length'] = r.body.length;
    }
    let answered: { status: number; text: string } | undefined;
    const req = http.request({ socketPath: node.socket, method: r.method, path: r.path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        answered = { status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') };
        resolve(answered);
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (answered) return;
      // An over-limit body: the server answers 413 and closes while we are still writing, and
      // the client may see the close (EPIPE) before the answer. That is a refusal, not a crash.
      const oversized = (r.body?.length ?? 0) > 1024 * 1024;
      if (oversized && (err.code === 'EPIPE' || err.code === 'ECONNRESET')) resolve({ status: 413, text: '{"error":{"code":"InvalidArgument","message":"closed on an oversized body"}}' });
      else reject(err);
    });
    req.end(r.body);
  });
}

const NAMES = ['', '..', '../../etc/passwd', '/etc', 'a/b', 'UPPER', '-lead', 'trail-', 'x'.repeat(300), 'ok\u0000nul', '%2e%2e', 'é', ' space', 'a..b/..', '$(reboot)', '`id`', 'default;rm -rf /'];
const VALUES: unknown[] = [null, true, false, -1, 0, 1.5, 1e308, -1e308, 2 ** 64, Number.MAX_SAFE_INTEGER + 2, '1e999', 'NaN', '', 'x'.repeat(5000), [], {}, [1, 2], { a: 1 }, '10GB', '-5M', '0x10', '1.5.5'];
const FIELDS = ['name', 'pool', 'size', 'fsType', 'class', 'ephemeral', 'qos', 'bogus', '__proto__', 'constructor', 'argv', 'devices', 'force', 'seconds', 'method'];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

/** Bodies that are JSON but wrong: types, unknown fields, out-of-range numbers, bad names. */
function wrongBody(r: () => number): unknown {
  const o: Record<string, unknown> = Object.create(null);
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const f = pick(r, FIELDS);
    o[f] = f === 'name' ? pick(r, NAMES) : f === 'qos' ? { [pick(r, ['min', 'max', 'mid'])]: { [pick(r, ['readIops', 'writeBps', 'iops'])]: pick(r, VALUES) } } : pick(r, VALUES);
  }
  // Never a well-formed create: always break at least one thing.
  if (r() < 0.5) o.name = pick(r, NAMES);
  else o.bogus = 1;
  return o;
}

function nested(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

/** Raw bodies that are not valid JSON, or too big, or too deep, or not UTF-8. */
function rawBody(r: () => number): Buffer {
  switch (Math.floor(r() * 6)) {
    case 0: return Buffer.from('{"name": "v", "size": ');
    case 1: return Buffer.from(nested(40 + Math.floor(r() * 100000)));
    case 2: return Buffer.from([0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]); // {"n":"<invalid utf-8>"}
    case 3: return Buffer.alloc(1024 * 1024 + 10, 0x20);
    case 4: return Buffer.from('{"name":"v"}{"name":"w"}');
    default: return Buffer.from(`{"a":${'1'.repeat(400)}}`);
  }
}

/** Flex argvs that must fail or be refused without touching anything. */
function flexArgv(r: () => number, podsDir: string): unknown {
  const targets = ['', 'relative/dir', '/etc', `${podsDir}/../x`, `${podsDir}`, `${podsDir}/${pick(r, NAMES)}/volumes/qosd~nvme/v`, '/dev/null'];
  const opts = ['{', '[]', '"str"', 'null', '{"volumeId":"../../x"}', '{"kubernetes.io/pod.uid":"../../etc"}', `{"maxReadIops":${JSON.stringify(pick(r, VALUES))}}`, '{"size":"-1"}', '{"ephemeral":"maybe"}', '{"__proto__":{"x":1}}'];
  switch (Math.floor(r() * 5)) {
    case 0: return { argv: [pick(r, ['mount', 'unmount', 'MOUNT', 'attach', '', 'init\n', 'expandvolume']), pick(r, targets), pick(r, opts)] };
    case 1: return { argv: ['mount', `${podsDir}/${'0b1c2d3e-0000-4000-8000-00000000000f'}/volumes/qosd~nvme/v`, pick(r, opts)] };
    case 2: return { argv: pick(r, VALUES) };
    case 3: return { argv: Array.from({ length: 20 }, () => 'x') };
    default: return { argv: ['unmount', pick(r, targets)], extra: true };
  }
}

beforeAll(async () => {
  node = makeTestNode();
  daemon = await startDaemon(node);
});

afterAll(async () => {
  agent.destroy();
  await daemon?.stop();
  if (node) removeTestNode(node);
});

describe('hostile input', () => {
  it('answers 10,000+ malformed requests with 4xx or flex Failure, never 5xx, and changes nothing', async () => {
    const r = rng(20261126);
    const podsDir = path.join(node.kubeletRoot, 'pods');
    const before = dump();
    const requests: Req[] = [];
    const routes: [string, string][] = [
      ['POST', '/v1/volumes'], ['PATCH', '/v1/volumes/v'], ['POST', '/v1/flex'], ['POST', '/v1/pools/default/calibrate'],
      ['POST', '/v1/pools/default/init'], ['PATCH', '/v1/volumes/..%2F..%2Fetc'], ['DELETE', '/v1/volumes/%2e%2e'],
    ];
    for (let i = 0; i < 10_500; i++) {
      const kind = r();
      if (kind < 0.45) {
        const [method, p] = pick(r, routes);
        requests.push({ method, path: p, body: Buffer.from(JSON.stringify(p === '/v1/flex' ? flexArgv(r, podsDir) : wrongBody(r))) });
      } else if (kind < 0.65) {
        const [method, p] = pick(r, routes);
        requests.push({ method, path: p, body: rawBody(r) });
      } else if (kind < 0.8) {
        requests.push({ method: 'POST', path: '/v1/flex', body: Buffer.from(JSON.stringify(flexArgv(r, podsDir))) });
      } else if (kind < 0.9) {
        requests.push({ method: pick(r, ['GET', 'DELETE', 'PATCH']), path: `/v1/volumes/${encodeURIComponent(pick(r, NAMES))}` });
      } else {
        requests.push({ method: 'GET', path: pick(r, ['/v1/volumes?x=1', '/v1/pools/..', '/v1/volumes/a/events?limit=1', '/v1/../etc/passwd', '/v1/status?' + 'a'.repeat(5000)]) });
      }
    }
    const statuses = new Map<number, number>();
    const bad: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < requests.length) {
          const req = requests[next++]!;
          const res = await send(req);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status >= 500) bad.push(`${req.method} ${req.path} ${req.body?.subarray(0, 120).toString()} → ${res.status} ${res.text.slice(0, 200)}`);
          else if (res.status === 200 && req.path === '/v1/flex') {
            // unmount of a path that holds nothing is Success by the protocol; a mount never may be.
            const reply = JSON.parse(res.text) as { status: string };
            if (reply.status === 'Success' && !req.body?.toString().includes('"unmount"')) bad.push(`flex Success for ${req.body?.toString().slice(0, 200)}`);
          } else if (res.status >= 200 && res.status < 300 && req.path !== '/v1/flex') {
            bad.push(`${req.method} ${req.path} accepted: ${res.status}`);
          } else if (res.status >= 400 && !/"error":\{"code":"[A-Za-z]+","message":"[^"]/.test(res.text)) {
            bad.push(`${req.method} ${req.path} → ${res.status} without the error shape: ${res.text.slice(0, 120)}`);
          }
        }
      }),
    );
    expect(requests.length).toBeGreaterThanOrEqual(10_000);
    expect(bad.slice(0, 10)).toEqual([]);
    expect([...statuses.keys()].every((s) => s < 500)).toBe(true);
    expect(daemon.child.exitCode).toBeNull();
    expect((await send({ method: 'GET', path: '/v1/status' })).status).toBe(200);
    expect(dump()).toBe(before);
    expect(fs.readdirSync(podsDir)).toEqual([]);
  }, 180_000);

  it('refuses an out-of-range number in every numeric field of an otherwise good body with 400 naming the field', async () => {
    const before = dump();
    const OUT_OF_RANGE: unknown[] = [1e308, -1e308, 2 ** 64, Number.MAX_SAFE_INTEGER + 2, 0, -1, 1.5, '99999999999Ei', '1e999'];
    const cases: { method: string; path: string; field: string; body: (v: unknown) => unknown; values?: unknown[] }[] = [
      { method: 'POST', path: '/v1/volumes', field: 'body.size', body: (v) => ({ name: 'range-ok', size: v }) },
      { method: 'PATCH', path: '/v1/volumes/range-ok', field: 'body.size', body: (v) => ({ size: v }) },
      { method: 'POST', path: '/v1/pools/default/calibrate', field: 'body.scratchSize', body: (v) => ({ scratchSize: v }) },
      // seconds is a real number (0.2 to 120): only values outside that, so no calibration starts.
      { method: 'POST', path: '/v1/pools/default/calibrate', field: 'body.seconds', body: (v) => ({ seconds: v }), values: [1e308, -1e308, 2 ** 64, 0, -1, 121, '1e999'] },
    ];
    for (const side of ['min', 'max']) {
      for (const d of ['readIops', 'writeIops', 'readBps', 'writeBps']) {
        cases.push({ method: 'POST', path: '/v1/volumes', field: `body.qos.${side}.${d}`, body: (v) => ({ name: 'range-ok', qos: { [side]: { [d]: v } } }) });
        cases.push({ method: 'PATCH', path: '/v1/volumes/range-ok', field: `body.qos.${side}.${d}`, body: (v) => ({ qos: { [side]: { [d]: v } } }) });
      }
    }
    for (const c of cases) {
      for (const v of c.values ?? OUT_OF_RANGE) {
        const res = await send({ method: c.method, path: c.path, body: Buffer.from(JSON.stringify(c.body(v))) });
        const what = `${c.method} ${c.path} ${c.field}=${JSON.stringify(v)}`;
        if (c.method === 'PATCH' && res.status === 404) continue; // the volume does not exist: refused before the body matters
        expect(res.status, `${what}: ${res.text}`).toBe(400);
        expect(JSON.parse(res.text).error.message, what).toContain(c.field);
      }
    }
    expect(dump()).toBe(before);
  });
});
