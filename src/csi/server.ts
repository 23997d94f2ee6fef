// The node's gRPC servers on unix sockets: CSI (Identity, Controller and Node) on csi.socket, and
// kubelet's plugin registration in <kubelet root>/plugins_registry.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { protos } from './proto';
import type { CsiIdentity } from './identity';
import type { CsiNode } from './node';
import type { CsiController } from './controller';
import type { CsiRegistration } from './registration';
import { DRIVER_NAME } from './names';
import { inFlight, listenUnix, unary } from './grpc-unix';
import type { Metrics } from '../metrics/registry';

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
