// The installed unit lets the daemon reach over IP what its config names and nothing else:
// loopback always, the API server of csi.kubeconfig, and anyone for a metrics listener beyond
// loopback (a scraper may be anywhere).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reachFor, serviceUnit } from '../../src/cli/install-units';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-units-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function config(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}
const kubeconfig = (server: string) =>
  config(`kubeconfig-${server.replace(/\W/g, '')}`, `apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "${server}"}}]\nusers: [{name: u, user: {token: t}}]\n`);
const ipLines = (unit: string) => unit.split('\n').filter((l) => l.startsWith('IPAddress'));

describe('qosctl install-units: the IP addresses the daemon may reach', () => {
  it('loopback alone for a config that names nothing else', async () => {
    const file = config('plain.yaml', 'csi: { socket: "off" }\n');
    expect(await reachFor(file)).toEqual([]);
    expect(ipLines(serviceUnit(file, '/usr/bin/node', []))).toEqual(['IPAddressDeny=any', 'IPAddressAllow=localhost']);
  });

  it("adds the API server of csi.kubeconfig, by its address (a name resolved at install)", async () => {
    const byIp = config('api.yaml', `csi: { nodeName: n1, kubeconfig: ${kubeconfig('https://10.20.30.40:6443')} }\n`);
    expect(await reachFor(byIp)).toEqual(['10.20.30.40']);
    expect(ipLines(serviceUnit(byIp, '/usr/bin/node', await reachFor(byIp)))).toEqual(['IPAddressDeny=any', 'IPAddressAllow=localhost 10.20.30.40']);
    const v6 = config('api6.yaml', `csi: { nodeName: n1, kubeconfig: ${kubeconfig('https://[fd00::10]:6443')} }\n`);
    expect(await reachFor(v6)).toEqual(['fd00::10']);
    const byName = config('name.yaml', `csi: { nodeName: n1, kubeconfig: ${kubeconfig('https://localhost:6443')} }\n`);
    expect(await reachFor(byName)).toEqual([]); // resolves to loopback, allowed already
    const nowhere = config('nowhere.yaml', `csi: { nodeName: n1, kubeconfig: ${kubeconfig('https://no-such-host.invalid:6443')} }\n`);
    await expect(reachFor(nowhere)).rejects.toThrow('the API server no-such-host.invalid of');
  });

  it('lifts the restriction for a metrics listener beyond loopback, saying why in the unit', async () => {
    const file = config('metrics.yaml', 'csi: { socket: "off" }\nmetrics: { listen: "0.0.0.0:9567" }\n');
    expect(await reachFor(file)).toEqual(['any']);
    const unit = serviceUnit(file, '/usr/bin/node', ['any']);
    expect(ipLines(unit)).toEqual([]);
    expect(unit).toContain('# metrics.listen is beyond loopback');
  });
});
