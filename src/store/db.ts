// Opens the SQLite state file with the settings a crash-safe daemon needs: WAL so readers never
// block the writer, synchronous=FULL so a committed intent survives power loss (set after
// journal_mode, which would otherwise leave a reopened WAL database at NORMAL), foreign keys on.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS } from './migrations';

export type Db = Database.Database;

const NATIVE_DIR = path.join(__dirname, '..', 'native');

/** The package's SQLite addon was built for another Node.js than the one running it. */
export class AddonAbiMismatch extends Error {}

/**
 * The SQLite addon the build staged for this Node.js ABI (scripts/stage-native.js), so an
 * installed package needs no compiler; undefined lets better-sqlite3 find its own build.
 * A package built for another Node.js is refused with both versions named (AddonAbiMismatch).
 */
export function nativeBinding(dir = NATIVE_DIR, abi = process.versions.modules): string | undefined {
  let staged: string[];
  try {
    staged = fs.readdirSync(dir).filter((f) => /^better_sqlite3-abi\d+\.node$/.test(f));
  } catch {
    return undefined;
  }
  const mine = `better_sqlite3-abi${abi}.node`;
  if (staged.includes(mine)) return path.join(dir, mine);
  if (staged.length === 0) return undefined;
  throw new AddonAbiMismatch(`this qosd package was built for Node.js ABI ${staged.map((f) => /abi(\d+)/.exec(f)![1]).join(', ')}, but runs on ${process.version} (ABI ${abi}): reinstall qosd from a package built with this Node.js major (npm ci && npm run build && npm pack on a machine running Node.js ${process.versions.node.split('.')[0]})`);
}

export function openDb(file: string): Db {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const binding = nativeBinding();
  const db = new Database(file, { timeout: 5000, ...(binding ? { nativeBinding: binding } : {}) });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

/**
 * A read-only connection to a state file another connection (the daemon's) has opened and
 * migrated: for the periodic jobs' worker thread (periodic/worker.ts), which reads in WAL beside
 * the writer and never writes.
 */
export function openReader(file: string): Db {
  const binding = nativeBinding();
  return new Database(file, { readonly: true, fileMustExist: true, timeout: 5000, ...(binding ? { nativeBinding: binding } : {}) });
}

export function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`the state database is at schema version ${current}, newer than this qosd (${MIGRATIONS.length}); refusing to run`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

/**
 * A statement cache for one connection: preparing is most of the cost of a point query (it was
 * ~20% of the daemon's CPU under API load before caching), and the set of SQL strings is small.
 */
export function statementCache(db: Db): (sql: string) => Database.Statement {
  const cache = new Map<string, Database.Statement>();
  return (sql) => {
    let st = cache.get(sql);
    if (!st) {
      st = db.prepare(sql);
      cache.set(sql, st);
    }
    return st;
  };
}

/**
 * All rows of a statement as plain objects, fetched in better-sqlite3's raw (array) mode and
 * keyed in JS: its object mode costs several times more per row of this width, and list() runs on
 * every scrape and API listing.
 */
export function allRows<T>(st: Database.Statement, ...params: unknown[]): T[] {
  const names = st.columns().map((c) => c.name);
  const rows = st.raw(true).all(...params) as unknown[][];
  st.raw(false);
  const out: T[] = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const o: Record<string, unknown> = {};
    for (let c = 0; c < names.length; c++) o[names[c]!] = r[c];
    out[i] = o as T;
  }
  return out;
}
