// How qosd reaches the Kubernetes API server: from a kubeconfig file (its current context: server,
// CA, client certificate or bearer token) or, inside a pod, from the service account Kubernetes
// mounts. Only what the client needs is read; anything else in the file is ignored.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { execTokenSource, type ExecConfig } from './exec-credential';

export interface KubeConnection {
  server: URL;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** A fixed bearer token, or a file re-read at each request (bound service account tokens rotate). */
  token?: string;
  tokenFile?: string;
  /** A token from an exec credential plugin, run again when it expires (exec-credential.ts). */
  tokenSource?: () => Promise<string>;
  insecureSkipTlsVerify: boolean;
  /** Where this came from, for logs and the status. */
  source: string;
  /** A kubeconfig file any user on the node can read (its credentials with it). */
  worldReadable?: boolean;
}

/**
 * What is weak about a connection, each a sentence for the log at start (loud, not fatal: a test
 * cluster may have a reason): a bearer token sent in clear, a server whose certificate is not
 * checked.
 */
export function weaknesses(c: KubeConnection): string[] {
  const out: string[] = [];
  if (c.server.protocol === 'http:') out.push(`the API server ${c.server.origin} is plain http: qosd's credentials cross the network in clear; use https`);
  if (c.worldReadable) out.push(`${c.source} can be read by every user on the node, and its credentials with it; chmod 600 it`);
  if (c.insecureSkipTlsVerify) out.push(`insecure-skip-tls-verify is set for ${c.server.origin}: any server answering there is trusted with qosd's credentials; give the cluster's CA instead`);
  return out;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export class KubeconfigError extends Error {}

/** Inside a pod: KUBERNETES_SERVICE_HOST/PORT and the mounted service account. */
export function inCluster(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): KubeConnection {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) throw new KubeconfigError('in-cluster: KUBERNETES_SERVICE_HOST is not set (not running in a pod?)');
  const tokenFile = path.join(dir, 'token');
  if (!fs.existsSync(tokenFile)) throw new KubeconfigError(`in-cluster: ${tokenFile} does not exist (no service account token mounted?)`);
  return {
    server: new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`),
    ca: fs.readFileSync(path.join(dir, 'ca.crt')),
    tokenFile,
    insecureSkipTlsVerify: false,
    source: 'in-cluster',
  };
}

type Named<T> = { name?: string } & T;
interface KubeconfigFile {
  'current-context'?: string;
  contexts?: Named<{ context?: { cluster?: string; user?: string } }>[];
  clusters?: Named<{ cluster?: { server?: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string; 'insecure-skip-tls-verify'?: boolean } }>[];
  users?: Named<{ user?: { token?: string; tokenFile?: string; 'client-certificate'?: string; 'client-certificate-data'?: string; 'client-key'?: string; 'client-key-data'?: string; exec?: ExecConfig } }>[];
}

/** A kubeconfig file's current context. Relative file paths in it are relative to the file. */
export function fromKubeconfig(file: string): KubeConnection {
  const fail = (why: string): never => {
    throw new KubeconfigError(`kubeconfig ${file}: ${why}`);
  };
  // It says where qosd's credentials go: one that any user can change is refused.
  let mode = 0;
  try {
    mode = fs.statSync(file).mode;
  } catch (err) {
    fail((err as Error).message);
  }
  if (mode & 0o002) fail(`mode 0${(mode & 0o777).toString(8)} lets every user on the node change it (and so where qosd's credentials go); chmod 600 it`);
  let doc: KubeconfigFile;
  try {
    doc = (parse(fs.readFileSync(file, 'utf8')) ?? {}) as KubeconfigFile;
  } catch (err) {
    return fail((err as Error).message);
  }
  const contextName = doc['current-context'] ?? fail('no current-context');
  const context = doc.contexts?.find((c) => c.name === contextName)?.context ?? fail(`context "${contextName}" is not defined`);
  const cluster = doc.clusters?.find((c) => c.name === context.cluster)?.cluster ?? fail(`cluster "${context.cluster}" is not defined`);
  const user = doc.users?.find((u) => u.name === context.user)?.user ?? {};
  const server = cluster.server ?? fail(`cluster "${context.cluster}" has no server`);
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return fail(`server "${server}" is not a URL`);
  }
  const dir = path.dirname(file);
  const read = (data: string | undefined, name: string | undefined): Buffer | undefined => {
    if (data) return Buffer.from(data, 'base64');
    if (!name) return undefined;
    try {
      return fs.readFileSync(path.resolve(dir, name));
    } catch (err) {
      return fail((err as Error).message);
    }
  };
  const c: KubeConnection = { server: url, insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true, source: file, worldReadable: (mode & 0o004) !== 0 };
  const ca = read(cluster['certificate-authority-data'], cluster['certificate-authority']);
  const cert = read(user['client-certificate-data'], user['client-certificate']);
  const key = read(user['client-key-data'], user['client-key']);
  if (ca) c.ca = ca;
  if (cert) c.cert = cert;
  if (key) c.key = key;
  if (user.token) c.token = user.token;
  if (user.tokenFile) c.tokenFile = path.resolve(dir, user.tokenFile);
  if (user.exec) {
    if (typeof user.exec.command !== 'string' || !user.exec.command) fail(`user "${context.user}": exec.command is missing`);
    c.tokenSource = execTokenSource(user.exec, dir);
  }
  if (!c.token && !c.tokenFile && !c.tokenSource && !(c.cert && c.key)) fail(`user "${context.user}" has neither a token nor a client certificate and key (nor an exec credential plugin)`);
  return c;
}

/** "in-cluster" or a kubeconfig path. */
export function connectionFor(setting: string): KubeConnection {
  return setting === 'in-cluster' ? inCluster() : fromKubeconfig(setting);
}
