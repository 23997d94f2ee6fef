#!/usr/bin/env node
// qosd/nvme: the FlexVolume driver kubelet executes, once per call. It must start fast and print
// exactly one JSON object on stdout+stderr combined, so it imports only node:net and node:fs (it is
// installed as this one file in kubelet's plugin directory), and
// nothing in it writes anything else. It answers init (and what qosd never implements) itself and
// forwards mount/unmount to the daemon over its unix socket with a bounded timeout: kubelet sets
// none, and a hung driver stalls the kubelet's volume manager.
import fs = require('node:fs');
import type * as Net from 'node:net';

// `qosctl install-flex --socket PATH` rewrites this line so the installed driver finds its daemon
// without any environment (kubelet passes a minimal one).
const INSTALLED_SOCKET: string | undefined = undefined;

type Reply = { status: 'Success' | 'Failure' | 'Not supported'; message?: string; [k: string]: unknown };

const INIT_REPLY: Reply = {
  status: 'Success',
  capabilities: { attach: false, selinuxRelabel: true, fsGroup: true, supportsMetrics: true, requiresFSResize: false },
};

/** Commands the daemon implements; everything else is answered "Not supported" right here. */
const FORWARDED = new Set(['mount', 'unmount']);

function socketPath(): string {
  return process.env.QOSD_SOCKET || INSTALLED_SOCKET || '/run/qosd/qosd.sock';
}

function secondsFromEnv(name: string, fallback: number): number {
  const s = Number(process.env[name]);
  return (Number.isFinite(s) && s > 0 ? s : fallback) * 1000;
}

/** The whole call's bound: kubelet sets none, so the driver does. */
const timeoutMs = () => secondsFromEnv('QOSD_FLEX_TIMEOUT_SECONDS', 120);
/** How long to keep retrying, from the first failure, when qosd is down (socket missing, refused or reset). */
const retryMs = () => secondsFromEnv('QOSD_FLEX_RETRY_SECONDS', 10);

/** A failure before qosd read the request, or a 503 while it stops: safe to send again. */
class Retryable extends Error {}

/**
 * One HTTP/1.1 request over the unix socket, by hand on node:net: in a freshly started process
 * loading node:http costs several times the whole request on raw net, and this process starts
 * once per kubelet call. "Connection: close" makes the
 * reply end at EOF; chunked bodies are decoded in case a proxy or a future server sends them.
 */
function post(socket: string, path: string, body: string, ms: number): Promise<{ status: number; body: string }> {
  const net = require('node:net') as typeof Net;
  return new Promise((resolve, reject) => {
    const conn = net.connect(socket);
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`qosd did not answer within ${ms / 1000} s on ${socket}`));
    }, ms);
    const chunks: Buffer[] = [];
    conn.on('connect', () => {
      // write, not end: node's HTTP server aborts a request whose client half-closes early.
      conn.write(
        `POST ${path} HTTP/1.1\r\nHost: qosd\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
    conn.on('data', (c: Buffer) => chunks.push(c));
    conn.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const transient = ['ENOENT', 'ECONNREFUSED', 'EAGAIN', 'ECONNRESET', 'EPIPE'].includes(err.code ?? '');
      reject(new (transient ? Retryable : Error)(`qosd is not reachable at ${socket}: ${err.message}`));
    });
    conn.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks);
      const split = raw.indexOf('\r\n\r\n');
      const head = raw.subarray(0, split < 0 ? raw.length : split).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      // Closed before a reply: qosd stopped while the request waited. Every call is idempotent.
      if (split < 0 || !m) return reject(new Retryable(`qosd closed the connection without a complete reply (${raw.length} bytes)`));
      let payload: Buffer = raw.subarray(split + 4);
      if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) payload = dechunk(payload);
      resolve({ status: Number(m[1]), body: payload.toString('utf8') });
    });
  });
}

function dechunk(buf: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', i);
    if (eol < 0) break;
    const size = parseInt(buf.subarray(i, eol).toString('latin1'), 16);
    if (!(size > 0)) break;
    out.push(buf.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}

async function forward(argv: string[]): Promise<Reply> {
  const socket = socketPath();
  const body = JSON.stringify({ argv });
  const started = Date.now();
  let failingSince: number | undefined;
  let delay = 100;
  for (;;) {
    let res: { status: number; body: string } | undefined;
    let failure: string | undefined;
    let stopping = false;
    try {
      res = await post(socket, '/v1/flex', body, Math.max(1, timeoutMs() - (Date.now() - started)));
      if (res.status === 503) {
        failure = 'qosd is stopping (HTTP 503)';
        stopping = true;
      }
    } catch (err) {
      if (!(err instanceof Retryable)) return { status: 'Failure', message: (err as Error).message };
      failure = (err as Error).message;
    }
    if (failure !== undefined) {
      // qosd restarting: wait for the next one (systemd holds the socket, or it comes back).
      // The window counts from the first failure, not from the start of the call, which may
      // have waited long in a busy daemon's queue. A 503 says a daemon is stopping, so another
      // is coming: that waits as long as the call's own bound allows.
      failingSince ??= Date.now();
      const now = Date.now();
      const giveUp = stopping ? now - started + delay > timeoutMs() : now - failingSince + delay > retryMs();
      if (giveUp) return { status: 'Failure', message: failure };
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 1000);
      continue;
    }
    return judge(res!);
  }
}

function judge(res: { status: number; body: string }): Reply {
  let parsed: { status?: unknown; error?: { message?: unknown } };
  try {
    parsed = JSON.parse(res.body) as typeof parsed;
  } catch {
    return { status: 'Failure', message: `qosd answered HTTP ${res.status} with non-JSON: ${res.body.slice(0, 200)}` };
  }
  if (res.status === 200 && (parsed.status === 'Success' || parsed.status === 'Failure' || parsed.status === 'Not supported')) {
    return parsed as Reply;
  }
  const why = typeof parsed.error?.message === 'string' ? parsed.error.message : res.body.slice(0, 200);
  return { status: 'Failure', message: `qosd refused the call (HTTP ${res.status}): ${why}` };
}

/** Writes all of `text` to fd 1, synchronously, through partial writes and EAGAIN. */
function writeAll(text: string): void {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(1, buf, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); // a non-blocking pipe is full
    }
  }
}

/**
 * Kubelet 1.20 uses a flex driver's message as the format string of the pod's FailedMount event
 * (operation_generator.go: `recorder.Eventf(pod, …, FailedMountVolume, err.Error())`), so a "%"
 * in it is taken for a verb: "needs 250% of the device" became "needs 250%!o(MISSING)f the
 * device" (met in test:kube). The CSI side does the same with util/kubelet-text.ts; this file
 * stands alone in kubelet's plugin directory, hence its own copy of the rule.
 */
const forKubelet = (text: string): string => text.replace(/%/g, ' percent');

function print(reply: Reply): void {
  // Synchronous and complete before exiting: kubelet must read the whole JSON object. Exiting at
  // once (rather than letting the loop drain) saves the teardown of a process that has no more
  // work; nothing is left in flight, since the one socket has closed.
  writeAll(JSON.stringify(reply.message === undefined ? reply : { ...reply, message: forKubelet(reply.message) }));
  process.exit(reply.status === 'Failure' ? 1 : 0);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const command = argv[0] ?? '';
  if (command === 'init') return print(INIT_REPLY);
  if (!FORWARDED.has(command)) return print({ status: 'Not supported' });
  print(await forward(argv));
}

main().catch((err: unknown) => print({ status: 'Failure', message: `driver error: ${err instanceof Error ? err.message : String(err)}` }));
