// What a boot after a reboot or a power loss must show (phases 2 and 3): qosd up by itself;
// every recorded volume there; one loop device per backing file, none left on a missing file;
// kubelet's retry of every pod's mount (the pod cgroups are new after a boot) Success, mounted
// once in PID 1's namespace, data as written, io.max on the pod; a clean journal.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import { api, expectCleanJournal, flexMount, hostMountsAt, loadState, loopsOf, makePod, readFromHost, run, saveState, until } from './sys-node';

interface Vol { name: string; state: string; device: string; deviceNumber: string; backing: string; pool: string }

export async function checkNodeCameBack(): Promise<void> {
  const state = loadState();
  expect(state.volumes.length).toBeGreaterThan(0);
  await until('qosd to answer after boot', async () => (await api('GET', '/v1/status').catch(() => ({ status: 0 }))).status === 200, 300_000);
  expect(run('systemctl', ['is-active', 'qosd.service']).out.trim()).toBe('active');
  const { volumes } = (await api<{ volumes: Vol[] }>('GET', '/v1/volumes')).body;
  const byName = new Map(volumes.map((v) => [v.name, v]));
  const all = [...state.volumes, ...(state.interrupted ? [state.interrupted] : [])];
  for (const v of state.volumes) {
    const vol = byName.get(v.name);
    expect(vol?.state, v.name).toBe('ready');
    if (vol!.pool === 'default') expect(loopsOf(vol!.backing), v.name).toEqual([vol!.device]);
  }
  // No loop device is left on a file that does not exist (a create undone by recovery).
  for (const line of run('losetup', ['-l', '-n', '-O', 'BACK-FILE']).out.split('\n').map((l) => l.trim()).filter(Boolean)) {
    expect(fs.existsSync(line.replace(/ \(deleted\)$/, '')) && !line.endsWith('(deleted)'), line).toBe(true);
  }
  for (const v of all) {
    // Kubelet recreates the pod's cgroup after a boot, then retries the mount.
    const p = makePod(v.podUid);
    fs.mkdirSync(v.target, { recursive: true });
    const r = await flexMount(v);
    expect(r.reply.status, `${v.name}: ${r.reply.message}`).toBe('Success');
    const vol = (await api<Vol>('GET', `/v1/volumes/${v.name}`)).body;
    expect(hostMountsAt(v.target).map((m) => m.device), v.name).toEqual([vol.deviceNumber]);
    if (v !== state.interrupted) expect(readFromHost(path.join(v.target, 'data.txt')), v.name).toBe(v.data);
    if (v.user.maxReadIops) expect(fs.readFileSync(path.join(p.pod, 'io.max'), 'utf8')).toContain(`${vol.deviceNumber} `);
    if (vol.pool === 'default') expect(loopsOf(vol.backing)).toEqual([vol.device]);
    // A second retry mounts nothing twice.
    expect((await flexMount(v)).reply.status).toBe('Success');
    expect(hostMountsAt(v.target)).toHaveLength(1);
  }
  if (state.interrupted) {
    expect(run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', (await api<Vol>('GET', `/v1/volumes/${state.interrupted.name}`)).body.device]).out.trim()).toBe('ext4');
    state.volumes.push(state.interrupted);
    delete state.interrupted;
  }
  expectCleanJournal();
  saveState(state);
}
