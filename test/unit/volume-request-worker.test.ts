// The node's VolumeRequest worker carries a burst out a few at a time, every one of them, and
// records each outcome in the object's status.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { MAX_IN_FLIGHT, VolumeRequestWorker } from '../../src/csi/volume-request-worker';
import type { KubeClient, Watch, WatchEvent } from '../../src/kube/client';
import type { CsiController } from '../../src/csi/controller';
import type { VolumeRequest } from '../../src/csi/volume-request';

function request(i: number): VolumeRequest {
  return {
    apiVersion: 'qosd.io/v1alpha1',
    kind: 'VolumeRequest',
    metadata: { name: `vr-${i}`, resourceVersion: String(i) },
    spec: { node: 'node-a', operation: 'Modify', volumeId: `pvc-${i}`, mutableParameters: { maxReadIops: '100' } },
  } as VolumeRequest;
}

describe('VolumeRequest worker', () => {
  it(`carries a burst of 12 out at most ${MAX_IN_FLIGHT} at a time, each once, and patches each status`, async () => {
    const burst = Array.from({ length: 12 }, (_, i) => request(i));
    const patched: string[] = [];
    let stopWatch: (() => void) | undefined;
    const client = {
      connection: { source: 'fake' },
      get: async () => ({ items: burst, metadata: { resourceVersion: '100' } }),
      watch: (_path: string, onEvent: (e: WatchEvent<VolumeRequest>) => void): Watch => {
        // The same objects again as MODIFIED while they are being carried out: taken once.
        for (const r of burst.slice(0, 4)) onEvent({ type: 'MODIFIED', object: r });
        let end!: () => void;
        const done = new Promise<void>((r) => (end = r));
        stopWatch = end;
        return { done, stop: end } as Watch;
      },
      request: async (_method: string, path: string) => {
        patched.push(path.split('/').at(-2)!);
        return {};
      },
      close: () => undefined,
    } as unknown as KubeClient;

    let running = 0;
    let highest = 0;
    const modified: string[] = [];
    const controller = {
      modifyVolume: async (req: { volume_id: string }) => {
        running++;
        highest = Math.max(highest, running);
        await new Promise((r) => setTimeout(r, 20));
        running--;
        modified.push(req.volume_id);
        return {};
      },
    } as unknown as CsiController;

    const worker = new VolumeRequestWorker(client, 'node-a', controller, pino({ level: 'silent' }));
    worker.start();
    const until = Date.now() + 10_000;
    while (patched.length < burst.length && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    stopWatch?.();
    await worker.stop();

    expect(highest).toBe(MAX_IN_FLIGHT);
    expect(worker.state.highestInFlight).toBe(MAX_IN_FLIGHT);
    expect(modified.sort()).toEqual(burst.map((r) => r.spec.volumeId).sort());
    expect(patched.sort()).toEqual(burst.map((r) => r.metadata.name).sort());
    expect(worker.state.carriedOut).toBe(burst.length);
  });
});
