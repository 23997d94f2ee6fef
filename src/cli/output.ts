// How qosctl prints: tables for people, the API's JSON with -o json, and one readable error line
// with a meaningful exit status (1: the daemon refused or is unreachable, 2: bad arguments).
import { InvalidArgumentError, type Command } from 'commander';
import { ApiError } from './client';
import { formatBytes, parseQuantity } from '../util/quantity';

export interface Globals {
  socket: string;
  output: 'table' | 'json';
}

export type Figures = Partial<Record<'readIops' | 'writeIops' | 'readBps' | 'writeBps', number>>;

export function globals(cmd: Command): Globals {
  return cmd.optsWithGlobals<Globals>();
}

export function emit(g: Globals, json: unknown, table: () => void): void {
  if (g.output === 'json') process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else table();
}

export function figures(f: Figures): string {
  const parts: string[] = [];
  if (f.readIops !== undefined) parts.push(`rIOPS=${f.readIops}`);
  if (f.writeIops !== undefined) parts.push(`wIOPS=${f.writeIops}`);
  if (f.readBps !== undefined) parts.push(`rBps=${formatBytes(f.readBps)}`);
  if (f.writeBps !== undefined) parts.push(`wBps=${formatBytes(f.writeBps)}`);
  return parts.join(' ') || '-';
}

/** A commander argument parser for a positive integer or quantity, naming the flag on error. */
export function positive(flag: string): (v: string) => number {
  return (v: string) => {
    const n = parseQuantity(v);
    if (typeof n !== 'number') throw new InvalidArgumentError(`${flag}: ${n.error}`);
    return n;
  };
}

export class UsageError extends Error {}

/** Wraps a command's action: errors become one line on stderr and an exit status. */
export function action<T, A extends unknown[]>(fn: (this: T, ...args: A) => Promise<void>): (this: T, ...args: A) => Promise<void> {
  // A function, not an arrow: commander passes the command as `this`.
  return async function (this: T, ...args: A) {
    try {
      await fn.apply(this, args);
    } catch (err) {
      if (err instanceof ApiError) {
        process.stderr.write(`qosctl: ${err.code !== 'Unavailable' ? `${err.code}: ` : ''}${err.message}\n`);
        process.exit(1);
      }
      if (err instanceof UsageError || err instanceof InvalidArgumentError) {
        process.stderr.write(`qosctl: ${(err as Error).message}\n`);
        process.exit(2);
      }
      process.stderr.write(`qosctl: ${(err as Error).message}\n`);
      process.exit(1);
    }
  };
}
