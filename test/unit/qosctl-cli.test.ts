// qosctl as a newcomer meets it, without a daemon of its own: a version (its own, and the
// daemon's when one answers), `volume list` as well as `volumes`, and a mistake answered with one
// line and a hint, not the whole help.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const QOSCTL = path.resolve(__dirname, '../../dist/cli/qosctl.js');
const VERSION = (JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8')) as { version: string }).version;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-cli-'));
const socket = path.join(dir, 'api.sock');
let server: http.Server;
const patched: unknown[] = [];
// A volume with a read guarantee and a latency target, and its last hour as the daemon keeps it.
const DB = {
  name: 'db', pool: 'default', sizeBytes: 1 << 30, fsType: 'ext4', class: 'best-effort', ephemeral: false, state: 'ready', device: '/dev/loop3', deviceNumber: '7:3',
  qos: { min: { readIops: 200 }, max: {}, latency: { read: 0.002 } }, overrides: { min: { readIops: 200 }, max: {} }, attachments: [], createdAt: '2026-12-07T12:00:00.000Z',
};
const DB_HOUR = [
  { volume: 'db', pool: 'default', direction: 'read', guarantee: 'rate', seconds: 3600, keptSeconds: 3600, worst: 0.97, worstAt: '2026-12-07T12:10:00.250Z', delivered: 1.01 },
  { volume: 'db', pool: 'default', direction: 'read', guarantee: 'latency', seconds: 3600, keptSeconds: 3564, worst: 0.42, worstAt: '2026-12-07T12:31:07.500Z', delivered: 1.3 },
];

beforeAll(async () => {
  // Stands in for the daemon's API: the status and an empty volume list.
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.method === 'PATCH') patched.push(JSON.parse(body) as unknown);
      res.writeHead(200, { 'content-type': 'application/json' });
      const answer = req.url === '/v1/status' ? { version: '9.8.7' } : req.url === '/v1/volumes/db' ? DB : req.url === '/v1/volumes/db/attainment' ? { attainment: DB_HOUR } : { volumes: [] };
      res.end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
});
afterAll(() => {
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** qosctl run as a user runs it (asynchronously: the stand-in daemon answers from this process). */
function qosctl(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [QOSCTL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('qosctl for a newcomer', () => {
  it('prints its version and the daemon\'s, with `version` and `--version` alike', async () => {
    for (const args of [['--socket', socket, 'version'], ['--socket', socket, '--version'], ['-V', '--socket', socket]]) {
      const r = await qosctl(args);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe(`qosctl ${VERSION}\nqosd   9.8.7\n`);
    }
    const away = await qosctl(['--socket', path.join(dir, 'none.sock'), '--version']);
    expect(away.status).toBe(0);
    expect(away.stdout).toMatch(new RegExp(`^qosctl ${VERSION.replace(/\./g, '\\.')}\\nqosd   \\(not reachable: qosd is not running at `));
    expect(JSON.parse((await qosctl(['--socket', socket, '-o', 'json', 'version'])).stdout)).toEqual({ qosctl: VERSION, qosd: '9.8.7' });
  });

  it('lists volumes as `volume list` too', async () => {
    const a = await qosctl(['--socket', socket, '-o', 'json', 'volume', 'list']);
    expect(a.status, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout)).toEqual({ volumes: [] });
  });

  it('answers a mistake with one line and a hint, exit 2, never the whole help', async () => {
    for (const [args, line] of [
      [['volume', 'lst'], "error: unknown command 'lst'"],
      [['--bogus'], "error: unknown option '--bogus'"],
      [['volume', 'create'], "error: missing required argument 'name'"],
    ] as const) {
      const r = await qosctl([...args]);
      expect(r.status).toBe(2);
      expect(r.stderr.split('\n')[0]).toBe(line);
      expect(r.stderr).toContain('(qosctl --help lists the commands; qosctl COMMAND --help their options)');
      expect(r.stderr).not.toContain('Usage:');
      expect(r.stderr.trim().split('\n').length).toBeLessThanOrEqual(3);
    }
  });
});

describe('qosctl and latency targets', () => {
  it('volume show prints the targets and each guarantee\'s last hour', async () => {
    const r = await qosctl(['--socket', socket, 'volume', 'show', 'db']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^latency targets: +read 2ms$/m);
    expect(r.stdout).toMatch(/^read rate +3600s +100% \(3600s\) +97% +2026-12-07T12:10:00.250Z$/m);
    expect(r.stdout).toMatch(/^read latency +3600s +99% \(3564s\) +42% +2026-12-07T12:31:07.500Z$/m);
  });

  it('volume set sends a target as given, and --unset drops one', async () => {
    patched.length = 0;
    expect((await qosctl(['--socket', socket, 'volume', 'set', 'db', '--write-latency-target', '5ms'])).status).toBe(0);
    expect((await qosctl(['--socket', socket, 'volume', 'set', 'db', '--unset', 'read-latency-target'])).status).toBe(0);
    expect(patched).toEqual([{ qos: { latency: { write: '5ms' } } }, { qos: { latency: { read: null } } }]);
  });
});
