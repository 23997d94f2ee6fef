// `qosd scheduler-extender`: placement by IO headroom for schedulers without storage-capacity
// scoring (scheduler/). It filters out the nodes whose qosd cannot take a pod's guaranteed claims
// and scores the rest by the device time they have left, from the CSIStorageCapacity objects each
// node's provisioner publishes. It holds no state; what it writes to the cluster is an event on
// each pod that waits because no node's IO budget can take it (scheduler/explainer.ts).
import * as http from 'node:http';
import pino from 'pino';
import { KubeClient } from '../kube/client';
import { KubeconfigError, connectionFor, weaknesses } from '../kube/connection';
import { allNodeLabels, nodeLabels, pendingClaims, publishedCapacities, unschedulablePods, warnPod } from '../scheduler/cluster';
import { Explainer } from '../scheduler/explainer';
import { extenderHandler } from '../scheduler/extender-server';
import { earlyStop } from './early-signals';

export interface ExtenderFlags {
  listen: string;
  kubeconfig: string;
  logLevel: string;
}

export const EXTENDER_DEFAULTS = { listen: '127.0.0.1:8998', kubeconfig: 'in-cluster', logLevel: 'info' } as const;
/** How often the pods no node can take are explained (scheduler/explainer.ts). */
const EXPLAIN_EVERY_MS = 5_000;
const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Checks the flags; the message names the flag. */
export function checkedExtenderFlags(f: ExtenderFlags): { host: string; port: number; kubeconfig: string; logLevel: string } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[0-9.]+|localhost):(\d{1,5})$/.exec(f.listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new Error(`--listen: "${f.listen}" must be an address and port (127.0.0.1:8998, [::1]:8998)`);
  if (!LEVELS.includes(f.logLevel)) throw new Error(`--log-level: "${f.logLevel}" must be one of ${LEVELS.join(', ')}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port, kubeconfig: f.kubeconfig, logLevel: f.logLevel };
}

export async function runExtender(flags: ExtenderFlags): Promise<void> {
  let o;
  let client: KubeClient;
  try {
    o = checkedExtenderFlags(flags);
    client = new KubeClient(connectionFor(o.kubeconfig));
  } catch (err) {
    const prefix = err instanceof KubeconfigError ? '--kubeconfig: ' : '';
    process.stderr.write(`qosd scheduler-extender: ${prefix}${(err as Error).message}\n`);
    process.exit(2);
  }
  const log = pino({ level: o.logLevel }).child({ component: 'scheduler-extender' });
  for (const weak of weaknesses(client.connection)) log.warn({ kubeconfig: client.connection.source }, `API server access: ${weak}`);
  const cluster = {
    pendingClaims: (pod: Parameters<typeof pendingClaims>[1]) => pendingClaims(client, pod),
    publishedCapacities: () => publishedCapacities(client),
    nodeLabels: (names: readonly string[]) => nodeLabels(client, names),
  };
  const server = http.createServer({ requestTimeout: 30_000 }, extenderHandler(cluster, log));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, resolve);
  });
  log.info({ listen: flags.listen, apiServer: client.connection.server.host, source: client.connection.source }, 'qosd scheduler-extender serving');
  const explaining = new Explainer(
    {
      unschedulablePods: () => unschedulablePods(client),
      pendingClaims: (pod) => pendingClaims(client, pod),
      publishedCapacities: () => publishedCapacities(client),
      allNodeLabels: () => allNodeLabels(client),
      warn: (pod, reason, message) => warnPod(client, pod, reason, message, 'qosd-scheduler-extender'),
    },
    log,
  ).start(EXPLAIN_EVERY_MS);
  const stop = (signal: string): void => {
    log.info({ signal }, 'qosd scheduler-extender stopping');
    explaining.stop();
    server.close(() => {
      client.close();
      process.exit(0);
    });
    server.closeIdleConnections();
  };
  earlyStop.handler = stop;
  if (earlyStop.signal) stop(earlyStop.signal);
}
