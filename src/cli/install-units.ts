// Installs qosd's systemd units (qosd.socket, qosd.service) from the package's systemd/ folder.
// ExecStart names the node binary this qosctl runs on, the daemon's Node.js flags (node-flags.ts)
// and this package's qosd.js by absolute path: the unit then starts the daemon with the Node.js it
// was installed with, wherever that lives (a private prefix, /opt/node-v24), not whichever `node`
// systemd's PATH finds first.
// Each file is written under a temporary name and renamed into place.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DAEMON_NODE_FLAGS } from './node-flags';

export const DEFAULT_UNIT_DIR = '/etc/systemd/system';
export const DEFAULT_CONFIG = '/etc/qosd/config.yaml';
const SHIPPED_EXEC = /^ExecStart=\/usr\/local\/bin\/qosd --config \/etc\/qosd\/config\.yaml$/m;

/** The unit text with ExecStart pointing at this node and this package's daemon. */
export function serviceUnit(configFile: string, nodePath = process.execPath): string {
  const shipped = fs.readFileSync(path.join(__dirname, '..', '..', 'systemd', 'qosd.service'), 'utf8');
  if (!SHIPPED_EXEC.test(shipped)) throw new Error('the packaged qosd.service has no ExecStart line to set');
  const daemon = path.join(__dirname, 'qosd.js');
  const quote = (s: string) => (/^[A-Za-z0-9_./:@+=-]+$/.test(s) ? s : JSON.stringify(s));
  return shipped.replace(SHIPPED_EXEC, `ExecStart=${[nodePath, ...DAEMON_NODE_FLAGS, daemon, '--config', path.resolve(configFile)].map(quote).join(' ')}`);
}

function writeAtomically(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, text, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

export function installUnits(unitDir: string, configFile: string): string[] {
  const dir = path.resolve(unitDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const socket = fs.readFileSync(path.join(__dirname, '..', '..', 'systemd', 'qosd.socket'), 'utf8');
  const written = [path.join(dir, 'qosd.socket'), path.join(dir, 'qosd.service')];
  writeAtomically(written[0]!, socket);
  writeAtomically(written[1]!, serviceUnit(configFile));
  return written;
}
