// qosd's flex driver under a real kubelet (1.37): pods created through the API server, scheduled by
// the real scheduler, whose busybox containers do the IO (test/kube/run.sh starts the cluster).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPod, deletePod, events, figure, kubeletHealthy, kubectl, logsUntil, pod, podManifest, podMounts, qosd, qosdServes, restart, until, type FlexPod } from './cluster';

/** Seconds since boot, from the container's /proc/uptime (busybox's date has no %N). */
const CLOCK = "now() { cut -d' ' -f1 /proc/uptime; }; rate() { awk -v n=$1 -v s=$2 -v e=$3 'BEGIN { printf \"%d\", n / (e - s) }'; }";
const IDLE = 'while :; do sleep 1 & wait $!; done';
const created: string[] = [];

async function run(p: FlexPod): Promise<FlexPod> {
  created.push(p.name);
  await createPod(p);
  return p;
}

/** Every blkio throttle rule for the device left in any kubepods cgroup: `dir file` per rule. */
function throttleRulesFor(device: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.startsWith('blkio.throttle.') && e.name.endsWith('_device') && fs.readFileSync(p, 'utf8').split('\n').some((l) => l.startsWith(`${device} `))) out.push(p);
    }
  };
  if (fs.existsSync(KUBEPODS)) walk(KUBEPODS);
  return out;
}
const KUBEPODS = '/sys/fs/cgroup/blkio/kubepods';

interface Attachment { volume: string; target: string; podUid: string | null; cgroupPaths: string[] }
const attachments = async () => (await qosd<{ attachments: Attachment[] }>('GET', '/v1/attachments')).body.attachments;

afterAll(async () => {
  for (const name of created) await deletePod(name).catch(() => undefined);
});

