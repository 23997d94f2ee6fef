// `qosd csi-controller`: the central CSI endpoint for external-resizer (csi/central.ts). It holds
// no volumes and no state: each call is carried to the owning node's qosd through the API server.
import * as path from 'node:path';
import pino from 'pino';
import { KubeClient } from '../kube/client';
import { KubeconfigError, connectionFor, weaknesses } from '../kube/connection';
import { CsiCentralController } from '../csi/central';
import { serveCentral } from '../csi/central-server';
import { CsiIdentity } from '../csi/identity';
import { earlyStop } from './early-signals';

export interface CentralFlags {
  socket: string;
  kubeconfig: string;
  waitSeconds: string;
  logLevel: string;
}

export const CENTRAL_DEFAULTS = { socket: '/csi/csi.sock', kubeconfig: 'in-cluster', waitSeconds: '8', logLevel: 'info' } as const;
const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Checks the flags; the message names the flag. */
function checked(f: CentralFlags): { socket: string; kubeconfig: string; waitMs: number; logLevel: string } {
  if (!path.isAbsolute(f.socket) || !f.socket.endsWith('.sock')) throw new Error(`--socket: "${f.socket}" must be an absolute path ending in .sock`);
  const wait = Number(f.waitSeconds);
  if (!Number.isFinite(wait) || wait < 1 || wait > 120) throw new Error(`--wait-seconds: "${f.waitSeconds}" must be a number of seconds from 1 to 120 (below the sidecar's --timeout)`);
  if (!LEVELS.includes(f.logLevel)) throw new Error(`--log-level: "${f.logLevel}" must be one of ${LEVELS.join(', ')}`);
  return { socket: f.socket, kubeconfig: f.kubeconfig === 'in-cluster' ? f.kubeconfig : path.resolve(f.kubeconfig), waitMs: wait * 1000, logLevel: f.logLevel };
}

export async function runCentral(flags: CentralFlags, version: string): Promise<void> {
  let o;
  let client;
  try {
    o = checked(flags);
    client = new KubeClient(connectionFor(o.kubeconfig));
  } catch (err) {
    const prefix = err instanceof KubeconfigError ? '--kubeconfig: ' : '';
    process.stderr.write(`qosd csi-controller: ${prefix}${(err as Error).message}\n`);
    process.exit(2);
  }
  const log = pino({ level: o.logLevel }).child({ component: 'csi-controller' });
  for (const weak of weaknesses(client.connection)) log.warn({ kubeconfig: client.connection.source }, `API server access: ${weak}`);
  let closing = false;
  const identity = new CsiIdentity({ version, problem: () => (closing ? 'it is shutting down' : undefined) });
  const central = new CsiCentralController({ client, log, waitMs: o.waitMs });
  const server = await serveCentral(o.socket, identity, central, log);
  log.info({ socket: o.socket, apiServer: client.connection.server.host, source: client.connection.source, waitMs: o.waitMs }, 'qosd csi-controller serving');
  const stop = (signal: string): void => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'qosd csi-controller stopping');
    server.close().then(() => {
      client.close();
      process.exit(0);
    }, () => process.exit(1));
  };
  earlyStop.handler = stop;
  if (earlyStop.signal) stop(earlyStop.signal);
}
