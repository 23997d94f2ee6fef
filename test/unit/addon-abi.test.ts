// A package built for another Node.js major (its SQLite addon cannot load here): qosd stops at
// once with a message saying to reinstall the package built for this Node.js, and exits 78, which
// the unit names in RestartPreventExitStatus so that systemd stops restarting it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = path.resolve(__dirname, '../..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-abi-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('a package whose SQLite addon is for another Node.js', () => {
  it('stops with the reason and exit 78, which the unit does not restart', () => {
    // The package as installed: dist/ with only another ABI's addon staged, its dependencies beside it.
    const pkg = path.join(dir, 'qosd');
    fs.mkdirSync(pkg);
    fs.cpSync(path.join(REPO, 'dist'), path.join(pkg, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(REPO, 'package.json'), path.join(pkg, 'package.json'));
    fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(pkg, 'node_modules'));
    const native = path.join(pkg, 'dist', 'native');
    for (const f of fs.readdirSync(native)) fs.rmSync(path.join(native, f));
    fs.writeFileSync(path.join(native, 'better_sqlite3-abi1.node'), 'not this Node.js');
    const config = path.join(dir, 'config.yaml');
    fs.writeFileSync(config, `socket: ${path.join(dir, 'q.sock')}\nstateDir: ${path.join(dir, 'state')}\nmetrics: { listen: "off" }\ncsi: { socket: "off" }\npools: [{ name: default, backend: file, path: ${path.join(dir, 'volumes')}, create: true }]\n`);
    const r = spawnSync(process.execPath, [path.join(pkg, 'dist', 'cli', 'qosd.js'), '--config', config], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(78);
    expect(r.stderr).toContain(`this qosd package was built for Node.js ABI 1, but runs on ${process.version} (ABI ${process.versions.modules}): reinstall qosd from a package built with this Node.js major`);
    const unit = fs.readFileSync(path.join(REPO, 'systemd', 'qosd.service'), 'utf8');
    expect(unit).toMatch(/^RestartPreventExitStatus=78$/m);
  });
});
