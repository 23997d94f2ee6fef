// Shared set-up for the unit tests that need no root: copies of the cgroup fixture trees
// (fixtures/cgroup, built from kubelet's naming rules, see its README), an in-memory store with
// volumes and attachments as a running node has them, and a quiet logger.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from 'pino';
import pino from 'pino';
import { Store, now } from '../../src/store/store';
import type { Volume } from '../../src/store/volumes';
import type { Attachment } from '../../src/store/attachments';
import type { Figures, LatencyTargets, QosSpec } from '../../src/model/qos';

export const FIXTURES = path.resolve(__dirname, '../../fixtures/cgroup');

/** The three fixture pods, one per QoS class. */
export const FIXTURE_PODS = {
  guaranteed: '0b1c2d3e-0000-4000-8000-000000000001',
  burstable: '0b1c2d3e-0000-4000-8000-000000000002',
  besteffort: '0b1c2d3e-0000-4000-8000-000000000003',
};

/** A private copy of one fixture tree (tests write to it). */
export function copyTree(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-fix-'));
  fs.cpSync(path.join(FIXTURES, name), dir, { recursive: true });
  return dir;
}

export const quietLog = (): Logger => pino({ level: 'silent' });

export interface VolumeSpec {
  name: string;
  deviceNumber: string;
  min?: Figures;
  max?: Figures;
  pool?: string;
  latency?: LatencyTargets;
}

/** A ready volume, as a create leaves it. */
export function addVolume(store: Store, v: VolumeSpec): Volume {
  const qos: QosSpec = { min: v.min ?? {}, max: v.max ?? {}, ...(v.latency && { latency: v.latency }) };
  return store.volumes.insert(
    {
      name: v.name, pool: v.pool ?? 'default', sizeBytes: 1 << 30, fsType: 'ext4', class: 'best-effort', ephemeral: false,
      state: 'ready', formatted: true, backing: `/pool/${v.name}.img`, device: `/dev/loop-${v.name}`, deviceNumber: v.deviceNumber,
      qos, overrides: qos,
    },
    now(),
  );
}

/** An attached volume in a pod cgroup, as an attach leaves it. */
export function addAttachment(store: Store, volume: Volume, podUid: string, podCgroup: string, version: 'v1' | 'v2'): Attachment {
  const a = store.attachments.insert({ volume: volume.name, podUid, target: `/var/lib/kubelet/pods/${podUid}/volumes/qosd~nvme/${volume.name}`, readOnly: false, state: 'attached', source: 'flex' }, now());
  return store.attachments.update(a.id, { cgroupVersion: version, podCgroup, device: volume.deviceNumber }, now());
}

export const memoryStore = (): Store => Store.open(':memory:');

/** The error `fn` throws (its code and message); a test fails when it throws none. */
export function errorOf(fn: () => void): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('expected a refusal');
}
