// Calls the installed flex driver exactly as kubelet does: no shell of kubelet's own, argv as
// given, `env -i` with a minimal PATH, cwd /, stdin /dev/null, stdout and stderr as ONE stream
// (the sh here only joins fd 2 onto fd 1 and execs the driver). The reply is judged like kubelet's
// DriverCall.Run: the whole output must be one JSON object.
import { spawn } from 'node:child_process';

export interface DriverResult {
  output: string;
  exitCode: number | null;
  reply: { status: string; message?: string; capabilities?: Record<string, unknown> | null; [k: string]: unknown };
  ms: number;
}

export function callDriver(driver: string, args: string[], env: Record<string, string> = {}): Promise<DriverResult> {
  const envArgs = ['-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', ...Object.entries(env).map(([k, v]) => `${k}=${v}`)];
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/env', [...envArgs, '/bin/sh', '-c', 'exec "$0" "$@" 2>&1', driver, ...args], {
      cwd: '/',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (exitCode) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      let reply: DriverResult['reply'];
      try {
        reply = JSON.parse(output);
      } catch {
        return reject(new Error(`driver output is not exactly one JSON value: ${JSON.stringify(output)}`));
      }
      if (reply === null || typeof reply !== 'object' || Array.isArray(reply)) {
        return reject(new Error(`driver output is not a JSON object: ${output}`));
      }
      resolve({ output, exitCode, reply, ms });
    });
  });
}

/** kubelet's pod volume dir for this driver: <root>/pods/<uid>/volumes/qosd~nvme/<name>. */
export function podVolumeDir(kubeletRoot: string, podUid: string, name: string): string {
  return `${kubeletRoot}/pods/${podUid}/volumes/qosd~nvme/${name}`;
}

/** The JSON options kubelet builds for mount (keys sorted, as Go's json.Marshal writes them). */
export function mountOptions(o: { podUid: string; volumeName: string; fsType?: string; readwrite?: string; namespace?: string; user?: Record<string, string> }): string {
  const opts: Record<string, string> = {
    'kubernetes.io/fsType': o.fsType ?? '',
    'kubernetes.io/pod.name': 'db-0',
    'kubernetes.io/pod.namespace': o.namespace ?? 'default',
    'kubernetes.io/pod.uid': o.podUid,
    'kubernetes.io/pvOrVolumeName': o.volumeName,
    'kubernetes.io/readwrite': o.readwrite ?? 'rw',
    'kubernetes.io/serviceAccount.name': 'default',
    ...o.user,
  };
  return JSON.stringify(Object.fromEntries(Object.entries(opts).sort(([a], [b]) => (a < b ? -1 : 1))));
}
