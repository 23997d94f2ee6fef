// Placement by IO headroom across the cluster's nodes (run.sh: "localhost" on the host, node-1 and
// node-2 in namespaces of their own, each with its kubelet, containerd, qosd and provisioner; the
// scheduler with qosd's extender). StatefulSets of guaranteed replicas, as a user runs a database:
// the test writes Kubernetes objects and reads where the scheduler put each replica, what each
// node's qosd promised, and what each container measured.
//
// Every class guarantees write IOPS in tenths of what a node's pool may promise (100,000 × 90%), so
// each node's headroom (the unpromised share) moves in steps of 0.1: the extender scores it in
// tenths, and two nodes either tie or differ by a step it sees.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANY_NODE, CLUSTER, NODES, RUN, figure, kubectl, logsUntil, qosdOn, until, type KubeEvent } from './cluster';
import { unthrottledReads } from '../helpers/throttle';
import { expectContainerThrottled } from './rates';
import { parseQuantity } from '../../src/util/quantity';

const DRIVER = 'nvme.qosd.io';
const TENTH = 9000;
const LIMIT = 200;
const SIZES = [1, 2, 3, 4, 5, 6, 8];
const classOf = (tenths: number) => `qosd-place-g${tenths}`;
const CONTROL = 'qosd-place-none';
const CLOCK = "now() { cut -d' ' -f1 /proc/uptime; }; rate() { awk -v n=$1 -v s=$2 -v e=$3 'BEGIN { printf \"%d\", n / (e - s) }'; }";
const SCRIPT = [
  CLOCK,
  'dd if=/dev/zero of=/data/r bs=1M count=2 oflag=direct 2>/dev/null',
  's=$(now); dd if=/data/r of=/dev/null bs=4k count=400 iflag=direct 2>/dev/null; e=$(now)',
  'echo READ_IOPS=$(rate 400 $s $e)',
  'echo DONE',
  'while :; do sleep 1 & wait $!; done',
].join('\n');
const sets: string[] = [];
const [LOCAL, N1, N2] = NODES.map((n) => n.name) as [string, string, string];

const json = async <T>(args: string[]): Promise<T> => JSON.parse(await kubectl([...args, '-o', 'json'])) as T;
const apply = (...items: unknown[]) => kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));

interface Pool { share: { promised: number; promisable: number } }
interface Vol { device: string; qos: { min: Record<string, number>; max: Record<string, number> } }
interface PodJson { metadata: { name: string; uid: string }; spec: { nodeName?: string }; status: { phase: string } }

/** The part of what the node's pool may promise that it has not promised, from its qosd. */
async function headroom(node: string): Promise<number> {
  const s = (await qosdOn<Pool>(node, 'GET', '/v1/pools/default')).body.share;
  return (s.promisable - s.promised) / s.promisable;
}
const headrooms = async () => Object.fromEntries(await Promise.all(NODES.map(async (n) => [n.name, await headroom(n.name)] as const)));
const shown = (h: Record<string, number>) => Object.entries(h).map(([n, v]) => `${n} ${v.toFixed(2)}`).join(', ');

/**
 * The pid of the node's csi-provisioner itself: run.sh's pid file names the process group it runs
 * in (nsenter, the restart loop, the sidecar). Only the sidecar is stopped: nsenter stops itself
 * when its child stops, and would stay stopped.
 */
function provisionerOf(node: string): number {
  const group = Number(fs.readFileSync(path.join(RUN, `${node}.csi-provisioner.pid`), 'utf8').trim());
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === group && stat.includes('(csi-provisioner)')) return Number(pid);
    } catch {
      /* gone meanwhile */
    }
  }
  throw new Error(`no csi-provisioner in process group ${group} (${node})`);
}

/** No node has promised more than it may: read from each node's qosd. */
async function expectNoneOverPromised(): Promise<void> {
  for (const n of NODES) {
    const s = (await qosdOn<Pool>(n.name, 'GET', '/v1/pools/default')).body.share;
    expect(s.promised, `${n.name} promised ${s.promised} of ${s.promisable}`).toBeLessThanOrEqual(s.promisable + 1e-9);
  }
}

