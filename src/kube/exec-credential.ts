// A kubeconfig user with an `exec:` credential plugin (EKS's aws, GKE's gke-gcloud-auth-plugin,
// kubelogin for OIDC): the command runs, its ExecCredential's status gives a bearer token, kept
// until it expires (or for five minutes when it names no expiry), then asked for again.
import { execFile } from 'node:child_process';

export interface ExecConfig {
  command: string;
  args?: string[];
  env?: { name: string; value: string }[] | null;
  apiVersion?: string;
}

interface ExecCredential {
  status?: { token?: string; expirationTimestamp?: string };
}

const FALLBACK_MS = 5 * 60_000;

/** Runs the plugin (never through a shell, bounded in time), giving its standard output. */
function runPlugin(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, env, timeout: 30_000, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 1 << 20 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

/**
 * A function giving the current token, running the plugin when the last one has expired (off the
 * daemon's thread: a plugin may take a second or more). Calls meanwhile share one run.
 */
export function execTokenSource(exec: ExecConfig, baseDir: string): () => Promise<string> {
  let token: string | undefined;
  let until = 0;
  let running: Promise<string> | undefined;
  return () => {
    if (token !== undefined && Date.now() < until) return Promise.resolve(token);
    running ??= fetchToken().finally(() => (running = undefined));
    return running;
  };

  async function fetchToken(): Promise<string> {
    const env = { ...process.env, ...Object.fromEntries((exec.env ?? []).map((e) => [e.name, e.value])) };
    // What the plugin protocol hands the plugin: which ExecCredential version to answer in.
    env.KUBERNETES_EXEC_INFO = JSON.stringify({ apiVersion: exec.apiVersion ?? 'client.authentication.k8s.io/v1', kind: 'ExecCredential', spec: { interactive: false } });
    let out: string;
    try {
      out = await runPlugin(exec.command, exec.args ?? [], baseDir, env);
    } catch (err) {
      throw new Error(`the kubeconfig's exec credential plugin ${exec.command} failed: ${(err as Error).message.split('\n')[0]}`);
    }
    let cred: ExecCredential;
    try {
      cred = JSON.parse(out) as ExecCredential;
    } catch {
      throw new Error(`the kubeconfig's exec credential plugin ${exec.command} did not print an ExecCredential`);
    }
    if (!cred.status?.token) throw new Error(`the kubeconfig's exec credential plugin ${exec.command} gave no token (client certificates from a plugin are not supported)`);
    token = cred.status.token;
    const expires = cred.status.expirationTimestamp ? Date.parse(cred.status.expirationTimestamp) : NaN;
    until = Number.isFinite(expires) ? expires - 30_000 : Date.now() + FALLBACK_MS;
    return token;
  }
}