describe('a real kubelet with the qosd/nvme flex driver', () => {
  it("throttles the container's direct IO to maxReadIops and maxWriteBps (±15%)", async () => {
    const readIops = 200;
    const writeBps = 4 * 1024 * 1024;
    const p = await run({
      name: 'limits',
      options: { volumeId: 'kube-limits', size: '64Mi', maxReadIops: String(readIops), maxWriteBps: '4Mi' },
      script: [
        CLOCK,
        'dd if=/dev/zero of=/data/r bs=1M count=4 oflag=direct 2>/dev/null',
        's=$(now); dd if=/data/r of=/dev/null bs=4k count=600 iflag=direct 2>/dev/null; e=$(now)',
        'echo READ_IOPS=$(rate 600 $s $e)',
        's=$(now); dd if=/dev/zero of=/data/w bs=1M count=12 oflag=direct 2>/dev/null; e=$(now)',
        'echo WRITE_BPS=$(rate 12582912 $s $e)',
        'echo DONE',
        IDLE,
      ].join('\n'),
    });
    const log = await logsUntil(p.name, 'DONE');
    const r = figure(log, 'READ_IOPS');
    const w = figure(log, 'WRITE_BPS');
    console.log(`measured in the container: read ${r} IOPS against maxReadIops ${readIops}; write ${(w / 1048576).toFixed(2)} MiB/s against maxWriteBps 4 MiB/s`);
    expect(r).toBeGreaterThan(readIops * 0.85);
    expect(r).toBeLessThan(readIops * 1.15);
    expect(w).toBeGreaterThan(writeBps * 0.85);
    expect(w).toBeLessThan(writeBps * 1.15);
    // The rules are on the pod's cgroup and each of its containers' (cgroup v1 is flat).
    const uid = (await pod(p.name)).metadata.uid;
    const att = (await attachments()).find((a) => a.podUid === uid);
    expect(att?.volume).toBe('kube-limits');
    expect(att!.cgroupPaths.length).toBeGreaterThanOrEqual(3); // pod, sandbox, container
  });

  it('keeps what one pod wrote for the next pod of the same volumeId; deleting a pod unmounts it and clears its rules', async () => {
    const writer = await run({ name: 'writer', options: { volumeId: 'kube-keep', size: '32Mi', maxReadIops: '500' }, script: `echo kept-$$ > /data/note; sync; echo WROTE=$(cat /data/note); echo DONE; ${IDLE}` });
    const wrote = (await logsUntil(writer.name, 'DONE')).split('\n').find((l) => l.startsWith('WROTE='))!.slice('WROTE='.length);
    const uid = (await pod(writer.name)).metadata.uid;
    await deletePod(writer.name);
    // kubelet called unmount: no attachment, nothing mounted for that pod.
    await until('the attachment of the deleted pod to go', 60_000, async () => ((await attachments()).some((a) => a.podUid === uid) ? undefined : true));
    expect(podMounts().filter((m) => m.includes(uid))).toEqual([]);
    const kept = await qosd<{ deviceNumber: string }>('GET', '/v1/volumes/kube-keep');
    expect(kept.status).toBe(200); // a persistent volume stays
    expect(throttleRulesFor(kept.body.deviceNumber)).toEqual([]);

    const reader = await run({ name: 'reader', options: { volumeId: 'kube-keep' }, script: `echo READ=$(cat /data/note); echo DONE; ${IDLE}` });
    const read = (await logsUntil(reader.name, 'DONE')).split('\n').find((l) => l.startsWith('READ='))!.slice('READ='.length);
    expect(read).toBe(wrote);
  });

  it('deletes an ephemeral volume with its pod', async () => {
    const p = await run({ name: 'scratch', options: { ephemeral: 'true', size: '16Mi' }, script: `echo DONE; ${IDLE}` });
    await logsUntil(p.name, 'DONE');
    const uid = (await pod(p.name)).metadata.uid;
    const name = (await attachments()).find((a) => a.podUid === uid)!.volume;
    expect(name).toBe(`data-${uid}`);
    await deletePod(p.name);
    await until(`ephemeral volume ${name} to be deleted`, 60_000, async () => ((await qosd('GET', `/v1/volumes/${name}`)).status === 404 ? true : undefined));
    expect(podMounts().filter((m) => m.includes(uid))).toEqual([]);
  });

  it('leaves a pod whose guarantee the pool cannot admit in ContainerCreating, with the refusal in its events; nothing made', async () => {
    const p = await run({ name: 'greedy', options: { volumeId: 'kube-greedy', minReadIops: '250000' }, script: `echo DONE; ${IDLE}` });
    const podUid = (await pod(p.name)).metadata.uid;
    const refusal = await until('a FailedMount event', 90_000, async () => (await events(p.name, podUid)).find((e) => e.reason === 'FailedMount'));
    // in full: a "%" would have been taken as a format verb by kubelet ("250%!o(MISSING)f")
    expect(refusal.message).toMatch(/this guarantee needs 250 percent of the device \(minReadIops 250000 = 250 percent\); [\d.]+ percent of the 90 percent promisable is left/);
    expect(refusal.message).not.toContain('%!');
    const state = (await pod(p.name)).status.containerStatuses?.[0]?.state.waiting?.reason;
    expect(state).toBe('ContainerCreating');
    expect((await qosd('GET', '/v1/volumes/kube-greedy')).status).toBe(404);
    const uid = (await pod(p.name)).metadata.uid;
    expect(podMounts().filter((m) => m.includes(uid) && m.includes('qosd~nvme'))).toEqual([]);
    await deletePod(p.name);
  });

  it("keeps tenants apart: a pod in another namespace naming the same volumeId is refused, its event says whose the volume is, and reads nothing of it", async () => {
    for (const ns of ['tenant-a', 'tenant-b']) {
      await kubectl(['create', 'namespace', ns]).catch(() => undefined);
      // a pod is admitted once its namespace has its default service account
      await until(`the default service account of ${ns}`, 60_000, async () => ((await kubectl(['-n', ns, 'get', 'serviceaccount', 'default', '-o', 'name'])).trim() ? true : undefined));
    }
    const a: FlexPod = { name: 'owner', namespace: 'tenant-a', options: { volumeId: 'kube-tenant', size: '16Mi' }, script: `echo secret-of-a > /data/secret; sync; echo DONE; ${IDLE}` };
    await createPod(a);
    await logsUntil(a.name, 'DONE', 120_000, 'tenant-a');
    expect((await qosd<{ owner: string }>('GET', '/v1/volumes/kube-tenant')).body.owner).toBe('ns:tenant-a');
    const b: FlexPod = { name: 'intruder', namespace: 'tenant-b', options: { volumeId: 'kube-tenant' }, script: `cat /data/secret; echo DONE; ${IDLE}` };
    await createPod(b);
    const uid = (await pod(b.name, 'tenant-b')).metadata.uid;
    const refusal = await until('a FailedMount event', 90_000, async () => (await events(b.name, uid, 'tenant-b')).find((e) => e.reason === 'FailedMount'));
    expect(refusal.message).toContain('volume kube-tenant belongs to namespace tenant-a; a pod in namespace tenant-b cannot mount it');
    expect((await pod(b.name, 'tenant-b')).status.containerStatuses?.[0]?.state.waiting?.reason).toBe('ContainerCreating');
    expect(podMounts().filter((m) => m.includes(uid))).toEqual([]);
    expect((await attachments()).filter((x) => x.volume === 'kube-tenant').map((x) => x.podUid)).toEqual([(await pod(a.name, 'tenant-a')).metadata.uid]);
    await deletePod(b.name, 'tenant-b');
    await deletePod(a.name, 'tenant-a');
  });

  it('shows a misspelt option as an event naming it', async () => {
    const p = await run({ name: 'typo', options: { volumeId: 'kube-typo', maxReadIOPS: '200' }, script: `echo DONE; ${IDLE}` });
    const e = await until('a FailedMount event', 90_000, async () => (await events(p.name)).find((x) => x.reason === 'FailedMount'));
    expect(e.message).toContain('option maxReadIOPS: unknown option');
    expect((await qosd('GET', '/v1/volumes/kube-typo')).status).toBe(404);
    await deletePod(p.name);
  });
});

