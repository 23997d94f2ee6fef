// Installs qosd's systemd units (qosd.socket, qosd.service) from the package's systemd/ folder.
// ExecStart names the node binary this qosctl runs on, the daemon's Node.js flags (node-flags.ts)
// and this package's qosd.js by absolute path: the unit then starts the daemon with the Node.js it
// was installed with, wherever that lives (a private prefix, /opt/node-v24), not whichever `node`
// systemd's PATH finds first.
// Each file is written under a temporary name and renamed into place.
import * as dns from 'node:dns';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { DAEMON_NODE_FLAGS } from './node-flags';
import { loadConfig } from '../config/load';
import { fromKubeconfig } from '../kube/connection';

export const DEFAULT_UNIT_DIR = '/etc/systemd/system';
export const DEFAULT_CONFIG = '/etc/qosd/config.yaml';
const SHIPPED_EXEC = /^ExecStart=\/usr\/local\/bin\/qosd --config \/etc\/qosd\/config\.yaml$/m;

const SHIPPED_IP = /^IPAddressDeny=any\nIPAddressAllow=localhost$/m;

/**
 * Who the daemon talks to over IP besides loopback, from its config: the API server of
 * csi.kubeconfig (its addresses, resolved now), and, for a metrics listener beyond loopback,
 * "any" (scrapers come from wherever Prometheus runs). [] : loopback only.
 */
export async function reachFor(configFile: string): Promise<string[]> {
  const config = loadConfig({ config: configFile });
  const out = new Set<string>();
  const listen = config.metricsListen?.host;
  if (listen !== undefined && !isLoopback(listen)) out.add('any');
  const kubeconfig = config.csi?.kubeconfig;
  if (kubeconfig && kubeconfig !== 'in-cluster') {
    const host = fromKubeconfig(kubeconfig).server.hostname.replace(/^\[|\]$/g, '');
    if (net.isIP(host)) out.add(host);
    else {
      let found: dns.LookupAddress[];
      try {
        found = await dns.promises.lookup(host, { all: true });
      } catch (err) {
        throw new Error(`the API server ${host} of ${kubeconfig} does not resolve (${(err as Error).message}): the unit lets the daemon reach only the addresses it names`);
      }
      for (const a of found) out.add(a.address);
    }
  }
  return [...out].filter((a) => !isLoopback(a));
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * The unit text with ExecStart pointing at this node and this package's daemon, and the IP
 * addresses it may reach: loopback, and `reach` (reachFor; "any" lifts the restriction).
 */
export function serviceUnit(configFile: string, nodePath = process.execPath, reach: readonly string[] = []): string {
  const shipped = fs.readFileSync(path.join(__dirname, '..', '..', 'systemd', 'qosd.service'), 'utf8');
  if (!SHIPPED_EXEC.test(shipped)) throw new Error('the packaged qosd.service has no ExecStart line to set');
  if (!SHIPPED_IP.test(shipped)) throw new Error('the packaged qosd.service has no IPAddressDeny/IPAddressAllow lines to set');
  const daemon = path.join(__dirname, 'qosd.js');
  const quote = (s: string) => (/^[A-Za-z0-9_./:@+=-]+$/.test(s) ? s : JSON.stringify(s));
  const ip = reach.includes('any')
    ? '# metrics.listen is beyond loopback: scrapers may come from anywhere, so IP is not restricted\n# (restrict who reaches the port with the node\'s firewall).'
    : `IPAddressDeny=any\nIPAddressAllow=${['localhost', ...reach].join(' ')}`;
  return shipped
    .replace(SHIPPED_EXEC, `ExecStart=${[nodePath, ...DAEMON_NODE_FLAGS, daemon, '--config', path.resolve(configFile)].map(quote).join(' ')}`)
    .replace(SHIPPED_IP, ip);
}

function writeAtomically(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, text, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

export async function installUnits(unitDir: string, configFile: string): Promise<string[]> {
  const reach = await reachFor(configFile);
  const dir = path.resolve(unitDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const socket = fs.readFileSync(path.join(__dirname, '..', '..', 'systemd', 'qosd.socket'), 'utf8');
  const written = [path.join(dir, 'qosd.socket'), path.join(dir, 'qosd.service')];
  writeAtomically(written[0]!, socket);
  writeAtomically(written[1]!, serviceUnit(configFile, process.execPath, reach));
  return written;
}
