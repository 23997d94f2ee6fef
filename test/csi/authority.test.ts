// kubelet 1.20's gRPC-Go sends the socket path as the HTTP/2 :authority, which Node's HTTP/2
// server alone resets with PROTOCOL_ERROR (seen in test:kube: the plugin watcher could not
// register the driver). The same :authority is sent here with grpc-js's default_authority option;
// qosd answers on both of its sockets. The rewriter itself is checked frame by frame.
import * as path from 'node:path';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as os from 'node:os';
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestNode, removeTestNode, startDaemon, type RunningDaemon, type TestNode } from '../helpers/daemon';
import { csiClient } from '../helpers/csi';
import { request } from '../../src/cli/client';
import { AuthorityRewriter, FrameLimitError, MAX_HEADER_BLOCK, withAcceptableAuthority } from '../../src/csi/h2-authority';

describe('an HTTP/2 :authority that is the socket path', () => {
  let node: TestNode;
  let daemon: RunningDaemon;
  beforeAll(async () => {
    node = makeTestNode();
    daemon = await startDaemon(node);
  });
  afterAll(async () => {
    await daemon?.stop();
    if (node) removeTestNode(node);
  });

  it('is served on the CSI socket and on the registration socket', async () => {
    const csi = csiClient(node.csiSocket, 10_000, { 'grpc.default_authority': node.csiSocket });
    const reg = path.join(node.kubeletRoot, 'plugins_registry', 'nvme.qosd.io-reg.sock');
    const registration = csiClient(reg, 10_000, { 'grpc.default_authority': reg });
    const status = async () => (await request<{ csi: unknown }>(node.socket, 'GET', '/v1/status')).body.csi;
    try {
      expect(await status()).toEqual({ socket: node.csiSocket, nodeName: 'qosd-test-node', registration: reg, kubelet: null, volumeRequests: null }); // csi.kubeconfig off: no VolumeRequest watch
      expect(await csi.call('Identity', 'GetPluginInfo')).toMatchObject({ name: 'nvme.qosd.io' });
      expect(await csi.call('Node', 'NodeGetInfo')).toMatchObject({ node_id: 'qosd-test-node' });
      expect(await registration.call('Registration', 'GetInfo')).toEqual({ type: 'CSIPlugin', name: 'nvme.qosd.io', endpoint: node.csiSocket, supported_versions: ['1.0.0'] });
      expect(await registration.call('Registration', 'NotifyRegistrationStatus', { plugin_registered: true, error: '' })).toEqual({});
      // What kubelet answered shows in the status (qosctl status prints it) and the metrics.
      expect(await status()).toMatchObject({ kubelet: { registered: true, error: '' } });
      const metrics = (await request<string>(node.socket, 'GET', '/metrics')).body as unknown as string;
      expect(metrics).toMatch(/^qosd_csi_registered 1$/m);
      expect(metrics).toMatch(/^qosd_csi_calls_total\{method="GetPluginInfo",code="OK"\} 1$/m);
      expect(metrics).toMatch(/^qosd_csi_calls_total\{method="GetInfo",code="OK"\} 1$/m);
      expect(metrics).toMatch(/^qosd_csi_call_duration_seconds_count\{method="NodeGetInfo"\} 1$/m);
      expect(await csi.code('Node', 'NodeGetVolumeStats', {})).toBe('INVALID_ARGUMENT');
      const after = (await request<string>(node.socket, 'GET', '/metrics')).body as unknown as string;
      expect(after).toMatch(/^qosd_csi_calls_total\{method="NodeGetVolumeStats",code="INVALID_ARGUMENT"\} 1$/m);
    } finally {
      csi.close();
      registration.close();
    }
  });
});

