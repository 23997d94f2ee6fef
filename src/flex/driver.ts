#!/usr/bin/env node
// qosd/nvme: the FlexVolume driver kubelet executes, once per call. It must start fast and print
// exactly one JSON object on stdout+stderr combined, so it imports only node:http and node:fs, and
// nothing in it writes anything else. It answers init (and what qosd never implements) itself and
// forwards mount/unmount to the daemon over its unix socket with a bounded timeout: kubelet sets
// none, and a hung driver stalls the kubelet's volume manager.
import fs = require('node:fs');
import type * as Http from 'node:http';

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

function timeoutMs(): number {
  const s = Number(process.env.QOSD_FLEX_TIMEOUT_SECONDS);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 120_000;
}

function forward(argv: string[]): Promise<Reply> {
  // Loaded here, not at the top: init and "Not supported" answers never pay for it.
  const http = require('node:http') as typeof Http;
  const socket = socketPath();
  const body = JSON.stringify({ argv });
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: Reply): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      req.destroy();
      done({ status: 'Failure', message: `qosd did not answer within ${timeoutMs() / 1000} s on ${socket}` });
    }, timeoutMs());
    const req = http.request(
      {
        socketPath: socket,
        path: '/v1/flex',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => done({ status: 'Failure', message: `reading qosd's reply: ${err.message}` }));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            return done({ status: 'Failure', message: `qosd answered HTTP ${res.statusCode} with non-JSON: ${text.slice(0, 200)}` });
          }
          const p = parsed as { status?: unknown; error?: { message?: unknown } };
          if (res.statusCode === 200 && (p.status === 'Success' || p.status === 'Failure' || p.status === 'Not supported')) {
            return done(parsed as Reply);
          }
          const why = typeof p.error?.message === 'string' ? p.error.message : text.slice(0, 200);
          done({ status: 'Failure', message: `qosd refused the call (HTTP ${res.statusCode}): ${why}` });
        });
      },
    );
    req.on('error', (err) => done({ status: 'Failure', message: `qosd is not reachable at ${socket}: ${err.message}` }));
    req.end(body);
  });
}

function print(reply: Reply): void {
  // writeSync: a pipe write must not be cut short by the process ending.
  fs.writeSync(1, JSON.stringify(reply));
  process.exitCode = reply.status === 'Failure' ? 1 : 0;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const command = argv[0] ?? '';
  if (command === 'init') return print(INIT_REPLY);
  if (!FORWARDED.has(command)) return print({ status: 'Not supported' });
  print(await forward(argv));
}

main().catch((err: unknown) => print({ status: 'Failure', message: `driver error: ${err instanceof Error ? err.message : String(err)}` }));
