// The central controller's gRPC server (`qosd csi-controller`): Identity and the Controller RPCs
// external-resizer calls, on one unix socket shared with the sidecar in its pod.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { protos } from './proto';
import { listenUnix, unary, inFlight } from './grpc-unix';
import { CsiError } from './status';
import type { CsiIdentity } from './identity';
import type { CsiCentralController } from './central';

export interface CentralServer {
  socket: string;
  close(): Promise<void>;
}

export async function serveCentral(socket: string, identity: CsiIdentity, central: CsiCentralController, log: Logger): Promise<CentralServer> {
  const p = protos();
  const server = new grpc.Server();
  server.addService(p.identity, {
    GetPluginInfo: unary('GetPluginInfo', () => identity.getPluginInfo(), log),
    GetPluginCapabilities: unary('GetPluginCapabilities', () => identity.getPluginCapabilities(), log),
    Probe: unary('Probe', async () => {
      const problem = await central.probe();
      if (problem) throw new CsiError(grpc.status.FAILED_PRECONDITION, `qosd csi-controller cannot serve: ${problem}`);
      return identity.probe();
    }, log),
  });
  // CreateVolume, DeleteVolume and GetCapacity are the node's (external-provisioner runs per node):
  // grpc-js answers them UNIMPLEMENTED here, and ControllerGetCapabilities does not offer them.
  server.addService(p.controller, {
    ControllerGetCapabilities: unary('ControllerGetCapabilities', () => central.getCapabilities(), log),
    ControllerExpandVolume: unary('ControllerExpandVolume', (r) => central.expandVolume(r), log),
    ControllerModifyVolume: unary('ControllerModifyVolume', (r) => central.modifyVolume(r), log),
  });
  const close = await listenUnix(server, socket, log);
  log.info({ socket }, 'serving the central CSI controller');
  return {
    socket,
    async close() {
      await close(inFlight() ? 5000 : 0);
      server.forceShutdown();
    },
  };
}