function statefulSet(name: string, storageClassName: string, o: { replicas?: number; node?: string; parallel?: boolean } = {}) {
  sets.push(name);
  return {
    apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name, namespace: 'default' },
    spec: {
      serviceName: name, replicas: o.replicas ?? 1, podManagementPolicy: o.parallel ? 'Parallel' : 'OrderedReady',
      selector: { matchLabels: { 'qosd.test/set': name } },
      template: {
        metadata: { labels: { 'qosd.test/set': name } },
        spec: {
          hostNetwork: true, terminationGracePeriodSeconds: 2, automountServiceAccountToken: false, tolerations: [ANY_NODE],
          ...(o.node ? { nodeSelector: { 'kubernetes.io/hostname': o.node } } : {}),
          containers: [{ name: 'c', image: CLUSTER.REALKUBE_IMAGE ?? 'localhost/busybox:local', imagePullPolicy: 'Never', command: ['/bin/sh', '-c', `trap 'exit 0' TERM; ${SCRIPT}`], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
        },
      },
      volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], storageClassName, resources: { requests: { storage: '32Mi' } } } }],
    },
  };
}

/** The set's replicas once all are Running: pod name to node. */
async function running(set: string, replicas: number, timeoutMs = 300_000): Promise<Record<string, string>> {
  return until(`${replicas} replica(s) of ${set} Running`, timeoutMs, async () => {
    const pods = (await json<{ items: PodJson[] }>(['get', 'pods', '-l', `qosd.test/set=${set}`])).items;
    const up = pods.filter((p) => p.status.phase === 'Running' && p.spec.nodeName);
    return up.length === replicas ? Object.fromEntries(up.map((p) => [p.metadata.name, p.spec.nodeName!])) : undefined;
  });
}

/**
 * Deletes the sets and their replicas' claims. (Not by the sets' claim retention policy: with it
 * the StatefulSet controller updates each new claim just after making it, and the scheduler's
 * first try for its replica fails on the changed claim and comes again a second later.)
 */
async function deleteSets(...names: string[]): Promise<void> {
  for (const n of names) await kubectl(['delete', 'statefulset', n, '--ignore-not-found', '--wait=true', '--timeout=120s'], undefined, 150_000);
  const claims = async () => (await json<{ items: { metadata: { name: string } }[] }>(['get', 'pvc'])).items.map((c) => c.metadata.name).filter((c) => names.some((n) => c.startsWith(`data-${n}-`)));
  const left = await claims();
  if (left.length > 0) await kubectl(['delete', 'pvc', ...left, '--ignore-not-found', '--wait=false']);
  await until(`the claims of ${names.join(', ')} to be deleted`, 180_000, async () => ((await claims()).length === 0 ? true : undefined));
}

/**
 * Whether each node's published figures are its qosd's: for every guaranteed class, its headroom
 * (capacity over maximumVolumeSize) where the class fits, nothing where it does not. The
 * provisioner refreshes them class by class after each volume it creates or deletes.
 */
async function publishedAgree(own: Record<string, number>): Promise<{ agree: boolean; published: Record<string, number[]> }> {
  const caps = (await json<{ items: { storageClassName: string; capacity?: string; maximumVolumeSize?: string; nodeTopology?: { matchLabels?: Record<string, string> } }[] }>(['get', 'csistoragecapacities', '-n', 'kube-system'])).items;
  const bytes = (q: string | undefined) => (q === undefined || q === '0' ? 0 : Number(parseQuantity(q)));
  const published: Record<string, number[]> = {};
  let agree = true;
  for (const n of NODES) {
    published[n.name] = SIZES.map((t) => {
      const c = caps.find((x) => x.storageClassName === classOf(t) && x.nodeTopology?.matchLabels?.['topology.qosd.io/node'] === n.name);
      const max = bytes(c?.maximumVolumeSize);
      const figure = max > 0 ? bytes(c?.capacity) / max : 0;
      const want = own[n.name]! >= t / 10 - 1e-9 ? own[n.name]! : 0;
      if (!c || Math.abs(figure - want) > 0.002) agree = false;
      return Number(figure.toFixed(3));
    });
  }
  return { agree, published };
}

/**
 * Waits until each node's headroom is what is asked (a guarantee is released after its volume),
 * and the scheduler's figures have caught up: each node's published headroom is its qosd's (the
 * provisioner publishes after each volume it creates or deletes, a moment later).
 */
