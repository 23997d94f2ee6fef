// How qosd reads its API server access (kube/connection.ts): a kubeconfig's current context, or a
// pod's service account; and the config key that names it (csi.kubeconfig), refused at load with
// the reason when the file is unusable.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import { KubeClient } from '../../src/kube/client';
import { describe, expect, it } from 'vitest';
import { fromKubeconfig, inCluster, weaknesses } from '../../src/kube/connection';
import { ConfigError, loadConfig } from '../../src/config/load';

function dir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-kube-'));
}

const KUBECONFIG = (user: string) => `apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: "https://10.0.0.9:6443"}
- name: realkube
  cluster: {server: "https://127.0.0.1:6443", certificate-authority: pki/ca.crt}
users:
- name: admin
  user: ${user}
contexts:
- name: realkube
  context: {cluster: realkube, user: admin}
current-context: realkube
`;

describe('a kubeconfig', () => {
  it('gives the current context: server, CA (relative to the file), token', () => {
    const d = dir();
    fs.mkdirSync(path.join(d, 'pki'));
    fs.writeFileSync(path.join(d, 'pki', 'ca.crt'), 'CA');
    fs.writeFileSync(path.join(d, 'config'), KUBECONFIG('{token: abc}'));
    const c = fromKubeconfig(path.join(d, 'config'));
    expect(c.server.href).toBe('https://127.0.0.1:6443/');
    expect(c.ca?.toString()).toBe('CA');
    expect(c.token).toBe('abc');
    expect(c.insecureSkipTlsVerify).toBe(false);
  });

  it('takes client certificates as data', () => {
    const d = dir();
    fs.mkdirSync(path.join(d, 'pki'));
    fs.writeFileSync(path.join(d, 'pki', 'ca.crt'), 'CA');
    fs.writeFileSync(path.join(d, 'config'), KUBECONFIG(`{client-certificate-data: ${Buffer.from('CERT').toString('base64')}, client-key-data: ${Buffer.from('KEY').toString('base64')}}`));
    const c = fromKubeconfig(path.join(d, 'config'));
    expect([c.cert?.toString(), c.key?.toString(), c.token]).toEqual(['CERT', 'KEY', undefined]);
  });

  it('is refused with the reason: no credentials, a missing file it names, no current context', () => {
    const d = dir();
    fs.writeFileSync(path.join(d, 'config'), KUBECONFIG('{}'));
    expect(() => fromKubeconfig(path.join(d, 'config'))).toThrow(/ENOENT.*pki\/ca.crt/);
    fs.mkdirSync(path.join(d, 'pki'));
    fs.writeFileSync(path.join(d, 'pki', 'ca.crt'), 'CA');
    expect(() => fromKubeconfig(path.join(d, 'config'))).toThrow('user "admin" has neither a token nor a client certificate and key');
    fs.writeFileSync(path.join(d, 'config'), 'apiVersion: v1\nkind: Config\n');
    expect(() => fromKubeconfig(path.join(d, 'config'))).toThrow('no current-context');
  });
});

describe('weak access to the API server', () => {
  it('refuses a kubeconfig any user may change, and names what is weak: world-readable, plain http, an unchecked certificate', () => {
    const d = dir();
    fs.mkdirSync(path.join(d, 'pki'));
    fs.writeFileSync(path.join(d, 'pki', 'ca.crt'), 'CA');
    const file = path.join(d, 'config');
    fs.writeFileSync(file, KUBECONFIG('{token: abc}'));
    fs.chmodSync(file, 0o666);
    expect(() => fromKubeconfig(file)).toThrow(`kubeconfig ${file}: mode 0666 lets every user on the node change it (and so where qosd's credentials go); chmod 600 it`);
    fs.chmodSync(file, 0o600);
    expect(weaknesses(fromKubeconfig(file))).toEqual([]);
    fs.chmodSync(file, 0o644);
    expect(weaknesses(fromKubeconfig(file))).toEqual([`${file} can be read by every user on the node, and its credentials with it; chmod 600 it`]);
    fs.writeFileSync(file, KUBECONFIG('{token: abc}').replace('server: "https://127.0.0.1:6443", certificate-authority: pki/ca.crt', 'server: "http://10.0.0.5:8080", insecure-skip-tls-verify: true'));
    fs.chmodSync(file, 0o600);
    expect(weaknesses(fromKubeconfig(file))).toEqual([
      'the API server http://10.0.0.5:8080 is plain http: qosd\'s credentials cross the network in clear; use https',
      'insecure-skip-tls-verify is set for http://10.0.0.5:8080: any server answering there is trusted with qosd\'s credentials; give the cluster\'s CA instead',
    ]);
  });
});

