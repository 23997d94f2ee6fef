// The CSI and plugin-registration protos (proto/ at the package root), loaded once. Field names
// stay as written (volume_id), int64 travels as a decimal string, enums by name, and a oneof also
// names the member that is set (access_type: 'mount' | 'block').
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_DIR = path.join(__dirname, '..', '..', 'proto');

const LOAD_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

interface Loaded {
  identity: grpc.ServiceDefinition;
  controller: grpc.ServiceDefinition;
  node: grpc.ServiceDefinition;
  registration: grpc.ServiceDefinition;
  /** Client constructors, for tests and qosctl. */
  clients: { Identity: grpc.ServiceClientConstructor; Controller: grpc.ServiceClientConstructor; Node: grpc.ServiceClientConstructor; Registration: grpc.ServiceClientConstructor };
}

let loaded: Loaded | undefined;

export function protos(): Loaded {
  if (loaded) return loaded;
  const csi = grpc.loadPackageDefinition(protoLoader.loadSync(path.join(PROTO_DIR, 'csi.proto'), LOAD_OPTIONS)) as unknown as {
    csi: { v1: { Identity: grpc.ServiceClientConstructor; Controller: grpc.ServiceClientConstructor; Node: grpc.ServiceClientConstructor } };
  };
  const reg = grpc.loadPackageDefinition(protoLoader.loadSync(path.join(PROTO_DIR, 'pluginregistration.proto'), LOAD_OPTIONS)) as unknown as {
    pluginregistration: { Registration: grpc.ServiceClientConstructor };
  };
  const { Identity, Controller, Node } = csi.csi.v1;
  const { Registration } = reg.pluginregistration;
  loaded = {
    identity: Identity.service, controller: Controller.service, node: Node.service, registration: Registration.service,
    clients: { Identity, Controller, Node, Registration },
  };
  return loaded;
}
