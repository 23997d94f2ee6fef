// The one way qosd runs a node tool: execFile with an argument array (never a shell string), a
// timeout, a minimal predictable environment, and stdin closed. Failures become ExecError with
// the tool's own stderr, which is what an operator needs to see.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export class ExecError extends Error {
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    reason: string,
  ) {
    super(`${command} ${args.join(' ')}: ${reason}${stderr.trim() ? `: ${stderr.trim()}` : ''}`);
  }
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  /** Exit codes that are answers rather than failures (blkid exits 2 for "nothing found"). */
  okExitCodes?: readonly number[];
}

/** The PATH every node tool runs with. */
export const TOOL_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const PATH = TOOL_PATH;

/** Where `command` would be found on the PATH qosd runs tools with, or undefined. */
export function which(command: string): string | undefined {
  for (const dir of PATH.split(':')) {
    const full = path.join(dir, command);
    try {
      fs.accessSync(full, fs.constants.X_OK);
      return full;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

export function run(command: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult & { code: number }> {
  const timeout = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args as string[],
      { timeout, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, env: { PATH, LC_ALL: 'C' }, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) return resolve({ stdout, stderr, code: 0 });
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string };
        if (typeof e.code === 'number' && opts.okExitCodes?.includes(e.code)) {
          return resolve({ stdout, stderr, code: e.code });
        }
        let reason: string;
        if (e.killed || e.signal === 'SIGKILL') reason = `timed out after ${timeout} ms`;
        else if (e.code === 'ENOENT') reason = 'command not found (is it installed?)';
        else if (typeof e.code === 'number') reason = `exited with status ${e.code}`;
        else reason = e.message;
        reject(new ExecError(command, args, typeof e.code === 'number' ? e.code : null, stderr ?? '', reason));
      },
    );
    child.stdin?.end();
  });
}
