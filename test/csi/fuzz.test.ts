// Malformed CSI requests over the socket: a seeded stream of Node and Controller calls, each a well-formed
// request with one to three fields made invalid (missing, too long, relative or escaping paths,
// NUL bytes, unknown capabilities, unknown or bad volume_context values). Every one is answered
// INVALID_ARGUMENT naming a field it broke, the daemon stays up, and nothing changes: SQLite,
// the mount table and kubelet's directory are as before. Needs no root (nothing valid is sent).
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestNode, removeTestNode, startDaemon, type RunningDaemon, type TestNode } from '../helpers/daemon';
import { csiClient, csiMountTarget, mountCapability, podInfo, type CsiClient } from '../helpers/csi';
import { readMountinfo } from '../../src/host/mountinfo';
import { hostRoot } from '../../src/host/host-root';
import { rng } from '../helpers/rng';

const UID = '0f3c1f9e-3b8a-4c59-9d3e-5a7f6b2c1d00';
const SINGLE = { mode: 'SINGLE_NODE_WRITER' };

type Mutation = [field: string, apply: (r: Record<string, unknown>, root: string, pick: <T>(xs: T[]) => T) => void];

const LONG = () => 'v'.repeat(129);
const badPaths = (root: string) => ['', 'relative/mount', '/etc/qosd-fuzz', `${root}/../../etc/x`, `${root}/pods/${UID}/\0/mount`, `${root}/podsx/${UID}/mount`, '/'];

const PUBLISH: Mutation[] = [
  ['volume_id', (r, _root, pick) => { r.volume_id = pick(['', LONG()]); }],
  ['target_path', (r, root, pick) => { r.target_path = pick(badPaths(root)); }],
  ['volume_capability', (r, _root, pick) => {
    r.volume_capability = pick<unknown>([
      null,
      { access_mode: SINGLE },
      { mount: { fs_type: 'ext4' } },
      { mount: { fs_type: 'ext4' }, access_mode: { mode: 'UNKNOWN' } },
      { mount: { fs_type: pick(['ntfs', 'btrfs', 'EXT4', 'ext4 ', 'xfs,ext4']) }, access_mode: SINGLE },
      { mount: { fs_type: 'ext4', mount_flags: [pick(['exec', 'ro', 'suid', 'dev'])] }, access_mode: SINGLE },
      { mount: { fs_type: 'ext4', volume_mount_group: '1000' }, access_mode: SINGLE },
    ]);
  }],
  ['volume_context', (r, _root, pick) => {
    const key = pick(['maxReadIOPS', 'iops', 'size', 'ephemeral', 'volumeId', 'fsType', '', ' pool', 'pool\0']);
    r.volume_context = { ...(r.volume_context as object), [key]: '1' };
  }],
  ['volume_context', (r, _root, pick) => {
    const key = pick(['maxReadIops', 'minWriteIops', 'maxReadBps', 'minWriteBps']);
    const value = pick(['', '-1', '1.5', 'abc', '1e400', '99999999999999999999999', '10 M', 'Infinity', 'NaN', '0x10']);
    r.volume_context = { ...(r.volume_context as object), [key]: value };
  }],
  ['pod.uid', (r, _root, pick) => {
    r.volume_context = { ...(r.volume_context as object), 'csi.storage.k8s.io/pod.uid': pick(['x', '../../etc', `${UID}/x`, ` ${UID}`, UID.replace('0', 'G'), 'f'.repeat(64)]) };
  }],
];

const BY_PATH = (field: string): Mutation[] => [
  ['volume_id', (r, _root, pick) => { r.volume_id = pick(['', LONG()]); }],
  [field, (r, _root, pick) => { r[field] = pick(['', 'relative/mount', 'mount']); }],
];
// Stats and expansion answer a relative path NOT_FOUND (never published there, as csi-sanity
// expects); only a missing or NUL-bearing one is malformed.
const BY_VOLUME_PATH: Mutation[] = [
  ['volume_id', (r, _root, pick) => { r.volume_id = pick(['', LONG()]); }],
  ['volume_path', (r, _root, pick) => { r.volume_path = pick(['', '/x\0y']); }],
];

const BAD_PARAMS: Mutation = ['parameters', (r, _root, pick) => {
  const k = pick(['maxReadIOPS', 'size', 'volumeId', '', 'fstype', 'ephemeral']);
  r.parameters = { ...(r.parameters as object), [k]: '1' };
}];
const BAD_PARAM_VALUE: Mutation = ['parameters', (r, _root, pick) => {
  const k = pick(['maxReadIops', 'minWriteBps', 'fsType', 'class', 'pool']);
  r.parameters = { ...(r.parameters as object), [k]: pick(['', '-1', '1.5', 'btrfs', 'platinum', 'no-such-pool', '1e400', 'NaN']) };
}];
const BAD_MUTABLE: Mutation = ['mutable_parameters', (r, _root, pick) => {
  const k = pick(['XXX_FakeKey', 'pool', 'fsType', 'maxReadIops']);
  r.mutable_parameters = { ...(r.mutable_parameters as object), [k]: k === 'maxReadIops' ? pick(['x', '-3', '0.5']) : 'x' };
}];
const BAD_CAPS: Mutation = ['volume_capabilities', (r, _root, pick) => {
  r.volume_capabilities = pick<unknown>([[], [{ access_mode: SINGLE }], [{ mount: { fs_type: 'ntfs' }, access_mode: SINGLE }], [mountCapability('ext4'), mountCapability('xfs')]]);
}];
const BAD_ID = (field: string): Mutation => [field, (r, _root, pick) => { r[field] = pick(['', LONG(), 'a\0b']); }];