describe('in a pod', () => {
  it("uses KUBERNETES_SERVICE_HOST and the mounted service account, re-reading its token file", () => {
    const d = dir();
    fs.writeFileSync(path.join(d, 'token'), 'sa-token');
    fs.writeFileSync(path.join(d, 'ca.crt'), 'CA');
    const c = inCluster({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, d);
    expect(c.server.href).toBe('https://10.96.0.1/');
    expect(c.tokenFile).toBe(path.join(d, 'token'));
    expect(() => inCluster({}, d)).toThrow('KUBERNETES_SERVICE_HOST is not set');
  });
});

describe('csi.kubeconfig', () => {
  const load = (value: string) => {
    const d = dir();
    fs.writeFileSync(path.join(d, 'config.yaml'), `csi: { nodeName: n1, kubeconfig: ${value} }\n`);
    return loadConfig({ config: path.join(d, 'config.yaml') });
  };

  it('is off unless set; "in-cluster" or a usable kubeconfig file', () => {
    expect(load('off').csi?.kubeconfig).toBeUndefined();
    expect(load('in-cluster').csi?.kubeconfig).toBe('in-cluster');
    const d = dir();
    fs.writeFileSync(path.join(d, 'kc'), KUBECONFIG('{token: abc}').replace(', certificate-authority: pki/ca.crt', ''));
    expect(load(path.join(d, 'kc')).csi?.kubeconfig).toBe(path.join(d, 'kc'));
  });

  it('an unusable file stops the load, naming the key and the reason', () => {
    expect(() => load('/nonexistent/kubeconfig')).toThrow(ConfigError);
    expect(() => load('/nonexistent/kubeconfig')).toThrow(/csi\.kubeconfig.*ENOENT/);
  });
});

describe('a kubeconfig user with an exec credential plugin (EKS, GKE, OIDC)', () => {
  it('sends the token the plugin prints, and runs it again once that token expires', async () => {
    const d = dir();
    const runs = path.join(d, 'runs');
    const plugin = path.join(d, 'plugin.js');
    // Each run prints a new token, valid for 31 s: 30 s of it are kept back, so it is used for ~1 s.
    fs.writeFileSync(plugin, `#!${process.execPath}\nconst fs = require('fs'); const n = (fs.existsSync(${JSON.stringify(runs)}) ? Number(fs.readFileSync(${JSON.stringify(runs)}, 'utf8')) : 0) + 1;\nfs.writeFileSync(${JSON.stringify(runs)}, String(n));\nif (!JSON.parse(process.env.KUBERNETES_EXEC_INFO).apiVersion) process.exit(3);\nconsole.log(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'tok-' + n + '-' + process.env.EXTRA, expirationTimestamp: new Date(Date.now() + 31000).toISOString() } }));\n`);
    fs.chmodSync(plugin, 0o755);
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers.authorization ?? '');
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    fs.writeFileSync(path.join(d, 'config'), `apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "http://127.0.0.1:${port}"}}]\nusers: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: ./plugin.js, env: [{name: EXTRA, value: x}]}}}]\n`);
    const client = new KubeClient(fromKubeconfig(path.join(d, 'config')));
    try {
      await client.get('/api');
      await client.get('/api');
      await new Promise((r) => setTimeout(r, 1500));
      await client.get('/api');
    } finally {
      client.close();
      server.close();
    }
    expect(seen).toEqual(['Bearer tok-1-x', 'Bearer tok-1-x', 'Bearer tok-2-x']);
  });

  it('says which plugin failed, and why', async () => {
    const d = dir();
    fs.writeFileSync(path.join(d, 'config'), `apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "http://127.0.0.1:1"}}]\nusers: [{name: u, user: {exec: {command: /nonexistent/plugin}}}]\n`);
    const client = new KubeClient(fromKubeconfig(path.join(d, 'config')));
    await expect(client.get('/api')).rejects.toThrow("the kubeconfig's exec credential plugin /nonexistent/plugin failed");
    client.close();
  });
});