async function headroomsAre(want: Record<string, number> | undefined, what: string): Promise<void> {
  let last: Record<string, number> = {};
  let published: Record<string, number[]> = {};
  await until(what, 180_000, async () => {
    last = await headrooms();
    const asked = !want || Object.entries(want).every(([n, v]) => Math.abs(last[n]! - v) < 1e-6);
    const p = await publishedAgree(last);
    published = p.published;
    return asked && p.agree ? true : undefined;
  }).catch((err: Error) => {
    throw new Error(`${err.message} (headroom now: ${shown(last)}; published per class ${SIZES.map(classOf).join(', ')}: ${JSON.stringify(published)})`);
  });
}
const allFree = () => headroomsAre(Object.fromEntries(NODES.map((n) => [n.name, 1])), 'every node to have promised nothing');

/** Each replica's volume on its node's qosd carries its guarantee and limit; its container read at most the limit. */
async function expectHeldInContainers(placed: Record<string, string>, tenths: number): Promise<void> {
  for (const [podName, node] of Object.entries(placed)) {
    const pvc = await json<{ spec: { volumeName: string } }>(['get', 'pvc', `data-${podName}`]);
    const v = (await qosdOn<Vol>(node, 'GET', `/v1/volumes/${pvc.spec.volumeName}`)).body;
    expect(v.qos.min.writeIops, `${podName}'s guarantee on ${node}`).toBe(tenths * TENTH);
    expect(v.qos.max.readIops, `${podName}'s limit on ${node}`).toBe(LIMIT);
    const log = await logsUntil(podName, 'DONE', 180_000);
    await expectContainerThrottled(`${podName} on ${node}: read IOPS`, figure(log, 'READ_IOPS'), LIMIT, () => unthrottledReads(v.device, '4k', 400));
  }
}

const multiNode = NODES.length >= 3;
if (!multiNode) console.warn(`placement tests skipped: this run has ${NODES.length} node(s); they need three (QOSD_KUBE_NODES unset or 3)`);
beforeAll(async () => {
  if (!multiNode) return;
  const cls = (name: string, parameters: Record<string, string>) => ({
    apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name }, provisioner: DRIVER,
    volumeBindingMode: 'WaitForFirstConsumer', reclaimPolicy: 'Delete', parameters: { class: 'best-effort', maxReadIops: String(LIMIT), ...parameters },
  });
  await apply(...SIZES.map((t) => cls(classOf(t), { minWriteIops: String(t * TENTH) })), cls(CONTROL, {}));
  // every node publishes every class before a replica asks for one
  await until('each class published by each node', 120_000, async () => {
    const caps = (await json<{ items: { storageClassName: string; nodeTopology?: { matchLabels?: Record<string, string> } }[] }>(['get', 'csistoragecapacities', '-n', 'kube-system'])).items;
    const has = (sc: string, n: string) => caps.some((c) => c.storageClassName === sc && c.nodeTopology?.matchLabels?.['topology.qosd.io/node'] === n);
    return [...SIZES.map(classOf), CONTROL].every((sc) => NODES.every((n) => has(sc, n.name))) ? true : undefined;
  });
  await allFree();
}, 400_000);

afterAll(async () => {
  if (!multiNode) return;
  await deleteSets(...sets).catch(() => undefined);
  await kubectl(['delete', 'storageclass', ...SIZES.map(classOf), CONTROL, '--ignore-not-found', '--wait=false']).catch(() => undefined);
}, 400_000);

