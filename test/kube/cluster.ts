// The real cluster test/kube/run.sh started, as the tests see it: kubectl against its API server,
// pods of the local busybox image with a qosd/nvme flexVolume, their logs and events, and qosd's
// own API beside the kubelet.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { request } from '../../src/cli/client';

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the Kubernetes suite with npm run test:kube`);
  return v;
}

export const RUN = env('QOSD_KUBE_RUN');
export const BIN = env('QOSD_KUBE_BIN');
export const QOSD = env('QOSD_KUBE_QOSD');
export const LOGS = env('QOSD_KUBE_LOGS');
export const SOCKET = path.join(QOSD, 'qosd.sock');
const KUBECONFIG = path.join(RUN, 'kubeconfig');
/** The shell variables up.sh wrote (KUBELET_ROOT_DIR, ...). */
export const CLUSTER: Record<string, string> = Object.fromEntries(
  fs.readFileSync(path.join(RUN, 'env'), 'utf8').split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
);

export function kubectl(args: string[], input?: string, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(path.join(BIN, 'kubectl'), ['--kubeconfig', KUBECONFIG, ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

export const qosd = <T>(method: string, url: string, body?: unknown) => request<T>(SOCKET, method, url, body);

export interface ClusterNode {
  name: string;
  /** Its qosd's API socket. */
  socket: string;
}
/**
 * Every node: "localhost" on the host, then node-1, ... (node.sh: namespaces of their own, tainted
 * qosd.test/node=NAME:NoSchedule so that only pods tolerating it go there).
 */
export const NODES: ClusterNode[] = [
  { name: CLUSTER.REALKUBE_NODE_NAME ?? 'localhost', socket: SOCKET },
  ...(CLUSTER.REALKUBE_NODES ?? '').split(',').filter((n) => n !== '').map((name) => ({ name, socket: path.join(env('QOSD_KUBE_DIR'), 'nodes', name, 'qosd', 'qosd.sock') })),
];
export const qosdOn = <T>(node: string, method: string, url: string, body?: unknown) => {
  const n = NODES.find((x) => x.name === node);
  if (!n) throw new Error(`no node ${node} in this cluster (${NODES.map((x) => x.name).join(', ')})`);
  return request<T>(n.socket, method, url, body);
};
/** The toleration of the other nodes' taint. */
export const ANY_NODE = { key: 'qosd.test/node', operator: 'Exists', effect: 'NoSchedule' };

export interface FlexPod {
  name: string;
  /** The container's shell script; /data is the volume. */
  script: string;
  options: Record<string, string>;
  fsType?: string;
  /** default: "default" */
  namespace?: string;
}

/** A hostNetwork pod of the local busybox image with one qosd/nvme flexVolume at /data. */
export function podManifest(p: FlexPod): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: p.name, namespace: p.namespace ?? 'default' },
    spec: {
      hostNetwork: true,
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 2,
      automountServiceAccountToken: false,
      containers: [
        {
          name: 'c',
          image: CLUSTER.REALKUBE_IMAGE ?? 'localhost/busybox:local',
          imagePullPolicy: 'Never',
          // The shell is PID 1: without the trap it ignores SIGTERM and a delete takes 30 s.
          command: ['/bin/sh', '-c', `trap 'exit 0' TERM; ${p.script}`],
          volumeMounts: [{ name: 'data', mountPath: '/data' }],
        },
      ],
      volumes: [{ name: 'data', flexVolume: { driver: 'qosd/nvme', fsType: p.fsType ?? 'ext4', options: p.options } }],
    },
  });
}

export async function createPod(p: FlexPod): Promise<void> {
  await kubectl(['apply', '-f', '-'], podManifest(p));
}

interface PodStatus {
  metadata: { uid: string };
  status: { phase: string; containerStatuses?: { state: { waiting?: { reason: string }; running?: unknown; terminated?: { exitCode: number } } }[] };
}

export async function pod(name: string, namespace = 'default'): Promise<PodStatus> {
  return JSON.parse(await kubectl(['-n', namespace, 'get', 'pod', name, '-o', 'json'])) as PodStatus;
}

export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The container's log once it printed `marker` (a line of its own). */
export async function logsUntil(name: string, marker: string, timeoutMs = 120_000, namespace = 'default'): Promise<string> {
  return until(`"${marker}" in the log of pod ${name}`, timeoutMs, async () => {
    const text = await kubectl(['-n', namespace, 'logs', name]);
    return text.split('\n').includes(marker) ? text : undefined;
  });
}

export async function deletePod(name: string, namespace = 'default'): Promise<void> {
  await kubectl(['-n', namespace, 'delete', 'pod', name, '--ignore-not-found', '--wait=true', '--timeout=90s'], undefined, 120_000);
}

export interface KubeEvent {
  reason: string;
  message: string;
  type: string;
}

/** A pod's events; with its uid, only this pod's (not those of an earlier pod of the same name). */
export async function events(name: string, uid?: string, namespace = 'default'): Promise<KubeEvent[]> {
  const selector = `involvedObject.name=${name}${uid ? `,involvedObject.uid=${uid}` : ''}`;
  const out = JSON.parse(await kubectl(['-n', namespace, 'get', 'events', '--field-selector', selector, '-o', 'json'])) as { items: KubeEvent[] };
  return out.items;
}

/** What is mounted under the kubelet's pods directory now, from the host's mountinfo. */
export function podMounts(): string[] {
  const pods = path.join(CLUSTER.KUBELET_ROOT_DIR!, 'pods');
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(pods + '/'));
}

/** Reads a rate the container printed as `KEY=value`. */
export function figure(log: string, key: string): number {
  const line = log.split('\n').find((l) => l.startsWith(`${key}=`));
  if (!line) throw new Error(`no ${key}= in the log:\n${log}`);
  return Number(line.slice(key.length + 1));
}

/**
 * Restarts a process the harness started (its pid file in RUN): SIGTERM, wait for it to exit,
 * then the same command line again, detached, logging where it logged, under the same pid file
 * (so the harness's tear-down still finds it). `ready` says when it serves again.
 */
export async function restart(name: string, ready: () => Promise<boolean>): Promise<void> {
  const pidFile = path.join(RUN, `${name}.pid`);
  const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  process.kill(pid, 'SIGTERM');
  await until(`${name} (${pid}) to exit`, 30_000, async () => (fs.existsSync(`/proc/${pid}`) ? undefined : true));
  const log = fs.openSync(path.join(LOGS, `${name}.log`), 'a');
  const { spawn } = await import('node:child_process');
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', log, log] });
  child.unref();
  fs.closeSync(log);
  fs.writeFileSync(pidFile, `${child.pid}\n`);
  await until(`${name} to serve again`, 60_000, async () => ((await ready().catch(() => false)) ? true : undefined));
}

export const qosdServes = async (): Promise<boolean> => (await qosd('GET', '/v1/status')).status === 200;
export const kubeletHealthy = async (): Promise<boolean> => {
  const res = await fetch('http://127.0.0.1:10248/healthz');
  return res.ok && (await res.text()) === 'ok';
};
