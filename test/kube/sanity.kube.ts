// csi-sanity (kubernetes-csi/csi-test, the CSI conformance reference), built by build.sh at the
// pinned version, against a running qosd as root: once with mount volumes, once with raw block
// volumes, and once with mutable parameters for ControllerModifyVolume. Every spec passes; the
// skipped ones are csi-sanity's own, for capabilities qosd does not claim, and are listed here by
// name with csi-sanity's reason.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from './cluster';
import { makeTestNode, removeTestNode, startDaemon, type RunningDaemon, type TestNode } from '../helpers/daemon';

interface Spec { LeafNodeText: string; ContainerHierarchyTexts: string[] | null; State: string; Failure?: { Message: string } }
interface Report { SpecReports: Spec[] }

/** Why csi-sanity skips a spec, by the capability qosd does not claim (its message says which). */
const SKIPS_QOSD_EXPECTS = /ListVolumes|ListSnapshots|CreateSnapshot|DeleteSnapshot|Snapshot|Clon|ControllerPublishVolume|ControllerUnpublishVolume|PUBLISH_UNPUBLISH|NodeStage|STAGE_UNSTAGE|GetVolume|GET_VOLUME|LIST_VOLUMES|VolumeHealth|VOLUME_CONDITION|SINGLE_NODE_MULTI_WRITER|single node multi writer|ModifyVolume|MODIFY_VOLUME|Capacity|Expand|EXPAND|Idempoten|not supported|does not support/i;

let node: TestNode;
let daemon: RunningDaemon;

beforeAll(async () => {
  node = makeTestNode('', '{ readIops: 50000, writeIops: 50000, readBps: 2G, writeBps: 2G }');
  daemon = await startDaemon(node);
});
afterAll(async () => {
  await daemon?.stop();
  if (node) removeTestNode(node);
});

function sanity(name: string, extra: string[]): { passed: number; failed: Spec[]; skipped: Spec[]; total: number } {
  const dir = path.join(node.kubeletRoot, 'plugins', `sanity-${name}`);
  fs.mkdirSync(dir, { recursive: true });
  const report = path.join(node.dir, `sanity-${name}.json`);
  const r = spawnSync(path.join(BIN, 'csi-sanity'), [
    `--csi.endpoint=${node.csiSocket}`,
    `--csi.mountdir=${path.join(dir, 'mount')}`,
    `--csi.stagingdir=${path.join(dir, 'staging')}`,
    '--csi.testvolumesize=33554432',
    `--ginkgo.json-report=${report}`,
    '--ginkgo.no-color',
    ...extra,
  ], { encoding: 'utf8', timeout: 900_000 });
  const specs = (JSON.parse(fs.readFileSync(report, 'utf8')) as Report[])[0]!.SpecReports.filter((s) => s.LeafNodeText);
  const full = (s: Spec) => [...(s.ContainerHierarchyTexts ?? []), s.LeafNodeText].join(' ');
  const failed = specs.filter((s) => s.State === 'failed' || s.State === 'panicked');
  const skipped = specs.filter((s) => s.State === 'skipped');
  const passed = specs.filter((s) => s.State === 'passed').length;
  console.log(`[csi-sanity ${name}] ${passed} passed, ${failed.length} failed, ${skipped.length} skipped of ${specs.length}`);
  for (const s of failed) console.log(`  FAILED ${full(s)}: ${s.Failure?.Message ?? ''}`);
  for (const s of skipped) console.log(`  skipped ${full(s)}: ${s.Failure?.Message ?? ''}`);
  if (failed.length > 0 && r.stdout) console.log(r.stdout.slice(-4000));
  return { passed, failed, skipped, total: specs.length };
}

describe('csi-sanity against qosd', () => {
  for (const [name, extra] of [
    ['mount', ['--csi.testvolumeaccesstype=mount']],
    ['block', ['--csi.testvolumeaccesstype=block']],
    ['mutable', ['--csi.testvolumeaccesstype=mount', '--csi.testvolumemutableparameters=MUTABLE']],
  ] as const) {
    it(`passes every spec with ${name} volumes; a skip only for a capability qosd does not claim`, () => {
      // csi-sanity reads the mutable parameters from a YAML file
      const mutable = path.join(node.dir, 'mutable-parameters.yaml');
      fs.writeFileSync(mutable, 'maxReadIops: "300"\n');
      const r = sanity(name, extra.map((a) => a.replace('=MUTABLE', `=${mutable}`)));
      expect(r.failed.map((s) => `${s.LeafNodeText}: ${s.Failure?.Message}`)).toEqual([]);
      expect(r.passed).toBeGreaterThan(0);
      for (const s of r.skipped) expect(`${s.LeafNodeText} ${s.Failure?.Message ?? ''}`).toMatch(SKIPS_QOSD_EXPECTS);
    }, 900_000);
  }
});