describe('restarts beside a running pod', () => {
  it('qosd restarted while a pod runs: its rules stay, its next container is throttled, a new pod mounts', async () => {
    // The container measures, prints, and exits; kubelet starts it again in a new container
    // cgroup, which must be throttled too (cgroup v1: qosd watches the pod's cgroup for it).
    const p: FlexPod = {
      name: 'steady',
      options: { volumeId: 'kube-steady', size: '32Mi', maxReadIops: '150' },
      script: [CLOCK, 'dd if=/dev/zero of=/data/r bs=1M count=2 oflag=direct 2>/dev/null', 's=$(now); dd if=/data/r of=/dev/null bs=4k count=450 iflag=direct 2>/dev/null; e=$(now)', 'echo READ_IOPS=$(rate 450 $s $e)', 'echo DONE', 'sleep 8'].join('\n'),
    };
    created.push(p.name);
    await kubectl(['apply', '-f', '-'], podManifest(p).replace('"restartPolicy":"Never"', '"restartPolicy":"Always"'));
    const first = figure(await logsUntil(p.name, 'DONE'), 'READ_IOPS');
    const uid = (await pod(p.name)).metadata.uid;
    const before = (await attachments()).find((a) => a.podUid === uid)!;

    await restart('qosd', qosdServes);
    const after = (await attachments()).find((a) => a.podUid === uid);
    expect(after?.volume).toBe('kube-steady');
    expect(after!.cgroupPaths).toEqual(expect.arrayContaining(before.cgroupPaths));

    // The container's next run, in a new cgroup created after the restart.
    await until('the container to run again', 60_000, async () => (((await pod(p.name)).status.containerStatuses?.[0] as { restartCount?: number } | undefined)?.restartCount ?? 0) >= 1 ? true : undefined);
    const second = figure(await logsUntil(p.name, 'DONE'), 'READ_IOPS');
    console.log(`the same pod before and after a qosd restart: ${first} and ${second} IOPS against maxReadIops 150`);
    for (const r of [first, second]) {
      expect(r).toBeGreaterThan(150 * 0.85);
      expect(r).toBeLessThan(150 * 1.15);
    }
    const fresh = await run({ name: 'after-restart', options: { volumeId: 'kube-after', size: '16Mi' }, script: `echo DONE; ${IDLE}` });
    await logsUntil(fresh.name, 'DONE');
  });

  it('kubelet restarted: the pods keep their one mount each, and nothing leaks when they go', async () => {
    const mountsBefore = podMounts().filter((m) => m.includes('qosd~nvme')).sort();
    expect(mountsBefore.length).toBeGreaterThan(0);
    await restart('kubelet', kubeletHealthy);
    // Give the restarted kubelet's volume manager time to reconcile what it finds mounted.
    await new Promise((r) => setTimeout(r, 15_000));
    expect(podMounts().filter((m) => m.includes('qosd~nvme')).sort()).toEqual(mountsBefore);
    const n = (await attachments()).length;
    expect(n).toBe(mountsBefore.length);
    for (const name of ['steady', 'after-restart', 'limits', 'reader']) await deletePod(name);
    await until('every attachment of the deleted pods to go', 90_000, async () => ((await attachments()).length === 0 ? true : undefined));
    expect(podMounts().filter((m) => m.includes('qosd~nvme'))).toEqual([]);
    const { volumes } = (await qosd<{ volumes: { deviceNumber: string | null }[] }>('GET', '/v1/volumes')).body;
    for (const v of volumes) if (v.deviceNumber) expect(throttleRulesFor(v.deviceNumber)).toEqual([]);
  });
});
