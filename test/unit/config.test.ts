import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load';

function withFile(yaml: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-config-'));
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, yaml);
  return file;
}

function errorOf(yaml: string): string {
  try {
    loadConfig({ config: withFile(yaml) });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message.replace(/^.*config\.yaml: /, '');
  }
  throw new Error('config was accepted');
}

describe('loadConfig', () => {
  it('runs on embedded defaults when the default file is absent', () => {
    const c = loadConfig({});
    if (c.source !== undefined) return; // a real /etc/qosd/config.yaml on this machine: not this test's business
    expect(c.socket).toBe('/run/qosd/qosd.sock');
    expect(c.stateDir).toBe('/var/lib/qosd');
    expect(c.metricsListen).toEqual({ host: '127.0.0.1', port: 9567 });
    expect(c.pools).toEqual([{ name: 'default', backend: 'file', path: '/var/lib/qosd/volumes/default', create: true, overcommit: 1, capacity: {} }]);
    expect([...c.classes.keys()]).toEqual(['high', 'medium', 'best-effort']);
    expect(c.classes.get('high')!.min).toEqual({ readIops: 20000, writeIops: 20000, readBps: 500e6, writeBps: 500e6 });
    expect(c.defaults).toEqual({ pool: 'default', class: 'best-effort', size: 10 * 2 ** 30, fsType: 'ext4' });
    expect(c.kubelet).toEqual({ rootDir: '/var/lib/kubelet', cgroupRoot: '/', cgroupDriver: 'auto' });
    expect(c.reconcileIntervalMs).toBe(10_000);
  });

  it('loads the repo dev config, with paths relative to the file', () => {
    const file = path.resolve(__dirname, '../../config/dev.yaml');
    const c = loadConfig({ config: file });
    const repo = path.resolve(__dirname, '../..');
    expect(c.socket).toBe(path.join(repo, 'var/qosd.sock'));
    expect(c.pools[0]).toMatchObject({ name: 'default', backend: 'file', path: path.join(repo, 'var/volumes') });
    expect(c.pools[0]!.capacity).toEqual({ readIops: 200000, writeIops: 100000, readBps: 2e9, writeBps: 1e9 });
  });

  it('loads the node config shipped for /etc/qosd/config.yaml', () => {
    const c = loadConfig({ config: path.resolve(__dirname, '../../config/node.yaml') });
    expect(c.socket).toBe('/run/qosd/qosd.sock');
    expect(c.pools[0]).toMatchObject({ backend: 'file', path: '/var/lib/qosd/volumes/default' });
  });

  it('lets flags override the file', () => {
    const file = withFile('socket: /tmp/a.sock\nstateDir: /tmp/state\nlogLevel: warn\n');
    const c = loadConfig({ config: file, socket: '/tmp/b.sock', stateDir: '/tmp/s2', metricsListen: 'off', logLevel: 'debug' });
    expect(c.socket).toBe('/tmp/b.sock');
    expect(c.stateDir).toBe('/tmp/s2');
    expect(c.metricsListen).toBeUndefined();
    expect(c.logLevel).toBe('debug');
  });

  it.each([
    ['pools:\n  - { name: default, backend: file, capacity: { readIops: -5 } }\n', 'pools[0].capacity.readIops: must be a positive integer'],
    ['pools:\n  - { name: default, backend: file, capacity: { readIops: "lots" } }\n', 'pools[0].capacity.readIops: must be a positive integer'],
    ['pools:\n  - { name: default, backend: file, capacity: { writeBps: 1.5GB } }\n', 'pools[0].capacity.writeBps: must be a positive integer or a quantity such as 500M or 2Gi'],
    ['pools:\n  - { name: default, backend: tape }\n', 'pools[0].backend: must be "file" or "lvm"'],
    ['pools:\n  - { name: Default, backend: file }\n', "pools[0].name: must be a pool name: lowercase letters, digits and '-', at most 63 characters"],
    ['pools:\n  - { name: a, backend: file }\n  - { name: a, backend: file }\n', 'pools[1].name: "a" is used by an earlier pool'],
    ['pools:\n  - { name: nvme, backend: lvm }\n', 'pools[0].volumeGroup: is required for the lvm backend'],
    ['pools: []\n', 'pools: must list at least one pool'],
    ['sockett: /x\n', 'sockett: unknown key'],
    ['kubelet: { cgroupDriver: docker }\n', 'kubelet.cgroupDriver: must be "auto", "cgroupfs" or "systemd"'],
    ['kubelet: { cgroupRoot: kubelet }\n', 'kubelet.cgroupRoot: must be an absolute path'],
    ['metrics: { listen: "9567" }\n', 'metrics.listen: must be HOST:PORT or "off"'],
    ['metrics: { listen: "0.0.0.0:99999" }\n', 'metrics.listen: "0.0.0.0:99999" must be HOST:PORT (port 1-65535) or "off"'],
    ['defaults: { pool: fast }\n', 'defaults.pool: "fast" is not a configured pool'],
    ['defaults: { class: gold }\n', 'defaults.class: "gold" is not a configured class'],
    ['defaults: { fsType: btrfs }\n', 'defaults.fsType: must be "ext4" or "xfs"'],
    ['classes: { gold: { min: { readIops: 900 }, max: { readIops: 100 } } }\n', 'classes.gold.min.readIops: guarantee 900 is above the limit max.readIops 100'],
    ['classes: { gold: { floor: {} } }\n', 'classes.gold.floor: unknown key'],
    ['reconcile: { intervalSeconds: 0 }\n', 'reconcile.intervalSeconds: must be a number of seconds in (0, 3600]'],
    ['- just\n- a list\n', 'the top level must be a mapping of keys'],
    ['socket: [unclosed\n', 'not valid YAML'],
  ])('rejects %j with %j', (yaml, want) => {
    expect(errorOf(yaml)).toContain(want);
  });

  it('names the file in the error, and fails on a named file that does not exist', () => {
    const file = withFile('sockett: /x\n');
    expect(() => loadConfig({ config: file })).toThrow(`${file}: sockett: unknown key`);
    expect(() => loadConfig({ config: '/nonexistent/qosd.yaml' })).toThrow(/cannot read config file/);
  });

  it('rejects a bad --log-level or --metrics-listen flag naming the flag', () => {
    expect(() => loadConfig({ config: withFile('{}\n'), logLevel: 'loud' })).toThrow(/--log-level: must be one of/);
    expect(() => loadConfig({ config: withFile('{}\n'), metricsListen: 'nowhere' })).toThrow(/--metrics-listen:/);
  });
});