describe('the :authority rewriter in front of a plain Node HTTP/2 server', () => {
  it('lets a request with a path authority through as "localhost", headers and body intact, many times on one connection', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-h2-'));
    const sock = path.join(dir, 's.sock');
    const seen: string[] = [];
    const h2 = http2.createServer();
    h2.on('stream', (stream, headers) => {
      seen.push(`${headers[':authority']} ${headers[':path']} ${headers['x-long']?.length}`);
      let body = '';
      stream.on('data', (c: Buffer) => (body += c.toString()));
      stream.on('end', () => {
        stream.respond({ ':status': 200 });
        stream.end(`echo:${body}`);
      });
    });
    const listener = net.createServer((c) => h2.emit('connection', withAcceptableAuthority(c))).listen(sock);
    await new Promise((r) => listener.once('listening', r));
    const client = http2.connect('http://localhost', { createConnection: () => net.connect(sock) });
    try {
      // A header bigger than one frame forces CONTINUATION frames after the rewrite.
      const long = 'x'.repeat(20_000);
      for (let i = 0; i < 5; i++) {
        const req = client.request({ ':method': 'POST', ':path': `/p${i}`, ':authority': sock, 'x-long': long });
        req.end(`body${i}`);
        const answer = await new Promise<string>((resolve, reject) => {
          let text = '';
          req.on('data', (c: Buffer) => (text += c.toString()));
          req.on('end', () => resolve(text));
          req.on('error', reject);
        });
        expect(answer).toBe(`echo:body${i}`);
      }
      expect(seen).toEqual([0, 1, 2, 3, 4].map((i) => `localhost /p${i} 20000`));
    } finally {
      client.close();
      listener.close();
      h2.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the rewriter keeps HTTP/2 limits (frame size, header block) before it holds a byte', () => {
  const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
  const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
    const head = Buffer.alloc(9);
    head.writeUIntBE(payload.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(stream, 5);
    return Buffer.concat([head, payload]);
  };

  it('refuses a frame longer than 16 KiB from its header alone, and a header block past 64 KiB', () => {
    const huge = new AuthorityRewriter();
    huge.push(PREFACE);
    const head = Buffer.alloc(9);
    head.writeUIntBE(16 * 1024 * 1024 - 1, 0, 3); // announces 16 MiB; nothing more sent
    head[3] = 0x1;
    expect(() => huge.push(head)).toThrow(FrameLimitError);

    const block = new AuthorityRewriter();
    block.push(PREFACE);
    block.push(frame(0x1, 0, 1, Buffer.alloc(16_000))); // HEADERS without END_HEADERS
    let sent = 16_000;
    expect(() => {
      for (;;) {
        block.push(frame(0x9, 0, 1, Buffer.alloc(16_000))); // CONTINUATION, and again
        sent += 16_000;
        if (sent > 400 * 1024 * 1024) break;
      }
    }).toThrow(`a header block of more than ${MAX_HEADER_BLOCK} bytes`);
    expect(sent).toBeLessThanOrEqual(MAX_HEADER_BLOCK + 16_000);
  });

  it('closes the connection of a client that streams CONTINUATION frames at the daemon, which keeps serving', async () => {
    const node = makeTestNode();
    const daemon = await startDaemon(node);
    try {
      const sock = net.connect(node.csiSocket);
      await new Promise((r) => sock.once('connect', r));
      sock.write(PREFACE);
      sock.write(frame(0x4, 0, 0, Buffer.alloc(0))); // SETTINGS
      sock.write(frame(0x1, 0, 1, Buffer.alloc(1000)));
      let written = 0;
      const closed = new Promise<void>((r) => sock.once('close', () => r()));
      sock.on('error', () => undefined);
      let open = true;
      void closed.then(() => (open = false));
      const piece = frame(0x9, 0, 1, Buffer.alloc(16_000));
      while (open && written < 400 * 1024 * 1024) {
        if (!sock.write(piece)) await Promise.race([new Promise((r) => sock.once('drain', r)), closed]);
        written += piece.length;
      }
      await closed;
      // Closed once past the cap, not after 400 MiB (the socket's buffers let a few MiB through).
      expect(written).toBeLessThan(32 * 1024 * 1024);
      const csi = csiClient(node.csiSocket, 10_000);
      try {
        expect(await csi.call('Identity', 'GetPluginInfo')).toMatchObject({ name: 'nvme.qosd.io' });
      } finally {
        csi.close();
      }
    } finally {
      await daemon.stop();
      removeTestNode(node);
    }
  }, 60_000);
});
