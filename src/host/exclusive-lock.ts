// An exclusive lock on a file, held for as long as the holder keeps it open, and the pid of
// whoever holds it when it cannot be taken. Node.js has no flock(2); SQLite's exclusive locking
// mode takes the kernel's POSIX record locks and keeps them until the connection closes, so the
// lock file is a tiny SQLite database nothing else reads. The kernel drops the lock when the
// holder dies, however it dies, so a crash never leaves a stale lock behind.
import * as fs from 'node:fs';
import Database from 'better-sqlite3';
import { decodeRdev } from './block-device';
import type { HostRoot } from './host-root';

export interface HeldLock {
  readonly file: string;
  release(): void;
}

export class LockHeld extends Error {
  constructor(
    readonly file: string,
    /** The holder's pid as the kernel lists it, or undefined when it could not be read. */
    readonly holder: number | undefined,
  ) {
    super(`${file} is locked by ${holder !== undefined ? `process ${holder}` : 'another process'}`);
  }
}

/**
 * Takes the lock on `file` (created 0600 when missing) without waiting: a held lock throws
 * LockHeld naming the holder. `nativeBinding`: the SQLite addon to load (see store/db.ts).
 */
export function takeExclusiveLock(root: HostRoot, file: string, nativeBinding?: string): HeldLock {
  const db = new Database(file, { timeout: 0, ...(nativeBinding ? { nativeBinding } : {}) });
  try {
    fs.chmodSync(file, 0o600);
    db.pragma('locking_mode = EXCLUSIVE');
    // The first write transaction takes the EXCLUSIVE lock; in this mode it is never given back.
    db.exec('BEGIN EXCLUSIVE; COMMIT');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new LockHeld(file, lockHolder(root, file));
    throw err;
  }
  return {
    file,
    release: () => db.close(),
  };
}

/** The pid holding a POSIX lock on `file`, from the kernel's list of locks. */
export function lockHolder(root: HostRoot, file: string): number | undefined {
  let st: fs.BigIntStats;
  let text: string;
  try {
    st = fs.statSync(file, { bigint: true });
    text = fs.readFileSync(`${root.proc}/locks`, 'utf8');
  } catch {
    return undefined;
  }
  const { major, minor } = decodeRdev(st.dev);
  const id = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
  for (const line of text.split('\n')) {
    // "1: POSIX  ADVISORY  WRITE 1234 fe:00:9979417 1073741824 1073742335"; a waiter's line has "->".
    const f = line.trim().split(/\s+/);
    if (f[1] === '->' || f[1] !== 'POSIX' || f[5] !== id) continue;
    const pid = Number(f[4]);
    if (Number.isInteger(pid) && pid > 0) return pid;
  }
  return undefined;
}