describe.skipIf(!multiNode || process.env.QOSD_KUBE_BENCH === '1')('placement by IO headroom on three nodes', () => {
  it("a StatefulSet of three guaranteed replicas: none on the node whose pool cannot take one, all Running, each held to its class in the container", async () => {
    // node-1 promised 80%: it cannot take a replica's 30%
    await apply(statefulSet('ballast', classOf(8), { node: N1 }));
    await running('ballast', 1);
    await headroomsAre({ [LOCAL]: 1, [N1]: 0.2, [N2]: 1 }, `${N1} to have 20% left`);
    await apply(statefulSet('db', classOf(3), { replicas: 3 }));
    const placed = await running('db', 3, 600_000);
    console.log(`db replicas: ${JSON.stringify(placed)}; headroom after: ${shown(await headrooms())}`);
    expect(Object.values(placed)).not.toContain(N1);
    await expectHeldInContainers(placed, 3);
    await expectNoneOverPromised();
    await deleteSets('ballast', 'db');
    await allFree();
  }, 900_000);

  it('six replicas of different sizes, one at a time: each lands on the node with the most headroom left at its turn; a class without guarantees spreads as the scheduler does', async () => {
    // start from 100%, 90% and 70% left, so that every turn has one node clearly ahead
    await apply(statefulSet('ballast-a', classOf(1), { node: N1 }), statefulSet('ballast-b', classOf(3), { node: N2 }));
    await running('ballast-a', 1);
    await running('ballast-b', 1);
    await headroomsAre({ [LOCAL]: 1, [N1]: 0.9, [N2]: 0.7 }, 'the starting headroom');
    const turns: string[] = [];
    for (const [i, tenths] of [2, 3, 3, 4, 5, 1].entries()) {
      await headroomsAre(undefined, `the published headroom to be each qosd's at turn ${i + 1}`);
      const before = await headrooms();
      const ranked = Object.entries(before).sort((a, b) => b[1] - a[1]);
      expect(ranked[0]![1] - ranked[1]![1], `one node ahead at turn ${i + 1}: ${shown(before)}`).toBeGreaterThan(0.1 - 1e-6);
      const name = `seq${i + 1}`;
      await apply(statefulSet(name, classOf(tenths)));
      const node = Object.values(await running(name, 1))[0]!;
      turns.push(`turn ${i + 1}: ${tenths * 10}% of a device -> ${node} (headroom before: ${shown(before)})`);
      expect(node, turns.at(-1)).toBe(ranked[0]![0]);
      await expectNoneOverPromised();
    }
    console.log(`placements:\n  ${turns.join('\n  ')}\nheadroom after: ${shown(await headrooms())}`);
    // the control: the same kind of StatefulSet of a class without guarantees, in the same run
    await apply(statefulSet('control', CONTROL, { replicas: 3 }));
    const control = await running('control', 3);
    console.log(`control replicas (no guarantee): ${JSON.stringify(control)}`);
    expect(new Set(Object.values(control)).size).toBe(3);
    await deleteSets('control');
  }, 1_500_000);

  it('no node can fit: the replica waits Pending with an event naming the IO budget; freeing a guarantee elsewhere lets it schedule, with no manual step', async () => {
    const before = await headrooms();
    expect(Math.max(...Object.values(before)), `headroom now: ${shown(before)}`).toBeLessThan(0.5 - 1e-6);
    await apply(statefulSet('waits', classOf(5)));
    const events = await until('a FailedScheduling event for waits-0', 120_000, async () => {
      const pod = await json<PodJson>(['get', 'pod', 'waits-0']).catch(() => undefined);
      if (!pod) return undefined;
      const evs = (await json<{ items: KubeEvent[] }>(['get', 'events', '--field-selector', `involvedObject.name=waits-0,involvedObject.uid=${pod.metadata.uid}`])).items;
      return evs.some((e) => /IO budget/.test(e.message)) ? evs : undefined;
    });
    console.log(`waits-0 events: ${events.map((e) => `${e.reason}: ${e.message}`).join(' | ')}`);
    expect((await json<PodJson>(['get', 'pod', 'waits-0'])).status.phase).toBe('Pending');
    // the replica of turn 5 took half of a node: release it
    const freed = Object.values(await running('seq5', 1))[0]!;
    await deleteSets('seq5');
    const placed = await running('waits', 1, 300_000);
    console.log(`waits-0 placed on ${Object.values(placed)[0]} after seq5 released ${freed}'s half`);
    expect(Object.values(placed)[0]).toBe(freed);
    await expectNoneOverPromised();
    await deleteSets('waits', ...sets.filter((s) => s.startsWith('seq') || s.startsWith('ballast')));
    await allFree();
  }, 900_000);

  it('two replicas at once onto a node that fits one: the second CreateVolume is refused, the claim goes back to the scheduler, and both run on different nodes, none over-promised', async () => {
    // node-2 ahead with 70% left, the others at 40%: both replicas (40% each) score node-2 first.
    // Two one-replica StatefulSets applied together: the replicas of one set would be spread
    // across nodes by the scheduler's default topology spreading before headroom counts.
    await apply(statefulSet('hold-l', classOf(6), { node: LOCAL }), statefulSet('hold-a', classOf(6), { node: N1 }), statefulSet('hold-b', classOf(3), { node: N2 }));
    for (const s of ['hold-l', 'hold-a', 'hold-b']) await running(s, 1);
    await headroomsAre({ [LOCAL]: 0.4, [N1]: 0.4, [N2]: 0.7 }, 'node-2 ahead');
    // Both must be placed before node-2's figures change, and its provisioner creates a volume and
    // republishes within a tenth of a second here: it is held (SIGSTOP, as a slow or busy
    // provisioner would be) until the scheduler has put both claims on node-2, then let go.
    const provisioner = provisionerOf(N2);
    process.kill(provisioner, 'SIGSTOP');
    try {
      await apply(statefulSet('race-a', classOf(4)), statefulSet('race-b', classOf(4)));
      await until(`both claims placed on ${N2}`, 120_000, async () => {
        const nodes = await Promise.all(['data-race-a-0', 'data-race-b-0'].map(async (c) => (await json<{ metadata: { annotations?: Record<string, string> } }>(['get', 'pvc', c]).catch(() => undefined))?.metadata.annotations?.['volume.kubernetes.io/selected-node']));
        return nodes.every((n) => n === N2) ? true : undefined;
      });
    } finally {
      process.kill(provisioner, 'SIGCONT');
    }
    const placed = { ...(await running('race-a', 1, 600_000)), ...(await running('race-b', 1, 600_000)) };
    console.log(`race replicas: ${JSON.stringify(placed)}; headroom after: ${shown(await headrooms())}`);
    expect(new Set(Object.values(placed)).size).toBe(2);
    expect(Object.values(placed)).toContain(N2);
    const refused = [];
    for (const c of ['data-race-a-0', 'data-race-b-0']) {
      const evs = (await json<{ items: KubeEvent[] }>(['get', 'events', '--field-selector', `involvedObject.name=${c}`])).items;
      refused.push(...evs.filter((e) => e.reason === 'ProvisioningFailed' && /ResourceExhausted|RESOURCE_EXHAUSTED/i.test(e.message)).map((e) => `${c}: ${e.message}`));
    }
    console.log(`refusals: ${refused.join(' | ') || 'none'}`);
    expect(refused.length, 'a CreateVolume refused for lack of IO budget').toBeGreaterThan(0);
    await expectNoneOverPromised();
    await deleteSets('race-a', 'race-b', 'hold-l', 'hold-a', 'hold-b');
    await allFree();
  }, 900_000);
});

