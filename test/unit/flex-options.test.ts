// Flex option parsing without root or a daemon: kubelet's JSON options argument and target
// directory, turned into a volume request or a Failure that names the option.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkTarget, mountOptions, parseOptions } from '../../src/service/flex';

const UID = '0b1c2d3e-0000-4000-8000-000000000002';
const kubelet = (extra: Record<string, string>) => new Map(Object.entries({ 'kubernetes.io/pod.uid': UID, 'kubernetes.io/pvOrVolumeName': 'data', ...extra }));

describe('parseOptions', () => {
  it('reads the JSON object, every value a string, keeping "__proto__" a plain key', () => {
    const m = parseOptions('{"size":"1Gi","__proto__":"x"}');
    expect([...m]).toEqual([['size', '1Gi'], ['__proto__', 'x']]);
  });

  it.each([
    [undefined, 'the options argument (JSON) is missing'],
    ['{', /^the options argument is not JSON: /],
    ['[]', 'the options argument must be a JSON object'],
    ['null', 'the options argument must be a JSON object'],
    ['{"maxReadIops":200}', 'option maxReadIops: must be a string (kubelet passes every option as a string)'],
  ])('refuses %s', (json, message) => {
    expect(() => parseOptions(json)).toThrow(message);
  });
});

describe('mountOptions', () => {
  it('turns limits, guarantees, size, pool and class into a volume request', () => {
    const m = mountOptions(kubelet({ size: '2Gi', pool: 'fast', class: 'high', maxReadIops: '200', minWriteBps: '4Mi', 'kubernetes.io/fsType': 'xfs', 'kubernetes.io/readwrite': 'ro' }));
    expect(m).toEqual({
      podUid: UID,
      readOnly: true,
      volume: { name: 'data', ephemeral: false, fsType: 'xfs', pool: 'fast', class: 'high', size: 2 * 2 ** 30, qos: { min: { writeBps: 4 << 20 }, max: { readIops: 200 } } },
    });
  });

  it('names an ephemeral volume after its pod unless volumeId says otherwise', () => {
    expect(mountOptions(kubelet({ ephemeral: 'true' })).volume.name).toBe(`data-${UID}`);
    expect(mountOptions(kubelet({ ephemeral: 'true', volumeId: 'shared' })).volume.name).toBe('shared');
  });

  it.each([
    [{ maxReadIOPS: '200' }, /^option maxReadIOPS: unknown option \(known: volumeId, /],
    [{ maxReadIops: '2k' }, 'option maxReadIops: "2k" must be a whole number of operations per second'],
    [{ maxReadBps: 'fast' }, /^option maxReadBps: /],
    [{ size: '-1' }, /^option size: /],
    [{ ephemeral: 'yes' }, 'option ephemeral: must be "true" or "false", not "yes"'],
    [{ 'kubernetes.io/fsType': 'btrfs' }, 'option kubernetes.io/fsType: "btrfs" is not supported (ext4 or xfs)'],
    [{ 'kubernetes.io/readwrite': 'rx' }, 'option kubernetes.io/readwrite: must be "rw" or "ro", not "rx"'],
    [{ 'kubernetes.io/pod.uid': '../etc' }, 'option kubernetes.io/pod.uid: "../etc" is not a pod UID'],
  ])('refuses %j naming the option', (extra, message) => {
    expect(() => mountOptions(kubelet(extra))).toThrow(message);
  });

  it('needs a name', () => {
    expect(() => mountOptions(new Map())).toThrow('option volumeId: missing, and kubelet passed no kubernetes.io/pvOrVolumeName');
  });
});

describe('checkTarget', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-flex-'));
  fs.mkdirSync(path.join(root, 'pods', UID, 'volumes'), { recursive: true });
  fs.symlinkSync('/etc', path.join(root, 'pods', UID, 'volumes', 'out'));

  it('accepts a directory under <rootDir>/pods/ and refuses anything else', () => {
    const ok = path.join(root, 'pods', UID, 'volumes', 'qosd~nvme', 'data');
    expect(checkTarget(ok, root)).toBe(ok);
    expect(() => checkTarget(undefined, root)).toThrow('the mount directory argument is missing');
    expect(() => checkTarget('pods/x', root)).toThrow('must be an absolute path');
    expect(() => checkTarget('/etc/x', root)).toThrow(`must be inside ${root}/pods/`);
    expect(() => checkTarget(path.join(root, 'pods', UID, 'volumes', 'out', 'x'), root)).toThrow('resolves outside');
  });
});
