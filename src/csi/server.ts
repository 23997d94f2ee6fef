// The gRPC servers on unix sockets: CSI (Identity, Controller and Node) on csi.socket, and kubelet's plugin
// registration in <kubelet root>/plugins_registry. Each handler runs as a promise; whatever it
// throws reaches the client as the spec's status code with the message, and a log line.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { clearStaleSocket } from '../util/unix-socket';
import { protos } from './proto';
import { toServiceError } from './status';
import type { CsiIdentity } from './identity';
import type { CsiNode } from './node';
import type { CsiController } from './controller';
import type { CsiRegistration } from './registration';
import { DRIVER_NAME } from './names';
import { withAcceptableAuthority } from './h2-authority';
import type { Metrics } from '../metrics/registry';

type Handler = (req: never) => unknown;

let calls = 0;
/** Whether a CSI call is being served now (a stop then waits a little for it). */
const inFlight = (): boolean => calls > 0;

function unary(method: string, fn: Handler, log: Logger, metrics?: Metrics): grpc.handleUnaryCall<unknown, unknown> {
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
async function listenUnix(server: grpc.Server, socket: string, log: Logger): Promise<(graceMs?: number) => Promise<void>> {
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

export interface CsiServers {
  csiSocket: string;
  registrationSocket: string | undefined;
  close(): Promise<void>;
}

export interface CsiServerOptions {
  socket: string;
  /** <kubelet root>/plugins_registry, or undefined when registration is off (node-driver-registrar does it). */
  registryDir: string | undefined;
  identity: CsiIdentity;
  controller: CsiController;
  node: CsiNode;
  registration: CsiRegistration;
  log: Logger;
  metrics?: Metrics;
}

export async function serveCsi(o: CsiServerOptions): Promise<CsiServers> {
  const p = protos();
  const log = o.log.child({ component: 'csi' });
  const server = new grpc.Server();
  server.addService(p.identity, {
    GetPluginInfo: unary('GetPluginInfo', () => o.identity.getPluginInfo(), log, o.metrics),
    GetPluginCapabilities: unary('GetPluginCapabilities', () => o.identity.getPluginCapabilities(), log, o.metrics),
    Probe: unary('Probe', () => o.identity.probe(), log, o.metrics),
  });
  server.addService(p.controller, {
    CreateVolume: unary('CreateVolume', (r) => o.controller.createVolume(r), log, o.metrics),
    DeleteVolume: unary('DeleteVolume', (r) => o.controller.deleteVolume(r), log, o.metrics),
    ValidateVolumeCapabilities: unary('ValidateVolumeCapabilities', (r) => o.controller.validateVolumeCapabilities(r), log, o.metrics),
    GetCapacity: unary('GetCapacity', (r) => o.controller.getCapacity(r), log, o.metrics),
    ControllerGetCapabilities: unary('ControllerGetCapabilities', () => o.controller.getCapabilities(), log, o.metrics),
    ControllerExpandVolume: unary('ControllerExpandVolume', (r) => o.controller.expandVolume(r), log, o.metrics),
    ControllerModifyVolume: unary('ControllerModifyVolume', (r) => o.controller.modifyVolume(r), log, o.metrics),
  });
  // Stage/Unstage are not offered (no STAGE_UNSTAGE_VOLUME): grpc-js answers them UNIMPLEMENTED.
  server.addService(p.node, {
    NodePublishVolume: unary('NodePublishVolume', (r) => o.node.publish(r), log, o.metrics),
    NodeUnpublishVolume: unary('NodeUnpublishVolume', (r) => o.node.unpublish(r), log, o.metrics),
    NodeGetVolumeStats: unary('NodeGetVolumeStats', (r) => o.node.getVolumeStats(r), log, o.metrics),
    NodeExpandVolume: unary('NodeExpandVolume', (r) => o.node.expand(r), log, o.metrics),
    NodeGetCapabilities: unary('NodeGetCapabilities', () => o.node.getCapabilities(), log, o.metrics),
    NodeGetInfo: unary('NodeGetInfo', () => o.node.getInfo(), log, o.metrics),
  });
  const closeCsi = await listenUnix(server, o.socket, log);

  let regServer: grpc.Server | undefined;
  let closeReg: ((graceMs?: number) => Promise<void>) | undefined;
  let regSocket: string | undefined;
  if (o.registryDir !== undefined) {
    regSocket = path.join(o.registryDir, `${DRIVER_NAME}-reg.sock`);
    regServer = new grpc.Server();
    regServer.addService(p.registration, {
      GetInfo: unary('GetInfo', () => o.registration.getInfo(), log, o.metrics),
      NotifyRegistrationStatus: unary('NotifyRegistrationStatus', (r) => o.registration.notifyRegistrationStatus(r), log, o.metrics),
    });
    closeReg = await listenUnix(regServer, regSocket, log);
  }
  log.info({ socket: o.socket, registration: regSocket ?? 'off' }, 'serving CSI');

  return {
    csiSocket: o.socket,
    registrationSocket: regSocket,
    async close() {
      // The registration socket goes first: kubelet drops the driver rather than calling a dead one.
      if (regServer) {
        await closeReg?.();
        regServer.forceShutdown();
        fs.rmSync(regSocket!, { force: true });
      }
      await closeCsi(inFlight() ? 5000 : 0);
      server.forceShutdown();
    },
  };
}
