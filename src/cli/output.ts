// How qosctl prints: tables for people, the API's JSON with -o json, and one readable error line
// with a meaningful exit status (1: the daemon refused or is unreachable, 2: bad arguments).
import { InvalidArgumentError, type Command } from 'commander';
import { ApiError } from './client';
import { formatBytes, parseQuantity } from '../util/quantity';
import { humanCount, humanRate } from '../util/human';

export interface Globals {
  socket: string;
  /** table: what fits 120 columns; wide: every column; json: the API's JSON. */
  output: 'table' | 'wide' | 'json';
}

export type Figures = Partial<Record<'readIops' | 'writeIops' | 'readBps' | 'writeBps', number>>;

export function globals(cmd: Command): Globals {
  return cmd.optsWithGlobals<Globals>();
}

export function emit(g: Globals, json: unknown, table: (wide: boolean) => void): void {
  if (g.output === 'json') process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else table(g.output === 'wide');
}

/** A byte rate as given (10M, 4Mi) where it has a short exact form, else three digits (1.61G). */
function bps(n: number): string {
  const exact = formatBytes(n);
  return exact === String(n) && n >= 1000 ? humanRate(n).slice(0, -2) : exact;
}

export function figures(f: Figures): string {
  const parts: string[] = [];
  if (f.readIops !== undefined) parts.push(`rIOPS=${f.readIops}`);
  if (f.writeIops !== undefined) parts.push(`wIOPS=${f.writeIops}`);
  if (f.readBps !== undefined) parts.push(`rBps=${bps(f.readBps)}`);
  if (f.writeBps !== undefined) parts.push(`wBps=${bps(f.writeBps)}`);
  return parts.join(' ') || '-';
}

/** A pool's four corner figures, short: "200k/100k IOPS 2G/1G B/s" (read/write). */
export function corners(f: Figures): string {
  const pair = (r: number | undefined, w: number | undefined, fmt: (n: number) => string) => `${r === undefined ? '-' : fmt(r)}/${w === undefined ? '-' : fmt(w)}`;
  if (Object.keys(f).length === 0) return '-';
  return `${pair(f.readIops, f.writeIops, humanCount)} IOPS ${pair(f.readBps, f.writeBps, (n) => humanRate(n).slice(0, -2))} B/s`;
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
