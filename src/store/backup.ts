// An online copy of the state database (SQLite's backup API, page by page beside the daemon's
// writes): what an operator keeps before an upgrade, and restores by starting qosd on it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Store } from './store';
import { QosdError } from '../model/errors';

/** Copies the store to `file` (absolute, not existing, in an existing directory); returns its size. */
export async function backupStore(store: Store, file: string): Promise<number> {
  if (!path.isAbsolute(file)) throw new QosdError('InvalidArgument', `file: ${file} must be an absolute path`);
  if (fs.existsSync(file)) throw new QosdError('AlreadyExists', `file: ${file} exists; a backup never overwrites anything`);
  if (!fs.existsSync(path.dirname(file))) throw new QosdError('InvalidArgument', `file: ${path.dirname(file)} does not exist`);
  await store.db.backup(file);
  fs.chmodSync(file, 0o600);
  return fs.statSync(file).size;
}