const CREATE: Mutation[] = [BAD_ID('name'), BAD_PARAMS, BAD_PARAM_VALUE, BAD_MUTABLE, BAD_CAPS,
  ['volume_content_source', (r) => { r.volume_content_source = { volume: { volume_id: 'other' } }; }]];

describe('CSI fuzz: malformed Node and Controller requests', () => {
  let node: TestNode;
  let daemon: RunningDaemon;
  let csi: CsiClient;

  beforeAll(async () => {
    node = makeTestNode();
    daemon = await startDaemon(node);
    csi = csiClient(node.csiSocket);
  });
  afterAll(async () => {
    csi?.close();
    await daemon?.stop();
    if (node) removeTestNode(node);
  });

  function dump(): string {
    const db = new Database(path.join(node.stateDir, 'qosd.db'), { readonly: true, fileMustExist: true });
    try {
      return JSON.stringify(['volumes', 'attachments', 'events'].map((t) => db.prepare(`SELECT * FROM ${t} ORDER BY rowid`).all()));
    } finally {
      db.close();
    }
  }
  const tree = (dir: string): string[] => fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();

  it('answers 1,200 of them INVALID_ARGUMENT, naming a broken field, and changes nothing', async () => {
    const random = rng(1402);
    const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
    const root = node.kubeletRoot;
    const target = csiMountTarget(root, UID, 'pv-fuzz');
    const calls: [string, () => Record<string, unknown>, Mutation[]][] = [
      ['NodePublishVolume', () => ({ volume_id: 'fuzzvol', target_path: target, volume_capability: mountCapability(), readonly: false, volume_context: podInfo(UID) }), PUBLISH],
      ['NodeUnpublishVolume', () => ({ volume_id: 'fuzzvol', target_path: target }), BY_PATH('target_path')],
      ['NodeGetVolumeStats', () => ({ volume_id: 'fuzzvol', volume_path: target }), BY_VOLUME_PATH],
      ['NodeExpandVolume', () => ({ volume_id: 'fuzzvol', volume_path: target, capacity_range: { required_bytes: '1048576' } }), BY_VOLUME_PATH],
      ['Controller.CreateVolume', () => ({ name: 'pvc-fuzz', capacity_range: { required_bytes: String(16 << 20) }, volume_capabilities: [mountCapability()], parameters: { class: 'best-effort' } }), CREATE],
      ['Controller.DeleteVolume', () => ({ volume_id: '' }), [BAD_ID('volume_id')]],
      ['Controller.ValidateVolumeCapabilities', () => ({ volume_id: 'fuzzvol', volume_capabilities: [mountCapability()] }), [BAD_ID('volume_id'), ['volume_capabilities', (r) => { r.volume_capabilities = []; }]]],
      ['Controller.GetCapacity', () => ({ volume_capabilities: [mountCapability()], parameters: {} }), [BAD_PARAMS, BAD_PARAM_VALUE]],
      ['Controller.ControllerExpandVolume', () => ({ volume_id: 'fuzzvol', capacity_range: { required_bytes: '1048576' } }), [BAD_ID('volume_id'), ['capacity_range', (r) => { r.capacity_range = null; }]]],
      ['Controller.ControllerModifyVolume', () => ({ volume_id: 'fuzzvol', mutable_parameters: { maxReadIops: '10' } }), [BAD_ID('volume_id'), BAD_MUTABLE]],
    ];
    const before = { db: dump(), mounts: readMountinfo(hostRoot()).length, files: tree(root) };
    const seen = new Map<string, number>();
    for (let i = 0; i < 1200; i++) {
      const [method, base, mutations] = pick(calls);
      const req = base();
      const broken = new Set<string>();
      for (let n = 1 + Math.floor(random() * 3); n > 0; n--) {
        const [field, apply] = pick(mutations);
        apply(req, root, pick);
        broken.add(field);
      }
      let answer: ServiceError | undefined;
      const [service, rpc] = method.includes('.') ? (method.split('.') as ['Controller', string]) : (['Node', method] as const);
      try {
        await csi.call(service, rpc, req);
      } catch (err) {
        answer = err as ServiceError;
      }
      const what = `#${i} ${method} ${JSON.stringify(req)}`;
      expect(answer, `${what}: accepted`).toBeDefined();
      expect(status[answer!.code], `${what}: ${answer!.details}`).toBe('INVALID_ARGUMENT');
      expect([...broken].some((f) => answer!.details.includes(f)), `${what}: "${answer!.details}" names none of ${[...broken].join(', ')}`).toBe(true);
      seen.set(method, (seen.get(method) ?? 0) + 1);
    }
    expect(seen.size).toBe(calls.length);
    expect(await csi.call('Identity', 'Probe')).toMatchObject({ ready: { value: true } });
    expect(dump()).toBe(before.db);
    expect(readMountinfo(hostRoot()).length).toBe(before.mounts);
    expect(tree(root)).toEqual(before.files);
  });
});