// npm run bench:kube:placement (QOSD_KUBE_BENCH=1): how long a StatefulSet of guaranteed replicas
// takes from `kubectl apply` to all replicas Running, against the same StatefulSet of a class
// without guarantees, in the same run on the same cluster (rounds alternate which goes first).
// Read every half second (the test's polling), so a figure is good to about that.
const BENCH = process.env.QOSD_KUBE_BENCH === '1';
describe.skipIf(!multiNode || !BENCH)('benchmark: apply to Running, guaranteed against not', () => {
  const ROUNDS = 4;
  const REPLICAS = 3;
  it(`${ROUNDS} rounds of a ${REPLICAS}-replica StatefulSet of each class`, async () => {
    const rows: { round: number; class: string; seconds: number; placed: Record<string, string> }[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? [classOf(2), CONTROL] : [CONTROL, classOf(2)];
      for (const sc of order) {
        await allFree();
        const name = `bench-${sc === CONTROL ? 'none' : 'g2'}-${round}`;
        const started = Date.now();
        await apply(statefulSet(name, sc, { replicas: REPLICAS }));
        const placed = await running(name, REPLICAS, 600_000);
        rows.push({ round, class: sc, seconds: (Date.now() - started) / 1000, placed });
        console.log(`round ${round}, ${sc}: ${rows.at(-1)!.seconds.toFixed(1)} s to ${REPLICAS} Running (${JSON.stringify(placed)})`);
        await deleteSets(name);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const of = (sc: string) => rows.filter((r) => r.class === sc).map((r) => r.seconds);
    const summary = { guaranteedMedianSeconds: median(of(classOf(2))), noGuaranteeMedianSeconds: median(of(CONTROL)) };
    const ratio = summary.guaranteedMedianSeconds / summary.noGuaranteeMedianSeconds;
    console.log(`median: guaranteed ${summary.guaranteedMedianSeconds.toFixed(1)} s, no guarantee ${summary.noGuaranteeMedianSeconds.toFixed(1)} s, ratio ${ratio.toFixed(2)}`);
    fs.writeFileSync(
      path.resolve(__dirname, '..', '..', 'bench', 'results', 'placement.json'),
      `${JSON.stringify({ date: new Date().toISOString(), nodes: NODES.map((n) => n.name), replicas: REPLICAS, pollSeconds: 0.5, guaranteedClass: `${classOf(2)} (20% of a node's promisable device time per replica)`, ...summary, ratio, rows }, null, 2)}\n`,
    );
    expect(rows.length).toBe(2 * ROUNDS);
  }, 3_600_000);
});
