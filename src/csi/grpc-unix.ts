// gRPC on unix sockets, shared by the node's CSI servers (server.ts) and the central controller
// (central-server.ts): each handler runs as a promise; whatever it throws reaches the client as
// the spec's status code with the message, and a log line.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { clearStaleSocket } from '../util/unix-socket';
import { toServiceError } from './status';
import { withAcceptableAuthority } from './h2-authority';
import type { Metrics } from '../metrics/registry';

export type Handler = (req: never) => unknown;

let calls = 0;
/** Whether a CSI call is being served now (a stop then waits a little for it). */
export const inFlight = (): boolean => calls > 0;

export function unary(method: string, fn: Handler, log: Logger, metrics?: Metrics): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const started = Date.now();
    calls++;
    const done = (code: grpc.status): void => {
      calls--;
      metrics?.csiCalls.inc({ method, code: grpc.status[code] });
      metrics?.csiDuration.observe({ method }, (Date.now() - started) / 1000);
    };
    Promise.resolve()
      .then(() => fn(call.request as never))
      .then(
        (reply) => {
          done(grpc.status.OK);
          log.debug({ csi: method, ms: Date.now() - started }, 'csi call');
          callback(null, reply);
        },
        (err: unknown) => {
          const e = toServiceError(err);
          done(e.code);
          log.warn({ csi: method, code: grpc.status[e.code], ms: Date.now() - started, err: e.details, request: summary(call.request) }, 'csi call failed');
          callback(e);
        },
      );
  };
}

/** What a failed call asked, for its log line: ids and paths, never secrets. */
function summary(req: unknown): Record<string, unknown> {
  const r = (req ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of ['name', 'volume_id', 'target_path', 'volume_path']) if (r[k]) out[k] = r[k];
  return out;
}

/**
 * Serves a gRPC server on a unix socket through the :authority rewriter (h2-authority.ts): the
 * socket is ours (net), each connection is handed to grpc-js with its HTTP/2 headers made
 * acceptable to Node. Mode 0600 from the first instant: only root (kubelet) may call.
 */
export async function listenUnix(server: grpc.Server, socket: string, log: Logger): Promise<(graceMs?: number) => Promise<void>> {
  fs.mkdirSync(path.dirname(socket), { recursive: true, mode: 0o755 });
  await clearStaleSocket(socket);
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  let told = false;
  const listener = net.createServer((conn) => {
    injector.injectConnection(withAcceptableAuthority(conn, () => {
      if (told) return;
      told = true;
      log.info({ socket }, 'a client sent the socket path as its HTTP/2 :authority (gRPC-Go before 1.34, as in kubelet 1.20); serving it as "localhost"');
    }));
  });
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => listener.once('error', reject).listen(socket, () => resolve()));
  } finally {
    process.umask(old);
  }
  // Stop: no new connections; calls in flight get `graceMs` to finish (kubelet retries whatever
  // is cut off), then every connection is closed.
  return async (graceMs = 0) => {
    listener.close();
    if (graceMs > 0) {
      injector.drain(graceMs);
      await new Promise((r) => setTimeout(r, graceMs).unref());
    }
    injector.destroy();
  };
}
