// Installs the flex driver where kubelet probes for it: <plugin-dir>/qosd~nvme/nvme. The file is
// written under a dot-prefixed name (kubelet's prober ignores those) and renamed into place, so
// kubelet never runs a half-written driver. The shebang names this node binary by absolute path
// (kubelet's PATH is minimal) and the socket is baked in, so no environment is needed.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const DEFAULT_PLUGIN_DIR = '/usr/libexec/kubernetes/kubelet-plugins/volume/exec';
const SOCKET_LINE = 'const INSTALLED_SOCKET = undefined;';

export function driverSource(socket: string | undefined, nodePath = process.execPath): string {
  const src = fs.readFileSync(path.join(__dirname, '..', 'flex', 'driver.js'), 'utf8');
  const lines = src.split('\n');
  if (!lines[0]?.startsWith('#!')) throw new Error('the built flex driver has no shebang line');
  // --no-warnings: a Node warning on stderr would break kubelet's JSON parse of the output.
  lines[0] = `#!${nodePath} --no-warnings`;
  let out = lines.join('\n');
  if (socket !== undefined) {
    if (!out.includes(SOCKET_LINE)) throw new Error('the built flex driver has no socket line to set');
    out = out.replace(SOCKET_LINE, `const INSTALLED_SOCKET = ${JSON.stringify(path.resolve(socket))};`);
  }
  return out;
}

export function installFlex(pluginDir: string, socket: string | undefined): string {
  const dir = path.join(path.resolve(pluginDir), 'qosd~nvme');
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const final = path.join(dir, 'nvme');
  const tmp = path.join(dir, `.nvme.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o755);
  try {
    fs.writeSync(fd, driverSource(socket));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, final);
  return final;
}
