// The extender's explanation of a pod that waits (scheduler/explain.ts, explainer.ts): an event
// naming the IO budget when no node can take a claim's guarantee, once per pod and reason, none
// when a node fits or when bytes, not device time, are what is missing. The cluster here is a
// stand-in holding the figures and recording the events written; the real scheduler and API
// server are in test/kube/placement.kube.ts.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { noNodeFits } from '../../src/scheduler/explain';
import { Explainer, NO_IO_BUDGET, type ExplainerCluster } from '../../src/scheduler/explainer';
import type { PublishedCapacity } from '../../src/scheduler/headroom';
import type { WaitingPod } from '../../src/scheduler/cluster';

const GiB = 1024 ** 3;
const on = (node: string) => ({ matchLabels: { 'topology.qosd.io/node': node } });
const node = (name: string) => ({ name, labels: { 'topology.qosd.io/node': name } });
const db = { name: 'ns/data-db-0', storageClass: 'db', bytes: GiB };
const full: PublishedCapacity[] = [
  { storageClassName: 'db', nodeTopology: on('a'), capacity: 0, maximumVolumeSize: 0 },
  { storageClassName: 'db', nodeTopology: on('b'), capacity: 0, maximumVolumeSize: 0 },
];

describe('why a pod waits (scheduler/explain.ts)', () => {
  it("names the class, the IO budget and each node's reason when no node can take the guarantee", () => {
    const why = noNodeFits([db], full, [node('a'), node('b')]);
    expect(why).toContain("no node's IO budget can take the guarantee of StorageClass db");
    expect(why).toContain("a: this node's IO budget cannot take");
    expect(why).toContain("b: this node's IO budget cannot take");
  });

  it('says nothing while a node can take the claim, for a pod without qosd claims, or when only bytes are short', () => {
    const oneFree: PublishedCapacity[] = [full[0]!, { storageClassName: 'db', nodeTopology: on('b'), capacity: 5 * GiB, maximumVolumeSize: 10 * GiB }];
    expect(noNodeFits([db], oneFree, [node('a'), node('b')])).toBeUndefined();
    expect(noNodeFits([], full, [node('a'), node('b')])).toBeUndefined();
    const small: PublishedCapacity[] = [{ storageClassName: 'db', nodeTopology: on('a'), capacity: GiB / 2, maximumVolumeSize: GiB / 2 }];
    expect(noNodeFits([db], small, [node('a')])).toBeUndefined();
  });
});

describe('the explainer (scheduler/explainer.ts)', () => {
  const pod = (uid: string): WaitingPod => ({ metadata: { name: `db-${uid}`, namespace: 'ns', uid } });
  function cluster(pods: WaitingPod[], published: PublishedCapacity[]) {
    const written: { pod: string; reason: string; message: string }[] = [];
    const c: ExplainerCluster = {
      unschedulablePods: async () => pods,
      pendingClaims: async () => [db],
      publishedCapacities: async () => published,
      allNodeLabels: async () => [node('a'), node('b')],
      warn: async (p, reason, message) => void written.push({ pod: p.metadata.name, reason, message }),
    };
    return { c, written, pods };
  }

  it('writes one NoIOBudget event per waiting pod, and another only when the reason changes', async () => {
    const published = [...full];
    const k = cluster([pod('1'), pod('2')], published);
    const e = new Explainer(k.c, pino({ level: 'silent' }));
    expect(await e.round()).toBe(2);
    expect(k.written.map((w) => [w.pod, w.reason])).toEqual([['db-1', NO_IO_BUDGET], ['db-2', NO_IO_BUDGET]]);
    expect(await e.round()).toBe(0);
    // node b frees device time but has too few bytes: still no node, for a new reason
    published.splice(1, 1, { storageClassName: 'db', nodeTopology: on('b'), capacity: GiB / 4, maximumVolumeSize: GiB / 2 });
    expect(await e.round()).toBe(2);
    expect(k.written.at(-1)!.message).toContain(`b: claim ns/data-db-0 asks ${GiB} bytes`);
  });

  it('forgets a pod once it is placed; a pod of the same name later is a new pod', async () => {
    const pods = [pod('3')];
    const k = cluster(pods, [full[0]!, { storageClassName: 'db', nodeTopology: on('b'), capacity: 0, maximumVolumeSize: 0 }]);
    const e = new Explainer(k.c, pino({ level: 'silent' }));
    expect(await e.round()).toBe(1);
    pods.splice(0, 1);
    expect(await e.round()).toBe(0);
    pods.push(pod('3'));
    expect(await e.round()).toBe(1);
  });
});
